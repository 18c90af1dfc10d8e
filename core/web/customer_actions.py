"""The actions on the customer page: each a small form posted here, checked, done by the core.

Every action checks its permission on the server (``core.permissions``), calls the core
function that does and audits the work, and either goes back to the customer page with a
notice or, on bad input, shows the page again with the form, what was typed and the
message, with status 400 and nothing written. See ``docs/console.md``.
"""

from __future__ import annotations

import logging

from flask import flash, redirect, request, url_for

from core import charges, credit_notes, customers, dashboard, dunning, holds, payments, services, validate
from core.errors import ValidationError
from core.models import Customer, Invoice, Plan, Service
from core.web.admin import bp, get_customer, render_customer
from core.web.auth import staff

log = logging.getLogger(__name__)


def _form(*names) -> dict:
    return {name: request.form.get(name, "").strip() for name in names}


def _own(model, customer: Customer, value, field: str, what: str):
    """The row of ``model`` with id ``value`` that belongs to ``customer``, else a ValidationError.

    Another customer's row is refused in the same words as a missing one.
    """
    row_id = validate.as_id(value)
    row = model.get_or_none(model.id == row_id) if row_id is not None else None
    if row is None or row.customer_id != customer.id:
        raise ValidationError(f"choose one of this customer's {what}", field)
    return row


def _reevaluate(customer: Customer) -> None:
    """Bring the account state up to date now that what is owed changed.

    The dunning plugin does the same when the outbox delivers the event; doing it here
    means the page the clerk lands on already shows the account restored. Repeating it
    changes nothing.
    """
    try:
        dunning.evaluate_customer(customer.id)
    except Exception:  # the money is recorded; the outbox delivery evaluates again
        log.exception("console: re-evaluating customer %s after a payment failed", customer.account_number)


def _act(customer_id: int, name: str, fields: tuple, work):
    """Run ``work(customer, form)``; a notice and back to the page, or the page with the form and 400."""
    customer = get_customer(customer_id)
    form = _form(*fields)
    try:
        notice = work(customer, form)
    except ValidationError as exc:
        return render_customer(customer, errors={name: exc}, forms={name: form}, status=400)
    dashboard.forget()
    flash(notice)
    return redirect(url_for("admin.customer", customer_id=customer.id) + f"#{name}")


@bp.route("/customers/<int:customer_id>/payments", methods=("POST",))
@staff("payments.record")
def record_payment(customer_id: int):
    """Record money received by hand; it pays the chosen invoice first, else the oldest open ones."""
    def work(customer, form):
        amount = validate.money(form["amount"], customer.currency, "amount", allow_zero=False)
        invoice = _own(Invoice, customer, form["invoice"], "invoice", "invoices") if form["invoice"] else None
        method = validate.choice(form["method"] or "cash", "method", payments.MANUAL_METHODS)
        note = validate.text(form["note"], "note", required=False, max_length=500)
        payment, created = payments.add_manual(customer, amount, method=method, reference=form["reference"] or None,
                                               invoice=invoice, note=note)
        _reevaluate(customer)
        if not created:
            return f"That reference is already payment {payment.receipt}; nothing new was recorded."
        return f"Payment {payment.receipt} of {amount} recorded."
    return _act(customer_id, "payment", ("amount", "method", "reference", "invoice", "note"), work)


@bp.route("/customers/<int:customer_id>/charges", methods=("POST",))
@staff("charges.add")
def add_charge(customer_id: int):
    """Add a one-off charge; the next billing run puts it on an invoice."""
    def work(customer, form):
        service = _own(Service, customer, form["service"], "service", "services") if form["service"] else None
        charge = charges.add(customer=customer, description=form["description"], amount=form["amount"],
                             quantity=form["quantity"] or "1", service=service)
        return f"Charge “{charge.description}” added; it goes on the next invoice."
    return _act(customer_id, "charge", ("description", "amount", "quantity", "service"), work)


@bp.route("/customers/<int:customer_id>/credit-notes", methods=("POST",))
@staff("credit_notes.issue")
def issue_credit_note(customer_id: int):
    """Credit an amount of one of the customer's invoices, with a reason."""
    def work(customer, form):
        invoice = _own(Invoice, customer, form["invoice"], "invoice", "invoices")
        amount = validate.money(form["amount"], invoice.currency, "amount", allow_zero=False)
        reason = validate.text(form["reason"], "reason", max_length=500)
        note = credit_notes.issue(invoice, reason=reason, amount=amount)
        _reevaluate(customer)
        return f"Credit note {note.series}-{note.number:06d} of {amount} issued on {invoice.display_number}."
    return _act(customer_id, "credit_note", ("invoice", "amount", "reason"), work)


@bp.route("/customers/<int:customer_id>/plan", methods=("POST",))
@staff("services.change")
def change_plan(customer_id: int):
    """Move one of the customer's services to another plan, now or at its renewal."""
    def work(customer, form):
        service = _own(Service, customer, form["service"], "service", "services")
        plan_id = validate.as_id(form["plan"])
        plan = Plan.get_or_none(Plan.id == plan_id) if plan_id is not None else None
        if plan is None:
            raise ValidationError("choose a plan", "plan")
        when = validate.choice(form["when"] or "now", "when", ("now", "renewal"))
        result = services.change_plan(service, plan, now=when == "now", at_renewal=when == "renewal")
        return f"Service {service.id} moves to {plan.name} on {result['effective'].isoformat()}."
    return _act(customer_id, "plan", ("service", "plan", "when"), work)


@bp.route("/customers/<int:customer_id>/extension", methods=("POST",))
@staff("accounts.manage")
def grant_extension(customer_id: int):
    """Record a promise to pay until a date: no dunning step before it, and the account active."""
    def work(customer, form):
        dunning.extend(customer, form["until"], note=form["note"] or None)
        return f"Extension granted until {form['until']}."
    return _act(customer_id, "extension", ("until", "note"), work)


@bp.route("/customers/<int:customer_id>/suspend", methods=("POST",))
@staff("accounts.manage")
def suspend(customer_id: int):
    """Suspend the customer's active services by hand, with a reason."""
    def work(customer, form):
        result = holds.suspend(customer, form["reason"])
        return f"Suspended by hand: {len(result.service_ids)} service(s)."
    return _act(customer_id, "suspend", ("reason",), work)


@bp.route("/customers/<int:customer_id>/restore", methods=("POST",))
@staff("accounts.manage")
def restore(customer_id: int):
    """Restore by hand, with a reason (and a short promise to pay if dunning holds the account)."""
    def work(customer, form):
        result = holds.restore(customer, form["reason"])
        text = f"Restored by hand: {len(result.service_ids)} service(s)."
        if result.promise_until:
            text += f" A promise to pay runs until {result.promise_until.isoformat()}."
        return text
    return _act(customer_id, "restore", ("reason",), work)


@bp.route("/customers/<int:customer_id>/contact", methods=("POST",))
@staff("customers.edit")
def edit_contact(customer_id: int):
    """Change the customer's name, e-mail, phone, address and notes."""
    def work(customer, form):
        changed = customers.update_contact(customer, form)
        return f"Contact details of {changed.account_number} saved."
    return _act(customer_id, "contact", ("name", "email", "phone", "address", "notes"), work)
