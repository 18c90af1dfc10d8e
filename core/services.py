"""Subscriptions: a customer's services, their plan changes and cancellation.

A service bills from its start date; ``billed_through`` is the first day not yet on an
invoice or a pending charge. Plan changes between plans of the same period kind:

- an **upgrade** (a higher price) takes effect on the day asked (today by default): the
  days from then to the end of what is already billed are credited at the old price (a
  credit note on the invoice that billed them) and charged at the new price (a pending
  proration charge on the next invoice); days not yet billed on the old plan are charged
  at the old price up to the change;
- a **downgrade** waits for the next renewal unless asked for now, when it is handled as
  above (so the customer gets the difference back as account credit).

Cancelling ends the service on a date (today, or the end of the current period): days
already billed after it are credited, days before it not yet billed are billed by the
next run, and the service then stops being billed.
"""

from __future__ import annotations

import datetime as dt

from core import audit, billing, credit_notes, events, periods, validate
from core.clock import today
from core.db import database
from core.errors import NotFound, ValidationError
from core.models import BILLING_MODES, Charge, Customer, InvoiceLine, Plan, Service
from core.money import Money


def _plan(plan) -> Plan:
    if isinstance(plan, Plan):
        return plan
    text = str(plan).strip()
    code, _, version = text.partition("@")
    q = Plan.select().where(Plan.code == code)
    number = validate.as_id(version)
    q = q.where(Plan.version == number) if number is not None else q.order_by(Plan.version.desc())
    found = q.first()
    if found is None:
        raise ValidationError(f"no plan {text!r}", "plan")
    return found


def add(*, customer: Customer, plan, start_date=None, anchor_day=None, billing_mode="postpaid",
        price_override=None, username=None, password=None, ip_address=None) -> Service:
    """Subscribe ``customer`` to ``plan`` (a Plan, or a code, optionally ``code@version``)."""
    plan = _plan(plan)
    if not plan.active:
        raise ValidationError(f"plan {plan.code!r} is not offered any more", "plan")
    if plan.currency != customer.currency:
        raise ValidationError(f"plan {plan.code!r} is priced in {plan.currency} but customer "
                              f"{customer.account_number} is billed in {customer.currency}", "plan")
    start = validate.date(start_date, "start_date", today())
    anchor = validate.integer(anchor_day, "anchor_day", minimum=1, maximum=31, required=False) or start.day
    if plan.period != "monthly" and anchor != start.day:
        raise ValidationError("only monthly plans take an anchor day; other periods run from the start date",
                              "anchor_day")
    mode = validate.choice(billing_mode or "postpaid", "billing_mode", BILLING_MODES)
    override = None
    if price_override not in (None, ""):
        override = price_override.minor if isinstance(price_override, Money) else \
            validate.money(price_override, plan.currency, "price_override").minor
    with database.atomic():
        service = Service(customer=customer.id, plan=plan.id, start_date=start, anchor_day=anchor,
                          billing_mode=mode, billed_through=start, usage_billed_through=start,
                          price_override_minor=override,
                          username=validate.text(username, "username", required=False, max_length=100),
                          password=validate.text(password, "password", required=False, max_length=255),
                          ip_address=validate.text(ip_address, "ip_address", required=False, max_length=45))
        service.next_bill_date = billing.next_bill_date(_state(service), plan)
        service.save()
        audit.record("service.create", "service", service.id, None, audit.snapshot(service, exclude=("password",)))
        events.emit("service.created", {"service_id": service.id, "customer_id": customer.id, "plan_id": plan.id})
    return service


class _State:
    """A service seen the way the billing run sees it (see ``billing.segment``)."""

    def __init__(self, service: Service):
        self.start = service.start_date
        self.end = service.end_date
        self.anchor = service.anchor_day
        self.mode = service.billing_mode
        self.billed_through = service.billed_through or service.start_date
        self.usage_billed_through = service.usage_billed_through or service.start_date


def _state(service: Service) -> _State:
    return _State(service)


def _period(service: Service, plan: Plan, day: dt.date) -> tuple[dt.date, dt.date]:
    return periods.containing(day, period=plan.period, period_length=plan.period_days,
                              anchor_day=service.anchor_day, origin=service.start_date)


def _price(service: Service, plan: Plan) -> int:
    return plan.price_minor if service.price_override_minor is None else service.price_override_minor


def _stretches(service: Service, plan: Plan, a: dt.date, b: dt.date):
    """``[a, b)`` cut at period boundaries: ``(start, end, period_start, period_end)`` each."""
    day = a
    while day < b:
        p0, p1 = _period(service, plan, day)
        end = min(p1, b)
        yield day, end, p0, p1
        day = end


def _uncovered(a: dt.date, b: dt.date, covered) -> list[tuple[dt.date, dt.date]]:
    """``[a, b)`` less the ``(start, end)`` stretches in ``covered``."""
    out, day = [], a
    for s, e in sorted(covered):
        if e <= day or s >= b:
            continue
        if s > day:
            out.append((day, min(s, b)))
        day = max(day, e)
    if day < b:
        out.append((day, b))
    return out


def _credit_billed(service: Service, plan: Plan, a: dt.date, b: dt.date, reason: str) -> list:
    """Give back days ``[a, b)`` already charged: cut pending charges, credit invoiced ones.

    Days on a proration charge not yet invoiced are taken off the charge. Days on an
    issued invoice are credited at the price they were billed at, never more than the
    invoice has left before tax (a discount made the line cost less).
    """
    covered = []
    pending = Charge.select().where(Charge.service == service.id, Charge.invoice.is_null(),
                                    Charge.kind == "proration", Charge.period_end >= a)
    for charge in pending:
        s, e = charge.period_start, charge.period_end + dt.timedelta(days=1)
        covered.append((s, e))
        if s >= a:
            charge.delete_instance()
        else:
            p0, p1 = _period(service, plan, s)
            charge.amount_minor = periods.prorate(charge.unit_price_minor, p0, p1, s, a)
            charge.period_end = a - dt.timedelta(days=1)
            charge.save()
    notes = []
    for fa, fb in _uncovered(a, b, covered):
        for start, end, p0, p1 in _stretches(service, plan, fa, fb):
            last = end - dt.timedelta(days=1)
            line = (InvoiceLine.select().where(InvoiceLine.service == service.id,
                                              InvoiceLine.kind.in_(("recurring", "proration")),
                                              InvoiceLine.period_start <= start, InvoiceLine.period_end >= last)
                    .order_by(InvoiceLine.id.desc()).first())
            if line is None or line.invoice.status not in ("issued", "paid"):
                continue
            invoice = line.invoice
            amount = periods.prorate(line.unit_price_minor, p0, p1, start, end)
            left = line.amount_minor - sum(c.amount_minor for c in line.creditnoteline_set)
            done_total, done_tax = credit_notes.credited(invoice)
            room = (invoice.total_minor - done_total) if invoice.tax_inclusive \
                else invoice.subtotal_minor - (done_total - done_tax)
            amount = min(amount, left, room)
            if amount <= 0:
                continue
            notes.append(credit_notes.issue(invoice, reason=reason,
                                            parts=[credit_notes.Part(line.id, Money(amount, invoice.currency))]))
    return notes


def _charge_days(service: Service, plan: Plan, a: dt.date, b: dt.date, charge_date: dt.date, what: str) -> list:
    """Pending proration charges for days ``[a, b)`` at ``plan``'s price."""
    made = []
    for start, end, p0, p1 in _stretches(service, plan, a, b):
        amount = periods.prorate(_price(service, plan), p0, p1, start, end)
        last = end - dt.timedelta(days=1)
        made.append(Charge.create(
            customer=service.customer_id, service=service.id, kind="proration",
            description=f"{plan.name} ({what}), {billing._day(start)} to {billing._day(last)} "
                        f"({(end - start).days} of {(p1 - p0).days} days)",
            unit_price_minor=_price(service, plan), amount_minor=amount, currency=plan.currency,
            tax_category=plan.tax_category, charge_date=charge_date, period_start=start, period_end=last,
            created_by=audit.current_actor()))
    return made


def _settle_pending(service: Service, day: dt.date) -> list:
    """Apply a pending change whose date is on or before ``day`` that no run has applied yet.

    Days before the change not yet billed are charged at the old plan, as the run would
    have billed them; then the pending plan becomes the service's plan.
    """
    if service.pending_change_date is None or service.pending_change_date > day:
        return []
    old, switch = service.plan, service.pending_change_date
    made = []
    if service.billed_through < switch:
        charge_date = service.billed_through if service.billing_mode == "prepaid" else switch
        made = _charge_days(service, old, service.billed_through, switch, charge_date, "until the plan change")
        service.billed_through = switch
    service.plan = service.pending_plan_id
    service.price_override_minor = None
    service.pending_plan = None
    service.pending_change_date = None
    events.emit("service.changed", {"service_id": service.id, "customer_id": service.customer_id,
                                    "plan_id": service.plan_id})
    return made


def change_plan(service: Service, new_plan, *, on=None, now: bool = False, at_renewal: bool = False) -> dict:
    """Move ``service`` to ``new_plan``; see the module docstring for when it takes effect.

    ``on`` is today or a date already past; ``at_renewal`` waits for the end of the
    current period whatever the prices, ``now`` makes a downgrade take effect on ``on``.
    Returns ``{"effective": date, "upgrade": bool, "credit_notes": [...], "charges": [...]}``.
    """
    new = _plan(new_plan)
    if now and at_renewal:
        raise ValidationError("a plan change is either now or at renewal, not both", "now")
    day = validate.date(on, "on", today())
    if day > today():
        raise ValidationError("a plan change takes effect today or on a date already past; "
                              "to change when the current period ends, ask for it at renewal", "on")
    with database.atomic():
        billing.lock()
        service = Service.get_by_id(service.id)
        if service.status == "cancelled" or service.end_date is not None:
            raise ValidationError(f"service {service.id} is cancelled", "service")
        if day < service.start_date:
            raise ValidationError("a plan change cannot take effect before the service starts", "on")
        before = audit.snapshot(service, exclude=("password",))
        settled = _settle_pending(service, day)
        old = service.plan
        if new.id == old.id:
            raise ValidationError(f"service {service.id} is already on {new.code} version {new.version}", "plan")
        if new.currency != old.currency:
            raise ValidationError(f"plan {new.code!r} is priced in {new.currency}, the service in {old.currency}",
                                  "plan")
        if (new.period, new.period_days) != (old.period, old.period_days):
            raise ValidationError("a service can only move between plans with the same billing period; "
                                  "cancel it and subscribe anew", "plan")
        if not new.active:
            raise ValidationError(f"plan {new.code!r} is not offered any more", "plan")
        upgrade = new.price_minor > _price(service, old)
        result = {"effective": None, "credit_notes": [], "charges": list(settled), "upgrade": upgrade}
        if at_renewal or (not upgrade and not now):
            effective = _period(service, old, day)[1]
            service.pending_plan = new.id
            service.pending_change_date = effective
            result["effective"] = effective
        else:
            reason = f"Plan change from {old.name} to {new.name} on {day.isoformat()}"
            bt = service.billed_through
            if bt > day:
                result["credit_notes"] = _credit_billed(service, old, day, bt, reason)
                service.price_override_minor = None
                result["charges"] += _charge_days(service, new, day, bt, day, "from the plan change")
            elif bt < day:
                _p0, p1 = _period(service, old, bt)
                charge_date = day if service.billing_mode == "prepaid" else p1
                result["charges"] += _charge_days(service, old, bt, day, charge_date, "until the plan change")
                service.billed_through = day
            service.price_override_minor = None
            service.plan = new.id
            service.pending_plan = None
            service.pending_change_date = None
            result["effective"] = day
            events.emit("service.changed", {"service_id": service.id, "customer_id": service.customer_id,
                                            "plan_id": new.id})
        service.next_bill_date = billing.next_bill_date(_state(service), service.plan)
        service.save()
        audit.record("service.change_plan", "service", service.id, before,
                     audit.snapshot(service, exclude=("password",)))
    return result


def cancel(service: Service, *, on=None, at_period_end: bool = False, reason: str = "") -> dict:
    """End ``service`` on ``on`` (default today) or at the end of its current period."""
    with database.atomic():
        billing.lock()
        service = Service.get_by_id(service.id)
        if service.end_date is not None or service.status == "cancelled":
            raise ValidationError(f"service {service.id} is already cancelled", "service")
        day = validate.date(on, "on", today())
        if at_period_end:
            day = _period(service, service.plan, max(day, service.start_date))[1]
        if day < service.start_date:
            raise ValidationError("a service cannot end before it starts", "on")
        before = audit.snapshot(service, exclude=("password",))
        charged = _settle_pending(service, day - dt.timedelta(days=1))
        plan = service.plan
        notes = []
        if service.billed_through > day:
            notes = _credit_billed(service, plan, day, service.billed_through,
                                   reason or f"Service cancelled on {day.isoformat()}")
            service.billed_through = day
        service.end_date = day
        service.pending_plan = None
        service.pending_change_date = None
        if service.usage_billed_through and service.usage_billed_through > day:
            service.usage_billed_through = day
        service.next_bill_date = billing.next_bill_date(_state(service), plan)
        if service.next_bill_date is None:
            service.status = "cancelled"
        service.save()
        events.emit("service.cancelled", {"service_id": service.id, "customer_id": service.customer_id,
                                          "end_date": day.isoformat()})
        audit.record("service.cancel", "service", service.id, before, audit.snapshot(service, exclude=("password",)))
    return {"end_date": day, "credit_notes": notes, "charges": charged}


def get(service_id) -> Service:
    """A service by id, or :class:`NotFound`."""
    service = Service.get_or_none(Service.id == validate.integer(service_id, "service", minimum=1))
    if service is None:
        raise NotFound(f"no service {service_id}")
    return service


def listing(customer: Customer | None = None, limit: int = 1000) -> list[Service]:
    """Services, a customer's or everyone's, newest first."""
    q = Service.select().order_by(Service.id.desc()).limit(limit)
    if customer is not None:
        q = q.where(Service.customer == customer.id)
    return list(q)


def as_dict(service: Service) -> dict:
    """A service as JSON for the CLI and the API (no password)."""
    plan = service.plan
    price = _price(service, plan)
    return {
        "id": service.id, "customer_id": service.customer_id, "plan": plan.code, "plan_version": plan.version,
        "plan_name": plan.name, "status": service.status, "billing_mode": service.billing_mode,
        "price": Money(price, plan.currency).to_dict(), "start_date": service.start_date.isoformat(),
        "end_date": service.end_date.isoformat() if service.end_date else None, "anchor_day": service.anchor_day,
        "billed_through": service.billed_through.isoformat() if service.billed_through else None,
        "next_bill_date": service.next_bill_date.isoformat() if service.next_bill_date else None,
        "pending_plan": service.pending_plan.code if service.pending_plan_id else None,
        "pending_change_date": service.pending_change_date.isoformat() if service.pending_change_date else None,
        "username": service.username, "ip_address": service.ip_address,
    }
