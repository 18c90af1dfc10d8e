"""The audit trail: who changed what, when, with before and after.

Every write through the core calls :func:`record` inside the same transaction as the
change. The actor comes from :func:`acting_as` (the web app sets the signed-in staff
member, the CLI ``cli:<user>``); without one it is ``system``.
"""

from __future__ import annotations

import contextlib
import contextvars

from core.bulk import insert_one
from core.clock import utcnow
from core.db import database
from core.models import AuditEvent, to_json

_actor: contextvars.ContextVar[str] = contextvars.ContextVar("wispbill_actor", default="system")

MASK = "********"


@contextlib.contextmanager
def acting_as(actor: str):
    """Attribute the writes made inside the block to ``actor``."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def set_actor(actor: str):
    """Attribute writes to ``actor`` until :func:`reset_actor` is called with the returned token."""
    return _actor.set(actor)


def reset_actor(token) -> None:
    """Undo the :func:`set_actor` call that returned ``token``."""
    _actor.reset(token)


ACTOR_LENGTH = 150  # the width of every *_by and actor column


def current_actor() -> str:
    """The actor writes are attributed to right now (at most :data:`ACTOR_LENGTH` characters)."""
    return _actor.get()[:ACTOR_LENGTH]


def record(action: str, object_type: str, object_id=None, before=None, after=None) -> AuditEvent:
    """Write one audit event; call it inside the transaction of the change it describes."""
    row = {"at": utcnow(), "actor": current_actor()[:150], "action": action, "object_type": object_type,
           "object_id": None if object_id is None else str(object_id)[:60]}
    row_id = insert_one(database.obj, "audit_event", {**row, "before": to_json(before), "after": to_json(after)})
    return AuditEvent(id=row_id, before=before, after=after, **row)


def snapshot(instance, exclude=()) -> dict:
    """A model row as a JSON-friendly dict for ``before``/``after``, minus ``exclude`` fields."""
    data = {}
    for name in instance._meta.fields:
        if name in exclude:
            continue
        value = instance.__data__.get(name)
        data[name] = value if isinstance(value, (int, str, bool, type(None))) else str(value)
    return data
