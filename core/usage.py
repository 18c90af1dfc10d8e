"""Usage collection: asks usage-source plugins for counters and stores each sample once."""

from __future__ import annotations

import logging

from core import audit
from core.db import database
from core.hooktypes import UsageSample
from core.models import Service, UsageRecord
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


def _store(rows: list[UsageSample]) -> int:
    if not rows:
        return 0
    known = set()
    ids = sorted({r.service_id for r in rows})
    for first in range(0, len(ids), 900):
        known |= {s.id for s in Service.select(Service.id).where(Service.id.in_(ids[first:first + 900]))}
    stored = 0
    for r in rows:
        if r.service_id not in known:
            log.warning("usage sample %s/%s for unknown service %s dropped", r.source, r.external_id, r.service_id)
            continue
        stored += UsageRecord.insert(
            service=r.service_id, source=r.source, external_id=r.external_id,
            period_start=r.period_start, period_end=r.period_end,
            bytes_in=r.bytes_in, bytes_out=r.bytes_out,
        ).on_conflict_ignore().as_rowcount().execute()
    if stored:
        audit.record("usage.collect", "usage_record", None, None,
                     {"stored": stored, "sources": sorted({r.source for r in rows})})
    return stored
