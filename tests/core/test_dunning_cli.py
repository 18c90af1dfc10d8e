"""The dunning commands: policies, assignments, promises, exemptions, reactivation, status and the run."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core.clock import today
from core.models import AuditEvent, Customer, DunningPolicy, Event, Plan
from tests.factories import make_customer, make_issued_invoice, make_plan

DAY = dt.timedelta(days=1)


def _late(db, days=20, **customer):
    """A customer whose invoice of KES 1,500.00 fell due ``days`` days ago."""
    c = make_customer(**customer)
    make_issued_invoice(c, 150_000, due_date=today() - days * DAY)
    db.close()
    return c


def _state(c):
    return Customer.get_by_id(c.id).state


def _writes():
    return AuditEvent.select().count(), Event.select().count(), DunningPolicy.select().count()


def test_policies_add_list_and_set(db, cli):
    db.close()
    added = cli("dunning", "policies", "add", "business", "--remind-after", "3", "--throttle-after", "never",
                "--suspend-after", "30", "--terminate-after", "never", "--minimum", "1,000", "--throttle-rate",
                "2048/1024", "--json")
    assert added.exit_code == 0, added.output
    data = json.loads(added.output)
    assert (data["remind_after_days"], data["throttle_after_days"], data["suspend_after_days"],
            data["terminate_after_days"]) == (3, None, 30, None)
    assert data["minimum_owed_minor"] == 100_000 and data["throttle_rate"] == {"download_kbps": 2048,
                                                                             "upload_kbps": 1024}
    listed = cli("dunning", "policies", "list")
    assert listed.exit_code == 0
    assert listed.output.splitlines() == [
        "default: remind 1, throttle 7, suspend 14, terminate never; minimum USD 0.00; throttle 512/256 kbit/s",
        "business: remind 3, throttle never, suspend 30, terminate never; minimum USD 1,000.00; "
        "throttle 2048/1024 kbit/s"]
    changed = cli("dunning", "policies", "set", "business", "--terminate-after", "90", "--json")
    assert changed.exit_code == 0 and json.loads(changed.output)["terminate_after_days"] == 90
    assert json.loads(changed.output)["suspend_after_days"] == 30
    assert [r["name"] for r in json.loads(cli("dunning", "policies", "list", "--json").output)] == \
        ["default", "business"]
    assert AuditEvent.get(AuditEvent.action == "dunning_policy.update").after["terminate_after_days"] == 90


@pytest.mark.parametrize("args, message", [
    (("policies", "add", "x", "--remind-after", "soon"), "whole number"),
    (("policies", "add", "x", "--remind-after", "-1"), "at least 0"),
    (("policies", "add", "x", "--throttle-after", "9", "--suspend-after", "3"), "comes before"),
    (("policies", "add", "x", "--throttle-rate", "fast"), "DOWN/UP"),
    (("policies", "add", "x", "--throttle-rate", "0/10"), "at least 1"),
    (("policies", "add", "x", "--minimum", "-5"), "more than zero"),
    (("policies", "add", "Bad Name"), "lower-case"),
    (("policies", "add", "none"), "reserved"),
    (("policies", "add", "default"), "already exists"),
    (("policies", "set", "nope", "--remind-after", "2"), "no dunning policy 'nope'"),
    (("policies", "set", "default"), "nothing to change"),
    (("policies", "set", "default", "--suspend-after", "2"), "comes before"),
    (("assign", "--policy", "default"), "exactly one of --customer and --plan"),
    (("assign", "--customer", "A1", "--plan", "p", "--policy", "default"), "exactly one"),
    (("assign", "--customer", "NOPE", "--policy", "default"), "no customer"),
    (("assign", "--plan", "nope", "--policy", "default"), "no plan 'nope'"),
    (("assign", "--customer", "{acct}", "--policy", "nope"), "no dunning policy"),
    (("extend", "{acct}", "--until", "{yesterday}"), "today or a later day"),
    (("extend", "{acct}", "--until", "{far}"), "more than 60 days away"),
    (("extend", "{acct}", "--until", "next week"), "--until must be a date"),
    (("extend", "NOPE", "--until", "{far}"), "no customer"),
    (("extend", "{acct}"), "either --until DATE or --clear"),
    (("extend", "{acct}", "--clear"), "has no promise to pay"),
    (("reactivate", "{acct}"), "not terminated"),
    (("status", "NOPE"), "no customer"),
    (("run", "--date", "yesterday"), "--date must be a date"),
])
def test_bad_input_exits_2_and_writes_nothing(db, cli, args, message):
    c = _late(db)
    cli("dunning", "run")
    values = {"acct": c.account_number, "yesterday": (today() - DAY).isoformat(),
              "far": (today() + 61 * DAY).isoformat()}
    before, state = _writes(), _state(c)
    result = cli("dunning", *(a.format(**values) for a in args))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert _writes() == before and _state(c) == state
    assert Customer.get_by_id(c.id).promise_until is None


def test_run_prints_transitions_and_a_second_run_none(db, cli):
    c = _late(db, days=8)
    dry = cli("dunning", "run", "--dry-run")
    assert dry.exit_code == 0 and f"{c.account_number}\tactive -> throttled\tdays_overdue" in dry.output
    assert "would change 1 account(s)" in dry.output and _state(c) == "active"
    done = cli("dunning", "run", "--json")
    assert done.exit_code == 0
    data = json.loads(done.output)
    assert [(t["account_number"], t["to_state"], t["days_overdue"]) for t in data["transitions"]] == \
        [(c.account_number, "throttled", 8)]
    assert _state(c) == "throttled"
    assert "changed 0 account(s)" in cli("dunning", "run").output
    later = cli("dunning", "run", "--date", (today() + 6 * DAY).isoformat())
    assert f"{c.account_number}\tthrottled -> suspended" in later.output


def test_extend_exempt_and_status(db, cli):
    c = _late(db, days=20)
    cli("dunning", "run")
    assert _state(c) == "suspended"
    status = json.loads(cli("dunning", "status", c.account_number, "--json").output)
    assert (status["state"], status["days_overdue"], status["overdue"]["minor"], status["next"]) == \
        ("suspended", 20, 150_000, None)
    assert status["policy"]["name"] == "default" and status["policy"]["source"] == "default"

    until = (today() + 10 * DAY).isoformat()
    extended = cli("dunning", "extend", c.account_number, "--until", until, "--note", "salary on Friday")
    assert extended.exit_code == 0, extended.output
    assert f"{c.account_number}: suspended -> active (promise)" in extended.output
    assert AuditEvent.get(AuditEvent.action == "customer.promise_to_pay").after["note"] == "salary on Friday"
    shown = cli("dunning", "status", c.account_number)
    assert f"promise to pay until {until}" in shown.output
    assert f"next: suspended on {(today() + 11 * DAY).isoformat()} if nothing is paid" in shown.output

    far = (today() + 90 * DAY).isoformat()
    assert cli("dunning", "extend", c.account_number, "--until", far).exit_code == 2
    assert cli("dunning", "extend", c.account_number, "--until", far, "--force").exit_code == 0
    assert Customer.get_by_id(c.id).promise_until.isoformat() == far
    withdrawn = cli("dunning", "extend", c.account_number, "--clear")
    assert withdrawn.exit_code == 0 and f"{c.account_number}: active -> suspended" in withdrawn.output
    assert Customer.get_by_id(c.id).promise_until is None

    exempt = cli("dunning", "exempt", c.account_number, "--json")
    assert exempt.exit_code == 0 and json.loads(exempt.output)["exempt"] is True
    assert Customer.get_by_id(c.id).dunning_exempt
    assert "exempt from dunning" in cli("dunning", "status", c.account_number).output
    off = cli("dunning", "exempt", c.account_number, "--off")
    assert off.exit_code == 0 and "no longer exempt" in off.output
    assert not Customer.get_by_id(c.id).dunning_exempt


def test_assign_to_a_customer_and_to_a_plan(db, cli):
    c = _late(db, days=20)
    plan = make_plan(code="home")
    make_plan(code="home")  # version 2
    db.close()
    assert cli("dunning", "policies", "add", "patient", "--suspend-after", "45").exit_code == 0
    assigned = cli("dunning", "assign", "--customer", c.account_number, "--policy", "patient", "--json")
    assert assigned.exit_code == 0, assigned.output
    data = json.loads(assigned.output)
    assert data["policy"] == "patient" and data["evaluation"]["to_state"] == "active"
    assert cli("dunning", "assign", "--customer", c.account_number, "--policy", "none").exit_code == 0
    assert Customer.get_by_id(c.id).dunning_policy_id is None and _state(c) == "suspended"

    on_plan = cli("dunning", "assign", "--plan", "home", "--policy", "patient", "--json")
    assert on_plan.exit_code == 0 and json.loads(on_plan.output)["versions"] == [1, 2]
    patient = DunningPolicy.get(DunningPolicy.name == "patient")
    assert {p.dunning_policy_id for p in Plan.select().where(Plan.code == "home")} == {patient.id}
    assert Plan.get_by_id(plan.id).dunning_policy_id == patient.id
    assert cli("dunning", "assign", "--plan", "home", "--policy", "none").exit_code == 0
    assert {p.dunning_policy_id for p in Plan.select().where(Plan.code == "home")} == {None}


def test_reactivate_a_terminated_customer(db, cli):
    c = _late(db, days=40)
    assert cli("dunning", "policies", "set", "default", "--terminate-after", "30").exit_code == 0
    cli("dunning", "run")
    assert _state(c) == "terminated"
    refused = cli("dunning", "reactivate", c.account_number)
    assert refused.exit_code == 2 and "past the terminate step" in refused.output
    paid = cli("payments", "add", c.account_number, "--amount", "1,500")
    assert paid.exit_code == 0
    assert _state(c) == "terminated"  # paying does not undo a termination
    back = cli("dunning", "reactivate", c.account_number, "--json")
    assert back.exit_code == 0, back.output
    assert (json.loads(back.output)["to_state"], json.loads(back.output)["reason"]) == ("active", "reactivated")
    last = AuditEvent.select().where(AuditEvent.action == "customer.state_changed").order_by(AuditEvent.id.desc()).get()
    assert last.actor.startswith("cli") and last.after["reason"] == "reactivated"
