"""Dunning: the decision table, a customer's life through the states, promises, exemptions,
termination, policy overrides, the daily run and concurrent evaluations, on SQLite and PostgreSQL.

The ``enforced`` fixture wraps ``core.enforcement``'s refresh and push, so a test can see
that the router state is recomputed inside the transaction of a change and pushed after
it commits. Other dunning test modules import their shared fixtures from here.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import dunning, dunning_policies, payments
from core.db import database
from core.dunning_policies import Policy
from core.errors import ValidationError
from core.models import AuditEvent, Customer, DunningPolicy, Event, Plan
from tests.concurrency import at_once
from tests.factories import kes, make_customer, make_issued_invoice, make_plan, make_service

D = dt.date
DUE = D(2026, 3, 15)
DEFAULT = Policy("default", 1, 7, 14, None, 0)


def day(n: int) -> dt.date:
    """The ``n``-th day past ``DUE``."""
    return DUE + dt.timedelta(days=n)


@pytest.fixture
def enforced(monkeypatch):
    """core.enforcement's refresh and push, recorded (with whether a transaction was open)."""
    from core import enforcement

    calls = SimpleNamespace(refreshed=[], pushed=[])
    real_refresh, real_push = enforcement.refresh_customer, enforcement.push_pending

    def refresh_customer(customer_id, today=None):
        calls.refreshed.append((customer_id, today, database.in_transaction()))
        return real_refresh(customer_id, today)

    def push_pending(service_ids=None, *args, **kwargs):
        calls.pushed.append((list(service_ids or ()), database.in_transaction()))
        return real_push(service_ids, *args, **kwargs)

    monkeypatch.setattr(enforcement, "refresh_customer", refresh_customer)
    monkeypatch.setattr(enforcement, "push_pending", push_pending)
    return calls


def events(name_prefix="account."):
    return [(e.name, e.payload) for e in Event.select().where(Event.name.startswith(name_prefix)).order_by(Event.id)]


def transitions(customer):
    rows = AuditEvent.select().where(AuditEvent.action == "customer.state_changed",
                                     AuditEvent.object_id == str(customer.id)).order_by(AuditEvent.id)
    return [(a.before["state"], a.after["state"], a.after["reason"]) for a in rows]


def state(customer) -> str:
    return Customer.get_by_id(customer.id).state


def pay(customer, minor, reference=None):
    payment, _created = payments.add_manual(customer, kes(minor), reference=reference)
    return payment


# --- the decision table ------------------------------------------------------------

@pytest.mark.parametrize("current, days, owed, exempt, promise, expected", [
    ("active", 0, 0, False, None, ("active", "paid")),
    ("active", 1, 100, False, None, ("reminded", "days_overdue")),
    ("active", 6, 100, False, None, ("reminded", "days_overdue")),
    ("active", 7, 100, False, None, ("throttled", "days_overdue")),
    ("active", 40, 100, False, None, ("suspended", "days_overdue")),  # no terminate step in the default
    ("reminded", 14, 100, False, None, ("suspended", "days_overdue")),  # steps can be jumped
    ("suspended", 3, 100, False, None, ("suspended", "days_overdue")),  # no partial step-down
    ("suspended", 30, 0, False, None, ("active", "paid")),
    ("suspended", 30, 100, True, None, ("active", "exempt")),
    ("suspended", 30, 100, False, D(2026, 4, 1), ("active", "promise")),  # promise until today: in force
    ("throttled", 30, 100, False, D(2026, 3, 31), ("suspended", "days_overdue")),  # lapsed yesterday
    ("terminated", 0, 0, False, None, ("terminated", "terminated")),
    ("terminated", 0, 0, True, D(2026, 5, 1), ("terminated", "terminated")),
])
def test_decision_table(current, days, owed, exempt, promise, expected):
    decision = dunning.decide(state=current, days_overdue=days, overdue_minor=owed, policy=DEFAULT, exempt=exempt,
                              promise_until=promise, today=D(2026, 4, 1))
    assert (decision.state, decision.reason) == expected


def test_below_the_minimum_nothing_happens_and_skipped_steps_are_skipped():
    policy = Policy("lenient", None, None, 10, 60, minimum_owed_minor=50_000)
    decide = dunning.decide
    assert decide(state="active", days_overdue=90, overdue_minor=49_999, policy=policy, today=DUE).state == "active"
    assert decide(state="suspended", days_overdue=90, overdue_minor=49_999, policy=policy, today=DUE) \
        == dunning.Decision("active", "below_minimum")
    assert decide(state="active", days_overdue=9, overdue_minor=50_000, policy=policy, today=DUE).state == "active"
    assert decide(state="active", days_overdue=10, overdue_minor=50_000, policy=policy, today=DUE).state == "suspended"
    assert decide(state="active", days_overdue=60, overdue_minor=50_000, policy=policy, today=DUE).state == "terminated"


@st.composite
def policies(draw):
    steps = sorted(draw(st.lists(st.integers(0, 90), min_size=4, max_size=4)))
    kept = [d if draw(st.booleans()) else None for d in steps]
    return Policy("p", *kept, minimum_owed_minor=draw(st.integers(0, 10_000)))


@settings(max_examples=300, deadline=None)
@given(policy=policies(), current=st.sampled_from(dunning.STATES), days=st.integers(0, 200),
       more=st.integers(0, 200), owed=st.integers(0, 20_000), exempt=st.booleans(),
       promise=st.one_of(st.none(), st.integers(-30, 30)))
def test_decisions_are_monotonic_in_days_and_only_move_forward_or_back_to_active(
        policy, current, days, more, owed, exempt, promise):
    today = D(2026, 6, 1)
    until = None if promise is None else today + dt.timedelta(days=promise)
    rank = {s: i for i, s in enumerate(dunning.STATES)}

    def decide(n):
        return dunning.decide(state=current, days_overdue=n, overdue_minor=owed, policy=policy, exempt=exempt,
                              promise_until=until, today=today).state

    sooner, later = decide(days), decide(days + more)
    assert rank[sooner] <= rank[later]
    assert sooner == "active" or rank[sooner] >= rank[current]
    if current == "terminated":
        assert sooner == later == "terminated"
    if owed < policy.minimum_owed_minor and current != "terminated":
        assert later == "active"
    if current != "terminated" and exempt:
        assert later == "active"


def test_next_step_says_what_happens_and_when():
    nxt = dunning.next_step
    assert nxt(state="active", oldest_due=DUE, overdue_minor=100, policy=DEFAULT, today=DUE) == ("reminded", day(1))
    assert nxt(state="reminded", oldest_due=DUE, overdue_minor=100, policy=DEFAULT, today=day(3)) \
        == ("throttled", day(7))
    assert nxt(state="suspended", oldest_due=DUE, overdue_minor=100, policy=DEFAULT, today=day(20)) is None
    # a promise holds every step until the day after it, when the account jumps to where the days put it
    assert nxt(state="active", oldest_due=DUE, overdue_minor=100, policy=DEFAULT, promise_until=day(20),
               today=day(10)) == ("suspended", day(21))
    assert nxt(state="active", oldest_due=DUE, overdue_minor=100, policy=DEFAULT, exempt=True, today=day(3)) is None
    assert nxt(state="active", oldest_due=None, overdue_minor=0, policy=DEFAULT, today=day(3)) is None


# --- a customer's life -------------------------------------------------------------

def test_a_customer_goes_through_every_step_and_is_restored_when_they_pay(db, pm, enforced):
    c = make_customer()
    make_issued_invoice(c, 150_000, due_date=DUE)

    assert not dunning.evaluate_customer(c.id, DUE).changed  # due today is not overdue
    steps = [(day(1), "reminded"), (day(6), "reminded"), (day(7), "throttled"), (day(14), "suspended"),
             (day(60), "suspended")]
    for today, expected in steps:
        dunning.evaluate_customer(c.id, today)
        assert state(c) == expected, today
    assert [name for name, _payload in events()] == ["account.reminded", "account.throttled", "account.suspended"]
    assert events()[2][1] == {"customer_id": c.id, "account_number": c.account_number, "from_state": "throttled",
                              "to_state": "suspended", "reason": "days_overdue", "overdue_minor": 150_000,
                              "currency": "KES", "days_overdue": 14, "oldest_due_date": "2026-03-15"}

    pay(c, 100_000)
    assert dunning.evaluate_customer(c.id, day(61)).to_state == "suspended"  # 500.00 still overdue
    pay(c, 50_000)
    restored = dunning.evaluate_customer(c.id, day(61), actor="cli:ops")
    assert (restored.from_state, restored.to_state, restored.reason) == ("suspended", "active", "paid")
    assert events()[-1] == ("account.restored", {
        "customer_id": c.id, "account_number": c.account_number, "from_state": "suspended", "to_state": "active",
        "reason": "paid", "overdue_minor": 0, "currency": "KES", "days_overdue": 0, "oldest_due_date": None})
    assert transitions(c) == [("active", "reminded", "days_overdue"), ("reminded", "throttled", "days_overdue"),
                              ("throttled", "suspended", "days_overdue"), ("suspended", "active", "paid")]
    last = AuditEvent.select().where(AuditEvent.action == "customer.state_changed").order_by(AuditEvent.id.desc()).get()
    assert last.actor == "cli:ops" and last.after["policy"] is None  # nothing overdue: no policy needed
    assert Customer.get_by_id(c.id).state_changed_at is not None
    # every transition recomputed the router state inside its transaction (no routers here: nothing to push)
    assert [(cid, today, inside) for cid, today, inside in enforced.refreshed] == \
        [(c.id, day(1), True), (c.id, day(7), True), (c.id, day(14), True), (c.id, day(61), True)]
    assert enforced.pushed == []


def test_changed_services_are_pushed_after_commit_and_a_failed_push_is_left_to_the_reconciler(
        db, pm, monkeypatch, caplog):
    from core import enforcement

    c = make_customer()
    make_issued_invoice(c, 150_000, due_date=DUE)
    seen = []

    def refresh_customer(customer_id, today=None):
        seen.append(("refresh", database.in_transaction(), state(c)))
        return [41, 42]

    def push_pending(service_ids):
        seen.append(("push", database.in_transaction(), state(c), list(service_ids)))
        raise OSError("router unreachable")

    monkeypatch.setattr(enforcement, "refresh_customer", refresh_customer)
    monkeypatch.setattr(enforcement, "push_pending", push_pending)
    evaluation = dunning.evaluate_customer(c.id, day(9))
    assert evaluation.service_ids == (41, 42) and state(c) == "throttled"
    # refreshed inside the transaction, after the state was written; pushed once it was committed
    assert seen == [("refresh", True, "throttled"), ("push", False, "throttled", [41, 42])]
    assert "will retry" in caplog.text


def test_evaluating_twice_changes_nothing_the_second_time(db, pm, enforced):
    c = make_customer()
    make_issued_invoice(c, 150_000, due_date=DUE)
    assert dunning.evaluate_customer(c.id, day(8)).to_state == "throttled"
    audit_rows, event_rows = AuditEvent.select().count(), Event.select().count()
    again = dunning.evaluate_customer(c.id, day(8))
    assert not again.changed and not again.touched
    assert (AuditEvent.select().count(), Event.select().count()) == (audit_rows, event_rows)
    assert len(enforced.refreshed) == 1


def test_evaluate_refuses_to_run_inside_a_transaction(db, pm):
    c = make_customer()
    with database.atomic(), pytest.raises(RuntimeError, match="transaction of its own"):
        dunning.evaluate_customer(c.id, DUE)


def test_an_unknown_customer_is_not_found(db, pm):
    from core.errors import NotFound

    with pytest.raises(NotFound):
        dunning.evaluate_customer(999_999, DUE)


def test_only_overdue_invoices_count_and_the_oldest_gives_the_days(db, pm):
    c = make_customer()
    make_issued_invoice(c, 100_000, due_date=DUE)
    make_issued_invoice(c, 40_000, due_date=day(10))
    make_issued_invoice(c, 70_000, due_date=day(30))  # not yet due on day 20
    assert dunning.overdue(c.id, "KES", day(20)) == (140_000, DUE)
    pay(c, 100_000)  # pays the oldest first
    assert dunning.overdue(c.id, "KES", day(20)) == (40_000, day(10))
    evaluation = dunning.evaluate_customer(c.id, day(20))
    assert (evaluation.to_state, evaluation.days_overdue) == ("throttled", 10)


# --- promises, exemptions, termination ---------------------------------------------

def test_a_promise_to_pay_brings_the_subscriber_back_until_its_date(db, pm, enforced):
    c = make_customer()
    make_issued_invoice(c, 150_000, due_date=DUE)
    dunning.evaluate_customer(c.id, day(20))
    assert state(c) == "suspended"

    promised = dunning.extend(c, day(30), note="pays on the 15th", today=day(20))
    assert (promised.from_state, promised.to_state, promised.reason) == ("suspended", "active", "promise")
    assert events()[-1][0] == "account.restored" and events()[-1][1]["reason"] == "promise"
    promise_audit = AuditEvent.get(AuditEvent.action == "customer.promise_to_pay")
    assert promise_audit.before == {"promise_until": None}
    assert promise_audit.after == {"promise_until": day(30).isoformat(), "note": "pays on the 15th"}
    assert dunning.evaluate_customer(c.id, day(30)).to_state == "active"  # the last day of the promise

    lapsed = dunning.run(day(31))
    assert [(t["from_state"], t["to_state"]) for t in lapsed.transitions] == [("active", "suspended")]
    assert state(c) == "suspended"


@pytest.mark.parametrize("until, message", [
    (day(19), "today or a later day"),
    (day(20) + dt.timedelta(days=61), "more than 60 days away"),
    ("soon", "must be a date"),
])
def test_a_bad_promise_is_refused_and_nothing_is_written(db, pm, until, message):
    c = make_customer()
    make_issued_invoice(c, 150_000, due_date=DUE)
    dunning.evaluate_customer(c.id, day(20))
    before = AuditEvent.select().count()
    with pytest.raises(ValidationError, match=message):
        dunning.extend(c, until, today=day(20))
    assert Customer.get_by_id(c.id).promise_until is None and state(c) == "suspended"
    assert AuditEvent.select().count() == before


def test_a_far_promise_needs_force_and_a_promise_can_be_withdrawn(db, pm):
    c = make_customer()
    make_issued_invoice(c, 150_000, due_date=DUE)
    far = day(20) + dt.timedelta(days=90)
    dunning.extend(c, far, force=True, today=day(20))
    assert Customer.get_by_id(c.id).promise_until == far and state(c) == "active"
    withdrawn = dunning.clear_promise(c, today=day(20))
    assert withdrawn.to_state == "suspended" and Customer.get_by_id(c.id).promise_until is None
    with pytest.raises(ValidationError, match="no promise to pay"):
        dunning.clear_promise(c, today=day(20))


def test_an_exempt_customer_stays_active_until_the_exemption_ends(db, pm):
    c = make_customer()
    make_issued_invoice(c, 150_000, due_date=DUE)
    dunning.evaluate_customer(c.id, day(9))
    assert state(c) == "throttled"
    exempted = dunning.set_exempt(c, True, today=day(9))
    assert (exempted.to_state, exempted.reason) == ("active", "exempt")
    assert dunning.run(day(40)).transitions == []
    assert AuditEvent.get(AuditEvent.action == "customer.dunning_exempt").after == {"dunning_exempt": True}
    assert dunning.set_exempt(c, True, today=day(40)).touched is False  # already exempt: nothing written
    assert AuditEvent.select().where(AuditEvent.action == "customer.dunning_exempt").count() == 1
    ended = dunning.set_exempt(c, False, today=day(40))
    assert (ended.from_state, ended.to_state) == ("active", "suspended")


def test_terminated_is_sticky_until_staff_reactivate(db, pm):
    strict = dunning_policies.add("strict", remind_after=1, suspend_after=10, terminate_after=30)
    c = make_customer()
    Customer.update(dunning_policy=strict.id).where(Customer.id == c.id).execute()
    make_issued_invoice(c, 150_000, due_date=DUE)
    assert dunning.evaluate_customer(c.id, day(30)).to_state == "terminated"
    assert events()[-1][0] == "account.terminated"

    with pytest.raises(ValidationError, match="past the terminate step"):
        dunning.reactivate(c, today=day(31))  # still owes it all: it would terminate again at once
    assert state(c) == "terminated"
    dunning.extend(c, day(40), today=day(31))
    assert state(c) == "terminated"  # a promise does not undo a termination

    pay(c, 150_000)
    assert dunning.evaluate_customer(c.id, day(32)).to_state == "terminated"  # nor does paying
    back = dunning.reactivate(c, today=day(32))
    assert (back.from_state, back.to_state, back.reason) == ("terminated", "active", "reactivated")
    assert events()[-1][0] == "account.restored" and events()[-1][1]["reason"] == "reactivated"
    with pytest.raises(ValidationError, match="not terminated"):
        dunning.reactivate(c, today=day(32))


def test_reactivating_someone_who_still_owes_puts_them_where_the_days_say(db, pm):
    strict = dunning_policies.add("strict", remind_after=1, suspend_after=10, terminate_after=30)
    c = make_customer()
    Customer.update(dunning_policy=strict.id).where(Customer.id == c.id).execute()
    make_issued_invoice(c, 150_000, due_date=DUE)
    dunning.evaluate_customer(c.id, day(31))
    dunning_policies.change("strict", terminate_after="never")
    back = dunning.reactivate(c, today=day(32))
    assert (back.from_state, back.to_state) == ("terminated", "suspended")
    assert events()[-1][0] == "account.suspended" and events()[-1][1]["from_state"] == "terminated"


# --- which policy --------------------------------------------------------------------

def test_a_plan_policy_applies_and_the_most_lenient_plan_wins(db, pm):
    harsh = dunning_policies.add("harsh", suspend_after=3)
    lenient = dunning_policies.add("lenient", remind_after=5, suspend_after=30)
    c = make_customer()
    plans = [make_service(c, make_plan()).plan, make_service(c, make_plan()).plan]
    Plan.update(dunning_policy=harsh.id).where(Plan.id == plans[0].id).execute()
    make_issued_invoice(c, 150_000, due_date=DUE)
    assert dunning_policies.effective(c.id) == (Policy.from_row(harsh), f"plan {plans[0].code}")
    assert dunning.evaluate_customer(c.id, day(3)).to_state == "suspended"

    Plan.update(dunning_policy=lenient.id).where(Plan.id == plans[1].id).execute()
    other = make_customer()
    make_service(other, plans[0], status="active")
    make_service(other, plans[1], status="active")
    make_service(other, make_plan(), status="cancelled")
    make_issued_invoice(other, 150_000, due_date=DUE)
    assert dunning_policies.effective(other.id)[0].name == "lenient"
    assert dunning.evaluate_customer(other.id, day(10)).to_state == "reminded"


def test_a_customer_policy_overrides_the_plans_and_none_falls_back(db, pm):
    harsh = dunning_policies.add("harsh", suspend_after=3)
    patient = dunning_policies.add("patient", remind_after=20)
    c = make_customer()
    service = make_service(c, make_plan(), status="active")
    Plan.update(dunning_policy=harsh.id).where(Plan.id == service.plan_id).execute()
    make_issued_invoice(c, 150_000, due_date=DUE)
    assigned = dunning.assign(c, "patient", today=day(5))
    assert (assigned.to_state, assigned.policy) == ("active", "patient")
    assert Customer.get_by_id(c.id).dunning_policy_id == patient.id
    assert AuditEvent.get(AuditEvent.action == "customer.dunning_policy").after == {"dunning_policy": "patient"}
    removed = dunning.assign(c, "none", today=day(5))
    assert (removed.to_state, removed.policy) == ("suspended", "harsh")
    with pytest.raises(Exception, match="no dunning policy 'nope'"):
        dunning.assign(c, "nope", today=day(5))
    assert Customer.get_by_id(c.id).dunning_policy_id is None


def test_policies_are_validated(db, pm):
    with pytest.raises(ValidationError, match="comes before the throttled step"):
        dunning_policies.add("bad", throttle_after=10, suspend_after=5)
    with pytest.raises(ValidationError, match="DOWN/UP"):
        dunning_policies.add("bad", throttle_rate="512")
    with pytest.raises(ValidationError, match="already exists"):
        dunning_policies.add("default")
    with pytest.raises(ValidationError, match="nothing to change"):
        dunning_policies.change("default")
    with pytest.raises(ValidationError, match="comes before"):
        dunning_policies.change("default", remind_after=30)
    assert DunningPolicy.select().count() == 1
    changed = dunning_policies.change("default", terminate_after="90", minimum="500", throttle_rate="1024/512")
    assert (changed.terminate_after_days, changed.minimum_owed_minor, changed.throttle_download_kbps) == \
        (90, 50_000, 1024)
    assert changed.remind_after_days == 1  # what was not given is kept


# --- the daily run -----------------------------------------------------------------

def _scenario():
    """Customers in each situation the run must tell apart."""
    late = make_customer(name="Late")
    make_issued_invoice(late, 150_000, due_date=DUE)
    small = make_customer(name="Small")
    make_issued_invoice(small, 10_000, due_date=DUE)
    paid = make_customer(name="Paid")
    make_issued_invoice(paid, 150_000, due_date=DUE)
    on_time = make_customer(name="On time")
    make_issued_invoice(on_time, 150_000, due_date=day(30))
    nobody = make_customer(name="Nothing")
    lenient = dunning_policies.add("lenient", minimum="200")
    Customer.update(dunning_policy=lenient.id).where(Customer.id == small.id).execute()
    return late, small, paid, on_time, nobody


def test_the_run_moves_only_those_whose_state_changes_and_a_second_run_does_nothing(db, pm, enforced):
    late, small, paid, on_time, nobody = _scenario()
    pay(paid, 150_000)
    Customer.update(state="suspended").where(Customer.id == paid.id).execute()  # paid before the run noticed

    dry = dunning.run(day(8), dry_run=True)
    assert sorted((t["account_number"], t["from_state"], t["to_state"]) for t in dry.transitions) == sorted(
        [(late.account_number, "active", "throttled"), (paid.account_number, "suspended", "active")])
    assert events() == [] and state(late) == "active"  # a dry run writes nothing

    result = dunning.run(day(8))
    assert sorted(t["account_number"] for t in result.transitions) == sorted([late.account_number,
                                                                            paid.account_number])
    assert [state(c) for c in (late, small, paid, on_time, nobody)] == \
        ["throttled", "active", "active", "active", "active"]
    assert sorted(cid for cid, _day, _inside in enforced.refreshed) == sorted([late.id, paid.id])
    counts = (Event.select().count(), AuditEvent.select().count())

    again = dunning.run(day(8))
    assert again.transitions == [] and again.services == [] and again.customers == 0
    assert (Event.select().count(), AuditEvent.select().count()) == counts


def test_the_run_decides_as_evaluating_each_customer_would(db, pm):
    customers = _scenario()
    for n in (1, 7, 14, 45):
        planned = {cid: e.to_state for cid, e in dunning.plan(day(n)).items() if e.to_state}
        for c in customers:
            assert dunning.evaluate_customer(c.id, day(n)).to_state == planned.get(c.id, state(c)), (n, c.name)


# --- two at once -------------------------------------------------------------------

@pytest.mark.parametrize("prepaid", [False, True], ids=["postpaid", "prepaid"])
def test_concurrent_evaluations_of_one_customer_make_one_transition(db, pm, prepaid):
    c = make_customer()
    make_issued_invoice(c, 150_000, due_date=DUE)
    if prepaid:
        make_service(c, make_plan(), billing_mode="prepaid", start_date=D(2026, 3, 1))
    db.close()
    outcomes = at_once(6, lambda: dunning.evaluate_customer(c.id, day(15)))
    assert sorted(e.changed for e in outcomes) == [False] * 5 + [True]
    assert [name for name, _p in events()] == ["account.suspended"]
    assert len(transitions(c)) == 1
    assert [name for name, _p in events("service.")] == (["service.expired"] if prepaid else [])
    assert AuditEvent.select().where(AuditEvent.action == "service.expired").count() == int(prepaid)
