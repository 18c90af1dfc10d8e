"""What customers ask for in the portal: messages to the operator and plan-change requests.

A request is ``open`` until staff close it with a reply, as ``done`` or ``declined``. A
plan-change request changes nothing by itself: staff carry it out, and :func:`accept`
does so at the service's next renewal (:func:`core.services.change_plan`) and closes the
request in one step. Every request and every reply is audited.
"""

from __future__ import annotations

from core import audit, catalog, services, validate
from core.clock import utcnow
from core.db import database
from core.errors import NotFound, ValidationError
from core.models import CUSTOMER_REQUEST_KINDS, Customer, CustomerRequest, Plan, Service

BODY_MAX = 2000
REPLY_MAX = 2000
OPEN_MAX = 10  # open requests one customer may have at a time


def _open_count(customer: Customer) -> int:
    return CustomerRequest.select().where((CustomerRequest.customer == customer.id)
                                          & (CustomerRequest.status == "open")).count()


def _create(customer: Customer, kind: str, body: str, service=None, plan=None) -> CustomerRequest:
    if _open_count(customer) >= OPEN_MAX:
        raise ValidationError(f"you have {OPEN_MAX} requests waiting for an answer; please wait for a reply first",
                              "body")
    row = CustomerRequest.create(customer=customer.id, kind=kind, body=body, service=service, plan=plan)
    audit.record("request.create", "customer_request", row.id, None, audit.snapshot(row))
    return row


def send_message(customer: Customer, body) -> CustomerRequest:
    """A message from ``customer`` to the operator."""
    body = validate.text(body, "message", max_length=BODY_MAX)
    with database.atomic():
        return _create(customer, "message", body)


def active_services(customer: Customer) -> list[Service]:
    """The customer's services that are not cancelled or ended, oldest first."""
    return list(Service.select().where((Service.customer == customer.id) & (Service.status != "cancelled")
                                       & Service.end_date.is_null()).order_by(Service.id))


def plan_choices(service: Service) -> list[Plan]:
    """The plans ``service`` may move to: offered now, of the same kind, currency and billing period."""
    current = service.plan
    return sorted((p for p in catalog.listing()
                   if p.id != current.id and p.kind == current.kind and p.currency == current.currency
                   and (p.period, p.period_days) == (current.period, current.period_days)),
                  key=lambda p: (p.price_minor, p.name.lower()))


def ask_plan_change(customer: Customer, service_id, plan_id, note=None) -> CustomerRequest:
    """``customer`` asks to move their service ``service_id`` to plan ``plan_id``."""
    service = Service.get_or_none((Service.id == validate.integer(service_id, "service", minimum=1))
                                  & (Service.customer == customer.id))
    if service is None or service not in active_services(customer):
        raise ValidationError("choose one of your services", "service")
    wanted = validate.integer(plan_id, "plan", minimum=1)
    plan = next((p for p in plan_choices(service) if p.id == wanted), None)
    if plan is None:
        raise ValidationError("choose one of the plans offered for this service", "plan")
    note = validate.text(note, "note", required=False, max_length=BODY_MAX)
    body = f"Change {service.plan.name} to {plan.name}." + (f"\n\n{note}" if note else "")
    with database.atomic():
        return _create(customer, "plan_change", body, service=service.id, plan=plan.id)


def for_customer(customer: Customer, limit: int = 50) -> list[CustomerRequest]:
    """The customer's own requests, newest first."""
    return list(CustomerRequest.select().where(CustomerRequest.customer == customer.id)
                .order_by(CustomerRequest.id.desc()).limit(limit))


def listing(status: str | None = None, kind: str | None = None, limit: int = 200) -> list[CustomerRequest]:
    """Requests for staff: the open ones first (oldest first), then the closed (newest first)."""
    q = CustomerRequest.select(CustomerRequest, Customer).join(Customer)
    if status:
        q = q.where(CustomerRequest.status == status)
    if kind:
        q = q.where(CustomerRequest.kind == validate.choice(kind, "kind", CUSTOMER_REQUEST_KINDS))
    open_rows = list(q.where(CustomerRequest.status == "open").order_by(CustomerRequest.id).limit(limit))
    if status == "open" or len(open_rows) >= limit:
        return open_rows
    closed = list(q.where(CustomerRequest.status != "open").order_by(CustomerRequest.id.desc())
                  .limit(limit - len(open_rows)))
    return open_rows + closed


def get(request_id) -> CustomerRequest:
    """A request by id, or :class:`NotFound`."""
    row = CustomerRequest.get_or_none(CustomerRequest.id == validate.integer(request_id, "request", minimum=1))
    if row is None:
        raise NotFound(f"no request {request_id}")
    return row


def close(request: CustomerRequest, status: str, reply) -> CustomerRequest:
    """Close an open request as ``done`` or ``declined`` with a reply the customer sees, audited."""
    status = validate.choice(status, "status", ("done", "declined"))
    reply = validate.text(reply, "reply", max_length=REPLY_MAX)
    with database.atomic():
        row = CustomerRequest.get_by_id(request.id)
        if row.status != "open":
            raise ValidationError(f"request {row.id} is already closed", "status")
        before = audit.snapshot(row)
        updated = (CustomerRequest.update(status=status, reply=reply, closed_at=utcnow(),
                                          closed_by=audit.current_actor()[:150])
                   .where((CustomerRequest.id == row.id) & (CustomerRequest.status == "open")).execute())
        if not updated:  # closed by someone else meanwhile
            raise ValidationError(f"request {row.id} is already closed", "status")
        row = CustomerRequest.get_by_id(row.id)
        audit.record("request.close", "customer_request", row.id, before, audit.snapshot(row))
    return row


def accept(request: CustomerRequest, reply) -> tuple[CustomerRequest, dict]:
    """Carry out a plan-change request at the service's next renewal and close it as done.

    Returns the closed request and what :func:`core.services.change_plan` answered.
    """
    if request.kind != "plan_change" or request.service_id is None or request.plan_id is None:
        raise ValidationError("only a plan-change request for a service can be carried out", "kind")
    with database.atomic():
        if CustomerRequest.get_by_id(request.id).status != "open":
            raise ValidationError(f"request {request.id} is already closed", "status")
        result = services.change_plan(Service.get_by_id(request.service_id), Plan.get_by_id(request.plan_id),
                                      at_renewal=True)
        return close(request, "done", reply), result
