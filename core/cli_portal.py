"""``wispbill`` commands for customers' portal sign-in."""

from __future__ import annotations
