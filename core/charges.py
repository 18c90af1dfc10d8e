"""One-off charges (equipment, installation, a call-out) waiting for the next invoice."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from core import audit, validate
from core.clock import today
from core.db import database
from core.errors import ValidationError
from core.models import Charge, Customer, Service
from core.money import Money


def add(*, customer: Customer, description, amount, quantity="1", tax_category="standard", charge_date=None,
        service: Service | None = None) -> Charge:
    """Add a one-off charge of ``quantity`` x ``amount`` (the unit price, in the customer's currency).

    The next billing run whose as-of date is on or after ``charge_date`` (default today)
    puts it on the customer's invoice.
    """
    unit = amount.minor if isinstance(amount, Money) else validate.money(amount, customer.currency, "amount").minor
    if isinstance(amount, Money) and amount.currency != customer.currency:
        raise ValidationError(f"the customer is billed in {customer.currency}, not {amount.currency}", "amount")
    try:
        qty = Decimal(str(quantity).strip())
    except InvalidOperation:
        raise ValidationError(f"quantity must be a number, not {quantity!r}", "quantity") from None
    if not qty.is_finite() or qty <= 0 or qty > 1_000_000 or qty.as_tuple().exponent < -3:
        raise ValidationError("quantity must be more than 0, at most 1,000,000, with up to 3 decimals", "quantity")
    if unit <= 0:
        raise ValidationError("the amount must be more than zero (use a credit note to give money back)", "amount")
    total = Money(unit, customer.currency).multiply(qty)
    if service is not None and service.customer_id != customer.id:
        raise ValidationError(f"service {service.id} belongs to another customer", "service")
    with database.atomic():
        charge = Charge.create(customer=customer.id, service=service.id if service else None, kind="oneoff",
                               description=validate.text(description, "description", max_length=300),
                               quantity=qty, unit_price_minor=unit, amount_minor=total.minor,
                               currency=customer.currency, tax_category=validate.code(tax_category, "tax_category"),
                               charge_date=validate.date(charge_date, "date", today()), created_by=audit.current_actor())
        audit.record("charge.create", "charge", charge.id, None, audit.snapshot(charge))
    return charge


def as_dict(charge: Charge) -> dict:
    """A charge as JSON for the CLI and the API."""
    return {"id": charge.id, "customer_id": charge.customer_id, "service_id": charge.service_id,
            "kind": charge.kind, "description": charge.description, "quantity": str(charge.quantity),
            "unit_price": Money(charge.unit_price_minor, charge.currency).to_dict(),
            "amount": Money(charge.amount_minor, charge.currency).to_dict(),
            "date": charge.charge_date.isoformat(), "invoice_id": charge.invoice_id}
