"""``wispbill tokens``: staff API tokens."""

from __future__ import annotations
