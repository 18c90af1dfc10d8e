"""Suspending and restoring a customer by hand, with a reason.

Suspending by hand sets the customer's active services to status ``suspended``; the
enforcement layer cuts off a suspended service whatever the account's dunning state.
Restoring by hand puts those services back to ``active``. When the account itself is
throttled or suspended by dunning, restoring also records a promise to pay for
:data:`RESTORE_PROMISE_DAYS` days (``core.dunning.extend``, the reason as its note), so
that the subscriber is really back online; dunning takes over again when it runs out.

Each service's change is audited with the reason and emitted (``service.suspended``,
``service.restored``); the desired router state is refreshed in the same transaction
and pushed to the routers after commit. See ``docs/console.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from core import allocation, audit, clock, dunning, enforcement, events, validate
from core.db import database
from core.errors import ValidationError
from core.models import Customer, Service

log = logging.getLogger(__name__)

RESTORE_PROMISE_DAYS = 7
REASON_MAX = 500
_HELD_BY_DUNNING = ("throttled", "suspended")


@dataclass
class HoldResult:
    """What a suspension or restore did."""

    customer_id: int
    service_ids: list  # services whose status changed
    promise_until: dt.date | None = None  # the promise to pay a restore granted, if any


def _reason(reason) -> str:
    return validate.text(reason, "reason", max_length=REASON_MAX)


def _set_status(customer: Customer, services: list[Service], status: str, reason: str, today: dt.date) -> list[int]:
    """Write the new status of ``services``, audit and emit each; refresh the desired router state."""
    action = "suspended" if status == "suspended" else "restored"
    for service in services:
        before = {"status": service.status}
        Service.update(status=status).where(Service.id == service.id).execute()
        audit.record(f"service.{action}_by_hand", "service", service.id, before,
                     {"status": status, "reason": reason})
        events.emit(f"service.{action}", {"service_id": service.id, "customer_id": customer.id,
                                          "account_number": customer.account_number, "reason": reason,
                                          "by": "staff"})
    return list(enforcement.refresh_customer(customer.id, today) or ())


def _push(service_ids) -> None:
    """Send committed changes to the routers now; when one is down the reconciler retries."""
    if not service_ids:
        return
    try:
        enforcement.push_pending(list(service_ids))
    except Exception:  # committed already; a router that is down is the reconciler's job
        log.exception("holds: pushing services %s to their routers failed; the reconciler will retry",
                      list(service_ids))


def suspend(customer: Customer, reason, *, today: dt.date | None = None) -> HoldResult:
    """Suspend every active service of ``customer`` by hand, for ``reason`` (required)."""
    reason = _reason(reason)
    today = today or clock.today()
    if database.in_transaction():
        raise RuntimeError("holds.suspend pushes to routers after commit; call it outside a transaction")
    with database.atomic():
        allocation.lock_customer(customer.id)
        customer = Customer.get_by_id(customer.id)
        services = list(Service.select().where(Service.customer == customer.id, Service.status == "active")
                        .order_by(Service.id))
        if not services:
            raise ValidationError(f"customer {customer.account_number} has no active service to suspend", "customer")
        pushed = _set_status(customer, services, "suspended", reason, today)
        audit.record("customer.suspended_by_hand", "customer", customer.id, None,
                     {"reason": reason, "services": [s.id for s in services]})
    _push(pushed)
    return HoldResult(customer.id, [s.id for s in services])


def restore(customer: Customer, reason, *, today: dt.date | None = None) -> HoldResult:
    """Restore by hand, for ``reason`` (required): services suspended by hand go back to active,
    and an account throttled or suspended by dunning gets a promise to pay of
    :data:`RESTORE_PROMISE_DAYS` days. A terminated account is refused (reactivate it first)."""
    reason = _reason(reason)
    today = today or clock.today()
    if database.in_transaction():
        raise RuntimeError("holds.restore re-evaluates dunning after commit; call it outside a transaction")
    with database.atomic():
        allocation.lock_customer(customer.id)
        customer = Customer.get_by_id(customer.id)
        if customer.state == "terminated":
            raise ValidationError(f"customer {customer.account_number} is terminated; reactivate the account "
                                  "(dunning) before restoring it", "customer")
        services = list(Service.select().where(Service.customer == customer.id, Service.status == "suspended")
                        .order_by(Service.id))
        held = customer.state in _HELD_BY_DUNNING
        if not services and not held:
            raise ValidationError(f"customer {customer.account_number} is {customer.state} and has no service "
                                  "suspended by hand: nothing to restore", "customer")
        until = today + dt.timedelta(days=RESTORE_PROMISE_DAYS) if held else None
        pushed = _set_status(customer, services, "active", reason, today) if services else []
        audit.record("customer.restored_by_hand", "customer", customer.id, {"state": customer.state},
                     {"reason": reason, "services": [s.id for s in services],
                      "promise_until": until.isoformat() if until else None})
    _push(pushed)
    if until is not None:
        # Its own transaction (it locks the customer and re-evaluates): the account leaves
        # dunning's hold for the length of the promise.
        dunning.extend(customer, until, note=reason, today=today)
    return HoldResult(customer.id, [s.id for s in services], until)
