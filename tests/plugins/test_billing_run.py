"""The daily billing job: scheduled at the operator's time, and billing what is due today."""

from __future__ import annotations

import pytest

from core import billing, catalog, customers, scheduler, services, settings
from core.clock import today
from core.errors import ValidationError
from core.models import Invoice


def test_the_job_runs_at_the_configured_time_and_bills_today(db, pm):
    job = {j.id: j for j in scheduler.collect_jobs(pm)}["billing.run"]
    assert (job.trigger, job.schedule) == ("cron", {"hour": 0, "minute": 30})
    settings.set_value("billing.run_at", " 5:07 ")
    job = {j.id: j for j in scheduler.collect_jobs(pm)}["billing.run"]
    assert job.schedule == {"hour": 5, "minute": 7}

    c = customers.add(name="Due Today", currency="KES")
    plan = catalog.add(code="home", name="Home", kind="internet", price="100", currency="KES")
    services.add(customer=c, plan=plan, start_date=today(), billing_mode="prepaid")
    result = scheduler.run_job(job)
    assert isinstance(result, billing.RunResult) and result.invoices == 1
    assert Invoice.get(Invoice.customer == c.id).issue_date == today()
    assert scheduler.run_job(job).invoices == 0


@pytest.mark.parametrize("text", ["24:00", "7", "07:5", "noon", "12:60"])
def test_a_bad_time_is_refused(db, pm, text):
    with pytest.raises(ValidationError, match="billing.run_at: expected a time like 00:30"):
        settings.set_value("billing.run_at", text)
    assert settings.get("billing.run_at") == "00:30"
