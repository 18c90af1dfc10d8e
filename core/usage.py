"""Usage collection: asks usage-source plugins for counters and stores each sample once."""

from __future__ import annotations

import logging

from core import audit
from core.db import database
from core.hooktypes import UsageSample
from core.models import Service, UsageRecord
from core.plugins import get_manager

log = logging.getLogger(__name__)


def collect(since=None, pm=None) -> int:
    """Collect samples from every usage source; return how many new records were stored.

    Samples for unknown services, with negative counters or an end before the start are
    logged and dropped; a repeated sample (same source and external id) is ignored.
    """
    pm = pm or get_manager()
    rows = []
    for plugin, sample in pm.call_items("usage_collect", UsageSample, since=since):
        if sample.bytes_in < 0 or sample.bytes_out < 0 or sample.period_end < sample.period_start:
            log.error("plugin %s: invalid usage sample %s", plugin, sample.external_id)
            continue
        rows.append(sample)
    if not rows:
        return 0
    known = {s.id for s in Service.select(Service.id).where(Service.id.in_({r.service_id for r in rows}))}
    stored = 0
    with database.atomic():
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
