"""Dunning: the account state machine, and prepaid access that runs out when the money does.

An account is ``active``, ``reminded``, ``throttled``, ``suspended`` or ``terminated``.
:func:`decide` is the whole rule book: a pure function of what is overdue, the policy in
force (:mod:`core.dunning_policies`), the exemption, the promise to pay, today's date and
the current state. :func:`evaluate_customer` applies it to one customer in one
transaction that holds the customer's lock; :func:`run` finds, in a few queries, the
customers whose state or prepaid access changes today and evaluates only those.

A prepaid service's ``paid_through`` is kept here: the day after the last day of the
latest period on a fully paid invoice (the service's start while nothing is paid).
When today reaches it the service has expired (``service.expired``, once); a payment that
moves it past today renews it (``service.renewed``). The audit trail remembers which of
the two was said last.

Each change is audited and emitted in its transaction, and the desired router state is
recomputed there (``core.enforcement.refresh_customer``); the services whose desired state
changed are pushed to their routers after commit. The rules are explained in
``docs/dunning.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from core import audit, clock, enforcement, events, validate
from core.bulk import is_sqlite, to_date
from core.clock import utcnow
from core.db import database
from core.dunning_policies import (
    Policy,
    all_policies,
    assign_customer,
    default_policy,
    effective,
    most_lenient,
    plan_policies,
)
from core.errors import NotFound, ValidationError
from core.models import ACCOUNT_STATES, Customer
from core.money import Money

log = logging.getLogger(__name__)

STATES = ACCOUNT_STATES
_RANK = {state: i for i, state in enumerate(STATES)}
PROMISE_MAX_DAYS = 60
EXPIRING_STATUSES = ("active", "suspended")  # service statuses whose prepaid access can run out
PAID_LINE_KINDS = ("recurring", "proration")  # invoice lines that pay for days of a service
ACCESS_ACTIONS = ("service.expired", "service.renewed")
_ACCESS_IN = ", ".join(f"'{a}'" for a in ACCESS_ACTIONS)
DAY = dt.timedelta(days=1)

# Why an account is in the state decide() gives it; the ``reason`` of account events.
REASONS = {
    "terminated": "terminated accounts stay terminated until staff reactivate them",
    "exempt": "the customer is exempt from dunning",
    "paid": "nothing is overdue",
    "below_minimum": "what is overdue is below the policy's minimum",
    "promise": "a promise to pay is in force",
    "days_overdue": "days past the due date of the oldest overdue invoice",
    "reactivated": "staff reactivated a terminated account",
}


def event_name(to_state: str) -> str:
    """The domain event of a move to ``to_state``: ``account.suspended``, ``account.restored`` for active."""
    return "account.restored" if to_state == "active" else f"account.{to_state}"


# --- the rules ---------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """The state an account should be in, and the reason (a key of :data:`REASONS`)."""

    state: str
    reason: str


def step_for(days_overdue: int, policy: Policy) -> str:
    """The furthest step of ``policy`` reached after ``days_overdue`` days; ``active`` for none."""
    reached = "active"
    for state, days in policy.steps():
        if days_overdue >= days and _RANK[state] > _RANK[reached]:
            reached = state
    return reached


def decide(*, state: str, days_overdue: int, overdue_minor: int, policy: Policy | None, exempt: bool = False,
           promise_until: dt.date | None = None, today: dt.date) -> Decision:
    """The state an account should be in now. The rules, first match wins:

    1. ``terminated`` stays terminated (staff reactivate explicitly);
    2. an exempt customer is active;
    3. nothing overdue, or less than the policy's minimum: active;
    4. a promise to pay until today or later: active (even from throttled or suspended);
    5. otherwise the furthest step the days overdue reach, but never back from the current
       state: an account moves forward by days, and back only to active, when rules 2-4 say so.

    ``policy`` is only read when something is overdue (``None`` will do otherwise).
    """
    if state == "terminated":
        return Decision("terminated", "terminated")
    if exempt:
        return Decision("active", "exempt")
    if overdue_minor <= 0:
        return Decision("active", "paid")
    if overdue_minor < policy.minimum_owed_minor:
        return Decision("active", "below_minimum")
    if promise_until is not None and promise_until >= today:
        return Decision("active", "promise")
    step = step_for(days_overdue, policy)
    return Decision(step if _RANK[step] > _RANK[state] else state, "days_overdue")


def next_step(*, state: str, oldest_due: dt.date | None, overdue_minor: int, policy: Policy | None,
              exempt: bool = False, promise_until: dt.date | None = None,
              today: dt.date) -> tuple[str, dt.date] | None:
    """What happens next if nothing is paid: ``(state, first day)``, or ``None`` when nothing will.

    ``state`` is the state the account is in (or should be in, as :func:`decide` says today).
    """
    if state == "terminated" or exempt or overdue_minor <= 0 or oldest_due is None \
            or overdue_minor < policy.minimum_owed_minor:
        return None
    floor = promise_until + DAY if promise_until is not None and promise_until >= today else today
    ahead = [(state_, max(oldest_due + dt.timedelta(days=days), floor))
             for state_, days in policy.steps() if _RANK[state_] > _RANK[state]]
    if not ahead:
        return None
    first = min(day for _s, day in ahead)
    return max((s for s, day in ahead if day == first), key=_RANK.get), first


# --- what is owed ------------------------------------------------------------------

def _param(day: dt.date):
    return day.isoformat() if is_sqlite(database.obj) else day


def overdue(customer_id: int, currency: str, today: dt.date) -> tuple[int, dt.date | None]:
    """``(minor units, oldest due date)`` left to pay on the customer's issued invoices due before today."""
    p = database.param
    minor, oldest = database.execute_sql(
        "SELECT COALESCE(SUM(total_minor - settled_minor), 0), MIN(due_date) FROM invoice "
        f"WHERE customer_id = {p} AND currency = {p} AND status = 'issued' AND due_date < {p} "
        "AND settled_minor < total_minor", (customer_id, currency, _param(today))).fetchone()
    return int(minor), to_date(oldest)


_OVERDUE_BY_CUSTOMER = (
    "SELECT customer_id, currency, SUM(total_minor - settled_minor) AS minor, MIN(due_date) AS oldest "
    "FROM invoice WHERE status = 'issued' AND due_date < {p} AND settled_minor < total_minor "
    "GROUP BY customer_id, currency")


# --- prepaid access ----------------------------------------------------------------

@dataclass
class _Prepaid:
    """A prepaid service as dunning reads it; ``paid_end`` is the last day (inclusive) on a paid invoice."""

    id: int
    customer_id: int
    account_number: str
    start: dt.date
    end: dt.date | None
    status: str
    paid_through: dt.date | None
    paid_end: dt.date | None
    last_access: str | None = None  # the last of ACCESS_ACTIONS audited for it

    def target(self) -> dt.date:
        """What ``paid_through`` should be."""
        return self.paid_end + DAY if self.paid_end is not None else self.start

    def expired(self, paid_through: dt.date, today: dt.date) -> bool:
        """Whether access has run out today (a service not started yet, or ended, has not expired)."""
        return (self.status in EXPIRING_STATUSES and self.start <= today and (self.end is None or today < self.end)
                and paid_through <= today)

    def plan(self, today: dt.date) -> tuple[dt.date, str | None]:
        """``(paid_through, event to emit or None)`` as of ``today``."""
        new = self.target()
        if self.expired(new, today):
            return new, None if self.last_access == "service.expired" else "service.expired"
        if self.last_access == "service.expired" and new > today:
            return new, "service.renewed"
        return new, None


def _prepaid_sql(where: str, lock: bool) -> str:
    kinds = ", ".join(f"'{k}'" for k in PAID_LINE_KINDS)
    suffix = " FOR NO KEY UPDATE OF s" if lock and not is_sqlite(database.obj) else ""
    return ("SELECT s.id, s.customer_id, c.account_number, s.start_date, s.end_date, s.status, s.paid_through, "
            "(SELECT MAX(l.period_end) FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id "
            f"WHERE l.service_id = s.id AND i.status = 'paid' AND l.kind IN ({kinds})) "
            "FROM service s JOIN customer c ON c.id = s.customer_id "
            f"WHERE s.billing_mode = 'prepaid' AND s.status <> 'cancelled'{where} ORDER BY s.id{suffix}")


def _prepaid_rows(rows) -> list[_Prepaid]:
    return [_Prepaid(sid, cid, acct, to_date(start), to_date(end), status, to_date(pt), to_date(paid_end))
            for sid, cid, acct, start, end, status, pt, paid_end in rows]


def _customer_prepaid(customer_id: int, lock: bool) -> list[_Prepaid]:
    """One customer's prepaid services; with ``lock`` their rows are locked (before the customer's,
    the order in which the billing run and plan changes take them)."""
    sql = _prepaid_sql(f" AND s.customer_id = {database.param}", lock)
    services = _prepaid_rows(database.execute_sql(sql, (customer_id,)).fetchall())
    if services:
        marks = ", ".join([database.param] * len(services))
        rows = database.execute_sql(
            "SELECT object_id, action FROM audit_event WHERE object_type = 'service' "
            f"AND action IN ({_ACCESS_IN}) AND object_id IN ({marks}) ORDER BY id",
            [str(s.id) for s in services]).fetchall()
        last = dict(rows)  # later rows overwrite earlier ones
        for svc in services:
            svc.last_access = last.get(str(svc.id))
    return services


def _all_prepaid() -> list[_Prepaid]:
    services = _prepaid_rows(database.execute_sql(_prepaid_sql("", False)).fetchall())
    last = dict(database.execute_sql(
        "SELECT a.object_id, a.action FROM audit_event a JOIN (SELECT object_id, MAX(id) AS id FROM audit_event "
        f"WHERE object_type = 'service' AND action IN ({_ACCESS_IN}) GROUP BY object_id) m "
        "ON m.id = a.id").fetchall())
    for svc in services:
        svc.last_access = last.get(str(svc.id))
    return services


def _write_service(svc: _Prepaid, new: dt.date, event: str | None) -> dict:
    """Store a service's new ``paid_through`` and say what happened to it; audited and emitted."""
    old = svc.paid_through
    base = {"service_id": svc.id, "customer_id": svc.customer_id, "account_number": svc.account_number}
    if new != old:
        database.execute_sql(f"UPDATE service SET paid_through = {database.param} WHERE id = {database.param}",
                             (new, svc.id))
        audit.record("service.renewed" if event == "service.renewed" else "service.paid_through", "service", svc.id,
                     {"paid_through": _iso(old)}, {"paid_through": new.isoformat()})
    if event == "service.expired":
        audit.record("service.expired", "service", svc.id, {"paid_through": _iso(old)},
                     {"paid_through": new.isoformat()})
        events.emit("service.expired", {**base, "paid_through": new.isoformat(), "ever_paid": svc.paid_end is not None})
    elif event == "service.renewed":
        if new == old:  # renewed without a change of date (a run with an earlier date): still say so once
            audit.record("service.renewed", "service", svc.id, {"paid_through": _iso(old)},
                         {"paid_through": new.isoformat()})
        events.emit("service.renewed", {**base, "paid_through": new.isoformat(),
                                        "previous_paid_through": _iso(old)})
    svc.paid_through, svc.last_access = new, event or svc.last_access
    return {**base, "from_paid_through": _iso(old), "to_paid_through": new.isoformat(), "event": event}


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


# --- evaluating one customer -------------------------------------------------------

@dataclass
class Evaluation:
    """What evaluating one customer did (or, in a dry run, would do)."""

    customer_id: int
    account_number: str
    from_state: str
    to_state: str
    reason: str
    overdue_minor: int
    currency: str
    days_overdue: int
    oldest_due_date: dt.date | None
    policy: str | None = None
    services: list = field(default_factory=list)  # prepaid services whose paid_through or access changed
    service_ids: tuple = ()  # services whose desired router state changed (from core.enforcement)

    @property
    def changed(self) -> bool:
        """Whether the account state changed."""
        return self.from_state != self.to_state

    @property
    def touched(self) -> bool:
        """Whether anything was written: the state, or a prepaid service."""
        return self.changed or bool(self.services)

    def payload(self) -> dict:
        """The payload of the ``account.*`` event of this transition."""
        return {"customer_id": self.customer_id, "account_number": self.account_number,
                "from_state": self.from_state, "to_state": self.to_state, "reason": self.reason,
                "overdue_minor": self.overdue_minor, "currency": self.currency, "days_overdue": self.days_overdue,
                "oldest_due_date": _iso(self.oldest_due_date)}

    def as_dict(self) -> dict:
        """As JSON for the CLI and the API."""
        return {**self.payload(), "changed": self.changed, "policy": self.policy, "services": self.services,
                "service_ids": list(self.service_ids)}


_CUSTOMER_COLUMNS = ("id", "account_number", "currency", "state", "dunning_policy_id", "dunning_exempt",
                     "promise_until")


@dataclass
class _Account:
    id: int
    account_number: str
    currency: str
    state: str
    dunning_policy_id: int | None
    dunning_exempt: bool
    promise_until: dt.date | None


def _lock_customer(customer_id: int) -> _Account:
    # NO KEY UPDATE: waits for payments and credit notes on this customer (FOR UPDATE) and
    # for other evaluations, but not for rows merely pointing at the customer (new invoices).
    suffix = "" if is_sqlite(database.obj) else " FOR NO KEY UPDATE"
    row = database.execute_sql(f"SELECT {', '.join(_CUSTOMER_COLUMNS)} FROM customer WHERE id = {database.param}"
                               f"{suffix}", (customer_id,)).fetchone()
    if row is None:
        raise NotFound(f"no customer #{customer_id}")
    account = _Account(*row)
    account.dunning_exempt = bool(account.dunning_exempt)
    account.promise_until = to_date(account.promise_until)
    return account


def _judge(account: _Account, today: dt.date, *, reactivating: bool = False) -> tuple[Evaluation, Decision]:
    """Read what the customer owes and decide; nothing is written."""
    minor, oldest = overdue(account.id, account.currency, today)
    days = (today - oldest).days if oldest is not None else 0
    state = "active" if reactivating else account.state
    policy = None
    if minor > 0 and not account.dunning_exempt and state != "terminated":
        policy, _source = effective(account.id, account.dunning_policy_id)
    decision = decide(state=state, days_overdue=days, overdue_minor=minor, policy=policy,
                      exempt=account.dunning_exempt, promise_until=account.promise_until, today=today)
    evaluation = Evaluation(account.id, account.account_number, account.state, decision.state, decision.reason,
                            minor, account.currency, days, oldest, policy.name if policy else None)
    return evaluation, decision


def _transition(account: _Account, evaluation: Evaluation) -> None:
    now = utcnow()
    p = database.param
    database.execute_sql(f"UPDATE customer SET state = {p}, state_changed_at = {p}, updated_at = {p} WHERE id = {p}",
                         (evaluation.to_state, now, now, account.id))
    audit.record("customer.state_changed", "customer", account.id, {"state": evaluation.from_state},
                 {"state": evaluation.to_state, "reason": evaluation.reason, "overdue_minor": evaluation.overdue_minor,
                  "currency": evaluation.currency, "days_overdue": evaluation.days_overdue,
                  "oldest_due_date": _iso(evaluation.oldest_due_date), "policy": evaluation.policy})
    events.emit(event_name(evaluation.to_state), evaluation.payload())
    account.state = evaluation.to_state


def _push(service_ids) -> None:
    """Send committed router changes now; on failure the reconciler retries from the desired state."""
    if not service_ids:
        return
    try:
        enforcement.push_pending(list(service_ids))
    except Exception:  # the change is committed; a router that is down is the reconciler's job
        log.exception("dunning: pushing services %s to their routers failed; the reconciler will retry",
                      list(service_ids))


def _evaluate(customer_id: int, today: dt.date, *, change=None, reactivating: bool = False) -> Evaluation:
    """Lock, let ``change(account)`` write a staff action, decide, write, refresh; push after commit."""
    if database.in_transaction():
        raise RuntimeError("dunning evaluates in a transaction of its own; call it after committing")
    with database.atomic():
        services = _customer_prepaid(customer_id, lock=True)
        account = _lock_customer(customer_id)
        if change is not None:
            change(account)
        evaluation, decision = _judge(account, today, reactivating=reactivating)
        if reactivating:
            if decision.state == "terminated":
                raise ValidationError(
                    f"customer {account.account_number} still owes {Money(evaluation.overdue_minor, account.currency)}"
                    f", {evaluation.days_overdue} days overdue, past the terminate step of policy "
                    f"{evaluation.policy!r}: record a payment, grant a promise (dunning extend) or exempt them "
                    "first", "customer")
            evaluation.reason = "reactivated"
        for svc in services:
            new, event = svc.plan(today)
            if new != svc.paid_through or event is not None:
                evaluation.services.append(_write_service(svc, new, event))
        if evaluation.changed:
            _transition(account, evaluation)
        if evaluation.touched:
            evaluation.service_ids = tuple(enforcement.refresh_customer(customer_id, today) or ())
    _push(evaluation.service_ids)
    return evaluation


def evaluate_customer(customer_id: int, today: dt.date | None = None, *, actor: str | None = None) -> Evaluation:
    """Bring one customer's account state and prepaid access up to date as of ``today``.

    One transaction holding the customer's lock: two evaluations at once make one
    transition. Repeating it changes nothing. Call it outside any transaction.
    """
    today = today or clock.today()
    if actor is None:
        return _evaluate(customer_id, today)
    with audit.acting_as(actor):
        return _evaluate(customer_id, today)


# --- the daily run -----------------------------------------------------------------

@dataclass
class RunResult:
    """What a dunning run did (or, dry, would do)."""

    date: dt.date
    dry_run: bool = False
    transitions: list = field(default_factory=list)  # event payloads of account transitions
    services: list = field(default_factory=list)  # prepaid services changed
    failures: dict = field(default_factory=dict)  # account number -> error
    customers: int = 0  # customers evaluated
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """As JSON for the CLI."""
        return {"date": self.date.isoformat(), "dry_run": self.dry_run, "transitions": self.transitions,
                "services": self.services, "failures": self.failures, "customers": self.customers,
                "seconds": round(self.seconds, 3)}


def plan(today: dt.date) -> dict[int, Evaluation]:
    """The customers whose account state or prepaid access changes on ``today``, and how.

    Read-only, in a handful of queries whatever the number of customers: the overdue
    amounts are summed by the database, and only customers that owe something or are not
    active are looked at.
    """
    p = database.param
    rows = database.execute_sql(
        "SELECT c.id, c.account_number, c.currency, c.state, c.dunning_policy_id, c.dunning_exempt, c.promise_until, "
        f"o.minor, o.oldest FROM customer c LEFT JOIN ({_OVERDUE_BY_CUSTOMER.format(p=p)}) o "
        "ON o.customer_id = c.id AND o.currency = c.currency WHERE c.state <> 'active' OR o.customer_id IS NOT NULL",
        (_param(today),)).fetchall()
    policies = all_policies()
    by_plan = plan_policies()
    fallback = None
    out: dict[int, Evaluation] = {}
    for cid, acct, currency, state, policy_id, exempt, promise, minor, oldest in rows:
        minor, oldest = int(minor or 0), to_date(oldest)
        days = (today - oldest).days if oldest is not None else 0
        policy = None
        if minor > 0 and not exempt and state != "terminated":
            policy = policies.get(policy_id) or most_lenient(policies[pid] for pid, _code in by_plan.get(cid, ()))
            if policy is None:
                fallback = fallback or default_policy()
                policy = fallback
        decision = decide(state=state, days_overdue=days, overdue_minor=minor, policy=policy, exempt=bool(exempt),
                          promise_until=to_date(promise), today=today)
        if decision.state != state:
            out[cid] = Evaluation(cid, acct, state, decision.state, decision.reason, minor, currency, days, oldest,
                                  policy.name if policy else None)
    for svc in _all_prepaid():
        new, event = svc.plan(today)
        if new == svc.paid_through and event is None:
            continue
        evaluation = out.get(svc.customer_id)
        if evaluation is None:  # only its services change: no states to report
            evaluation = out[svc.customer_id] = Evaluation(svc.customer_id, svc.account_number, "", "", "", 0, "", 0,
                                                           None)
        evaluation.services.append({"service_id": svc.id, "customer_id": svc.customer_id,
                                    "account_number": svc.account_number, "from_paid_through": _iso(svc.paid_through),
                                    "to_paid_through": new.isoformat(), "event": event})
    return out


def run(today: dt.date | None = None, *, dry_run: bool = False) -> RunResult:
    """Evaluate every customer whose state or prepaid access changes on ``today`` (default: today).

    Each is evaluated in a transaction of its own (see :func:`evaluate_customer`); one
    that fails is logged and reported, and the others go on. A second run on the same day
    finds nothing to do. ``dry_run`` reports what would change and writes nothing.
    """
    today = today or clock.today()
    started = time.perf_counter()
    result = RunResult(today, dry_run)
    planned = plan(today)
    if dry_run:
        for evaluation in planned.values():
            if evaluation.from_state != evaluation.to_state:
                result.transitions.append(evaluation.payload())
            result.services.extend(evaluation.services)
        result.customers = len(planned)
    else:
        for cid in sorted(planned):
            try:
                evaluation = evaluate_customer(cid, today)
            except Exception as exc:  # one customer's failure must not stop the others' restores
                log.exception("dunning: customer %s not evaluated", planned[cid].account_number)
                result.failures[planned[cid].account_number] = str(exc) or exc.__class__.__name__
                continue
            result.customers += 1
            if evaluation.changed:
                result.transitions.append(evaluation.payload())
            result.services.extend(evaluation.services)
    result.seconds = time.perf_counter() - started
    return result


# --- staff actions -----------------------------------------------------------------

def _set(account: _Account, **values) -> None:
    sets = ", ".join(f"{column} = {database.param}" for column in values)
    database.execute_sql(f"UPDATE customer SET {sets}, updated_at = {database.param} WHERE id = {database.param}",
                         (*values.values(), utcnow(), account.id))
    for column, value in values.items():
        setattr(account, column, value)


def extend(customer: Customer, until, *, note: str | None = None, force: bool = False,
           today: dt.date | None = None) -> Evaluation:
    """Record a promise to pay until ``until`` (inclusive) and re-evaluate at once.

    While it is in force the account is active (a throttled or suspended one is restored).
    ``until`` is today or later, and at most :data:`PROMISE_MAX_DAYS` days away unless
    ``force``. A terminated account keeps its state (see :func:`reactivate`).
    """
    today = today or clock.today()
    day = validate.date(until, "until")
    if day < today:
        raise ValidationError(f"a promise to pay runs until today or a later day, not {day.isoformat()}", "until")
    if day > today + dt.timedelta(days=PROMISE_MAX_DAYS) and not force:
        raise ValidationError(f"{day.isoformat()} is more than {PROMISE_MAX_DAYS} days away; "
                              "use --force to promise that far ahead", "until")
    note = validate.text(note, "note", required=False, max_length=500)

    def change(account):
        before = _iso(account.promise_until)
        _set(account, promise_until=day)
        audit.record("customer.promise_to_pay", "customer", account.id, {"promise_until": before},
                     {"promise_until": day.isoformat(), "note": note})
    return _evaluate(customer.id, today, change=change)


def clear_promise(customer: Customer, *, today: dt.date | None = None) -> Evaluation:
    """Withdraw a customer's promise to pay and re-evaluate at once."""
    today = today or clock.today()

    def change(account):
        if account.promise_until is None:
            raise ValidationError(f"customer {account.account_number} has no promise to pay", "customer")
        before = _iso(account.promise_until)
        _set(account, promise_until=None)
        audit.record("customer.promise_to_pay", "customer", account.id, {"promise_until": before},
                     {"promise_until": None})
    return _evaluate(customer.id, today, change=change)


def set_exempt(customer: Customer, exempt: bool = True, *, today: dt.date | None = None) -> Evaluation:
    """Exempt a customer from dunning (their account is active whatever they owe), or end it; re-evaluates."""
    today = today or clock.today()

    def change(account):
        if account.dunning_exempt == exempt:
            return
        _set(account, dunning_exempt=exempt)
        audit.record("customer.dunning_exempt", "customer", account.id, {"dunning_exempt": not exempt},
                     {"dunning_exempt": exempt})
    return _evaluate(customer.id, today, change=change)


def reactivate(customer: Customer, *, today: dt.date | None = None) -> Evaluation:
    """Take a terminated account out of termination, into the state its debt gives it now.

    Refused when the account is not terminated, or when what it owes would terminate it
    again at once (record a payment, a promise or an exemption first).
    """
    today = today or clock.today()

    def change(account):
        if account.state != "terminated":
            raise ValidationError(f"customer {account.account_number} is {account.state}, not terminated", "customer")
    return _evaluate(customer.id, today, change=change, reactivating=True)


def assign(customer: Customer, policy_name, *, today: dt.date | None = None) -> Evaluation:
    """Give a customer a dunning policy of their own (or none: ``"none"``) and re-evaluate at once."""
    today = today or clock.today()

    def change(account):
        _before, after = assign_customer(Customer(id=account.id, dunning_policy=account.dunning_policy_id),
                                         policy_name)
        account.dunning_policy_id = after.id if after else None
    return _evaluate(customer.id, today, change=change)


# --- what staff see ----------------------------------------------------------------

def status(customer: Customer, *, today: dt.date | None = None) -> dict:
    """A customer's dunning position: state and since when, policy, what is overdue, promise,
    exemption, what happens next and when, and their prepaid services' access."""
    today = today or clock.today()
    c = Customer.get_by_id(customer.id)
    minor, oldest = overdue(c.id, c.currency, today)
    days = (today - oldest).days if oldest is not None else 0
    policy, source = effective(c.id, c.dunning_policy_id)
    decision = decide(state=c.state, days_overdue=days, overdue_minor=minor, policy=policy, exempt=c.dunning_exempt,
                      promise_until=c.promise_until, today=today)
    upcoming = next_step(state=decision.state, oldest_due=oldest, overdue_minor=minor, policy=policy,
                         exempt=c.dunning_exempt, promise_until=c.promise_until, today=today)
    services = []
    for svc in _customer_prepaid(c.id, lock=False):
        stored = svc.paid_through or svc.target()
        services.append({"service_id": svc.id, "paid_through": _iso(svc.paid_through),
                         "expired": svc.expired(stored, today)})
    return {
        "customer_id": c.id, "account_number": c.account_number, "date": today.isoformat(), "state": c.state,
        "since": c.state_changed_at.isoformat(timespec="seconds") if c.state_changed_at else None,
        "due_state": decision.state, "reason": decision.reason,
        "policy": {"name": policy.name, "source": source, "minimum": Money(policy.minimum_owed_minor,
                                                                             c.currency).to_dict(),
                   "steps": {s: d for s, d in policy.steps()}},
        "overdue": Money(minor, c.currency).to_dict(), "days_overdue": days, "oldest_due_date": _iso(oldest),
        "promise_until": _iso(c.promise_until),
        "promise_active": c.promise_until is not None and c.promise_until >= today,
        "exempt": c.dunning_exempt,
        "next": None if upcoming is None else {"state": upcoming[0], "on": upcoming[1].isoformat()},
        "prepaid": services,
    }

