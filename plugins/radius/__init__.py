"""Enforcer for RADIUS NAS (router kind ``radius``), through FreeRADIUS's SQL tables.

FreeRADIUS reads ``radcheck``, ``radreply``, ``radusergroup`` and ``radgroupreply`` (rlm_sql)
from wispbill's database; this plugin keeps them in the same transaction as the account
state they follow, sends Disconnect and CoA requests to the NAS when live sessions must
change, and turns the accounting FreeRADIUS writes into usage. See ``docs/enforcers/radius.md``.
"""

from __future__ import annotations

from core import hookimpl

KIND = "radius"


@hookimpl
def register_migrations():
    """The rlm_sql tables, the session-action queue and the usage state."""
    return "plugins.radius.migrations"
