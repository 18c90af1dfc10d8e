"""Creating and listing customers: validation, account numbers and the audit trail."""

from __future__ import annotations

from core import audit, numbering, validate
from core.db import database
from core.errors import ValidationError
from core.models import Customer

ACCOUNT_SERIES = "ACCOUNT"


def add(*, name, currency, email=None, phone=None, address=None, terms_days=14,
        tax_region=None, tax_exempt=False, tax_exemption_ref=None, account_number=None,
        notes=None) -> Customer:
    """Validate and create a customer; the account number is taken from a gapless series if not given."""
    data = {
        "name": validate.text(name, "name"),
        "currency": validate.currency(currency),
        "email": validate.email(email),
        "phone": validate.phone(phone),
        "address": validate.text(address, "address", required=False, max_length=1000),
        "terms_days": validate.integer(terms_days, "terms_days", minimum=0, maximum=365),
        "tax_region": validate.text(tax_region, "tax_region", required=False, max_length=40),
        "tax_exempt": bool(tax_exempt),
        "tax_exemption_ref": validate.text(tax_exemption_ref, "tax_exemption_ref", required=False, max_length=100),
        "notes": validate.text(notes, "notes", required=False, max_length=5000),
    }
    if data["tax_exempt"] and not data["tax_exemption_ref"]:
        raise ValidationError("a tax-exempt customer needs an exemption reference", "tax_exemption_ref")
    wanted = validate.text(account_number, "account_number", required=False, max_length=40)
    with database.atomic():
        if wanted is None:
            number = f"A{numbering.take(ACCOUNT_SERIES):06d}"
        else:
            number = wanted
        if Customer.select().where(Customer.account_number == number).exists():
            raise ValidationError(f"account number {number!r} is already in use", "account_number")
        customer = Customer.create(account_number=number, **data)
        audit.record("customer.create", "customer", customer.id, None, audit.snapshot(customer))
    return customer


def search(query: str | None = None, limit: int = 100, offset: int = 0):
    """Customers whose name, account number, e-mail or phone contains ``query``, by name."""
    q = Customer.select().order_by(Customer.name, Customer.id)
    if query:
        like = f"%{query.strip()}%"
        q = q.where(
            Customer.name.ilike(like) | Customer.account_number.ilike(like)
            | Customer.email.ilike(like) | Customer.phone.ilike(like)
        )
    return list(q.limit(limit).offset(offset))


def as_dict(customer: Customer) -> dict:
    """A customer as JSON for the CLI and the API."""
    return {
        "id": customer.id,
        "account_number": customer.account_number,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "currency": customer.currency,
        "terms_days": customer.terms_days,
        "tax_region": customer.tax_region,
        "tax_exempt": customer.tax_exempt,
        "state": customer.state,
        "created_at": customer.created_at.isoformat(timespec="seconds"),
    }
