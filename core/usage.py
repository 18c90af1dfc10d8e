"""Usage collection: asks usage-source plugins for counters and stores each sample once."""

from __future__ import annotations

import logging

from core import audit
from core.bulk import execute_many
from core.clock import utcnow
from core.db import database
from core.hooktypes import UsageSample
from core.models import Service
from core.plugins import get_manager

log = logging.getLogger(__name__)


def _valid(plugin: str, value) -> list[UsageSample]:
    items = value if isinstance(value, (list, tuple)) else [value]
    good = []
    for sample in items:
        if not isinstance(sample, UsageSample):
            log.error("plugin %s: usage_collect returned %r, not a UsageSample", plugin, sample)
        elif sample.bytes_in < 0 or sample.bytes_out < 0 or sample.period_end < sample.period_start:
            log.error("plugin %s: invalid usage sample %s", plugin, sample.external_id)
        else:
            good.append(sample)
    return good


def collect(since=None, pm=None) -> int:
    """Collect samples from every usage source; return how many new records were stored.

    The sources are asked and their samples stored in one transaction, so a source that
    keeps a cursor in this database (the RADIUS accounting log, say) moves it exactly
    when its samples are stored. Each source runs in a savepoint: one that raises is
    logged and rolled back alone. Samples for unknown services, with negative counters or
    an end before the start are logged and dropped; a repeated sample (same source and
    external id) is ignored.
    """
    pm = pm or get_manager()
    with database.atomic():
        rows = []
        calls = pm.call_each("usage_collect", since=since)
        while True:
            with database.atomic() as savepoint:
                try:
                    plugin, value, error = next(calls)
                except StopIteration:
                    break
                if error is not None:
                    savepoint.rollback()
                    continue
            if value is not None:
                rows += _valid(plugin, value)
        return _store(rows)


_INSERT_COLUMNS = ("service_id", "source", "external_id", "period_start", "period_end", "bytes_in", "bytes_out",
                   "collected_at")


def _store(rows: list[UsageSample]) -> int:
    """Insert the samples not stored yet, in bulk; returns how many were new."""
    if not rows:
        return 0
    db = database.obj
    p = db.param
    known, stored_ids = set(), set()
    ids = sorted({r.service_id for r in rows})
    for first in range(0, len(ids), 900):
        known |= {s.id for s in Service.select(Service.id).where(Service.id.in_(ids[first:first + 900]))}
    by_source: dict[str, list[str]] = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r.external_id)
    for source, external in by_source.items():
        for first in range(0, len(external), 900):
            chunk = external[first:first + 900]
            stored_ids |= {(source, e) for (e,) in db.execute_sql(
                f"SELECT external_id FROM usage_record WHERE source = {p} AND external_id IN "
                f"({', '.join([p] * len(chunk))})", (source, *chunk)).fetchall()}
    now, fresh, seen = utcnow(), [], set()
    for r in rows:
        if r.service_id not in known:
            log.warning("usage sample %s/%s for unknown service %s dropped", r.source, r.external_id, r.service_id)
            continue
        if (r.source, r.external_id) in stored_ids or (r.source, r.external_id) in seen:
            continue
        seen.add((r.source, r.external_id))
        fresh.append((r.service_id, r.source, r.external_id, r.period_start, r.period_end, r.bytes_in, r.bytes_out,
                      now))
    # "Do nothing" on conflict: a collector running at the same time may have stored a sample just now.
    execute_many(db, f"INSERT INTO usage_record ({', '.join(_INSERT_COLUMNS)}) VALUES "
                     f"({', '.join([p] * len(_INSERT_COLUMNS))}) ON CONFLICT (source, external_id) DO NOTHING", fresh)
    if fresh:
        audit.record("usage.collect", "usage_record", None, None,
                     {"stored": len(fresh), "sources": sorted({r[1] for r in fresh})})
    return len(fresh)
