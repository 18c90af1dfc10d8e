"""Settings declared by plugins (and the core's own built-in plugin), stored in the database.

Only declared keys can be set. A value is parsed by its spec before it is stored, so a
bad value is refused with a message and nothing is written. Secret values are masked in
every listing and in the audit trail.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging

from core import audit
from core.clock import utcnow
from core.db import database, refuse_conflict
from core.errors import ValidationError
from core.hooktypes import SettingSpec
from core.models import Setting
from core.plugins import get_manager

log = logging.getLogger(__name__)


# Within a snapshot (one web request, one job run) the stored values are read once, in one
# query, and every later read is answered from memory; outside one every read asks the database.
_snapshot: contextvars.ContextVar[dict | None] = contextvars.ContextVar("wispbill_settings", default=None)
_UNREAD = object()
_MEMOS = object()


@contextlib.contextmanager
def snapshot():
    """Read the stored settings at most once inside the block (a request, a job run)."""
    token = _snapshot.set({})
    try:
        yield
    finally:
        _snapshot.reset(token)


def begin_snapshot():
    """Start a snapshot; end it with :func:`end_snapshot` and the returned token."""
    return _snapshot.set({})


def end_snapshot(token) -> None:
    """End the snapshot :func:`begin_snapshot` started."""
    _snapshot.reset(token)


def memo(key, compute):
    """``compute()``, remembered until the snapshot ends or a setting changes (outside one: not remembered).

    For answers that depend only on settings and the loaded plugins, such as the
    gateways' descriptions, which a request may ask for several times.
    """
    cache = _snapshot.get()
    if cache is None:
        return compute()
    memos = cache.setdefault(_MEMOS, {})
    if key not in memos:
        memos[key] = compute()
    return memos[key]


def _stored(key: str):
    """``(found, value)`` for ``key`` in the database, through the snapshot when one is open."""
    cache = _snapshot.get()
    if cache is None:
        row = Setting.get_or_none(Setting.key == key)
        return (False, None) if row is None else (True, row.value)
    if _UNREAD not in cache:
        cache.update({row.key: row.value for row in Setting.select(Setting.key, Setting.value)})
        cache[_UNREAD] = False  # marks the snapshot as loaded, even when no setting is stored
    return (key in cache, cache.get(key))


def seconds_parser(low: float, high: float):
    """A ``SettingSpec.parse`` for a number of seconds from ``low`` to ``high`` (a timeout, say)."""

    def parse(text) -> float:
        try:
            seconds = float(str(text).strip())
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {str(text).strip()!r}") from None
        if not low <= seconds <= high:
            raise ValueError(f"the timeout must be between {low:g} and {high:g} seconds")
        return seconds

    return parse


def declared(pm=None) -> dict[str, SettingSpec]:
    """Every declared setting by key. A key declared twice keeps the first and is reported.

    Remembered per plugin manager until its plugins change.
    """
    pm = pm or get_manager()
    memo = pm.__dict__.setdefault("_impl_cache", {})
    specs = memo.get("__declared_settings__")
    if specs is None:
        specs = memo["__declared_settings__"] = pm.collect_named("register_settings", SettingSpec, "key")
    return specs


def _spec(key: str, pm=None) -> SettingSpec:
    specs = declared(pm)
    if key not in specs:
        raise ValidationError(f"unknown setting {key!r}", field=key)
    return specs[key]


def get(key: str, pm=None):
    """The stored value of ``key``, or its declared default."""
    spec = _spec(key, pm)
    found, value = _stored(key)
    return value if found else spec.default


def get_or(key: str, fallback, pm=None):
    """Like :func:`get`, but ``fallback`` when no loaded plugin declares ``key``."""
    specs = declared(pm)
    if key not in specs:
        return fallback
    found, value = _stored(key)
    return value if found else specs[key].default


def set_value(key: str, text: str, pm=None):
    """Parse ``text`` with the setting's spec, store it, audit it; return the stored value."""
    spec = _spec(key, pm)
    try:
        value = spec.parse(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{key}: {exc}", field=key) from None
    with refuse_conflict(f"{key} was changed at the same time; try again", key), database.atomic():
        row = Setting.get_or_none(Setting.key == key)
        before = None if row is None else row.value
        if row is None:
            Setting.create(key=key, value=value, secret=spec.secret)
        else:
            Setting.update(value=value, secret=spec.secret, updated_at=utcnow()).where(Setting.key == key).execute()
        shown = (lambda v: audit.MASK if spec.secret and v is not None else v)
        audit.record("setting.set", "setting", key, {"value": shown(before)}, {"value": shown(value)})
    cache = _snapshot.get()
    if cache:
        # Read everything again next time: an outer transaction may still roll this write back.
        cache.clear()
    return value


def listing(pm=None) -> list[dict]:
    """Every declared setting with its current value, secrets masked."""
    rows = {s.key: s for s in Setting.select()}
    out = []
    for key, spec in sorted(declared(pm).items()):
        value = rows[key].value if key in rows else spec.default
        is_set = key in rows
        if spec.secret and value not in (None, ""):
            value = audit.MASK
        out.append({"key": key, "label": spec.label, "value": value, "secret": spec.secret, "set": is_set})
    return out
