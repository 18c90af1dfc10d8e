"""``/customers``: search, read, add and edit the contact details of customers."""

from __future__ import annotations

from core import customers, ledger, validate
from core.models import Customer
from core.web.api import bp
from core.web.api.auth import api_call
from core.web.api.common import ID, answer, one
from core.web.api.fields import Field, Fields, page_fields
from core.web.api.openapi import operation

LIST = page_fields(Field("q", max_length=100, description="Text in the name, account number, e-mail or phone."))
CONTACT = (
    Field("email", max_length=254), Field("phone", max_length=40), Field("address", max_length=1000),
    Field("notes", max_length=5000),
)
CREATE = Fields(
    Field("name", required=True, max_length=200), *CONTACT,
    Field("currency", max_length=3, description="ISO 4217 code; default: the billing.currency setting."),
    Field("terms_days", "integer", minimum=0, maximum=365, description="Days to pay an invoice."),
    Field("tax_region", max_length=40), Field("tax_exempt", "boolean"), Field("tax_exemption_ref", max_length=100),
    Field("account_number", max_length=40, description="Default: the next number of the account series."),
)
UPDATE = Fields(Field("name", max_length=200, nullable=False), *CONTACT,
                description="Only the fields given change; null clears an optional one.")


def detail(customer: Customer) -> dict:
    """A customer with address, notes and balance."""
    return {**customers.as_dict(customer), "address": customer.address, "notes": customer.notes,
            "tax_exemption_ref": customer.tax_exemption_ref, "balance": ledger.balance(customer).to_dict()}


@bp.route("/customers", methods=["GET"])
@api_call("customers:read")
@operation("Search customers, by name", query=LIST, answer="CustomerList")
def list_customers():
    args = LIST.parse_query()
    query = validate.text(args.get("q"), "q", required=False, max_length=100)
    limit, offset = args.get("limit", 50), args.get("offset", 0)
    rows = customers.search(query, limit=limit, offset=offset)
    return answer({"items": [customers.as_dict(c) for c in rows], "limit": limit, "offset": offset})


@bp.route(f"/customers/<{ID}:customer_id>", methods=["GET"])
@api_call("customers:read")
@operation("A customer, with balance", answer="CustomerDetail")
def get_customer(customer_id: int):
    return answer(detail(one(Customer, customer_id, "customer")))


@bp.route("/customers", methods=["POST"])
@api_call("customers:write")
@operation("Add a customer", body=CREATE, answer="CustomerDetail", status=201)
def create_customer():
    data = CREATE.parse_body()
    return answer(detail(customers.add(**data)), 201)


@bp.route(f"/customers/<{ID}:customer_id>", methods=["PATCH"])
@api_call("customers:write")
@operation("Change a customer's name or contact details", body=UPDATE, answer="CustomerDetail")
def update_customer(customer_id: int):
    data = UPDATE.parse_body()
    customer = one(Customer, customer_id, "customer")
    return answer(detail(customers.update_contact(customer, data)))
