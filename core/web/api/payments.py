"""``/payments``: listing and reading payments, and recording money staff received."""

from __future__ import annotations

from core import payments
from core.models import Customer, Invoice, Payment
from core.validate import INT64_MAX
from core.web.api import bp
from core.web.api.auth import api_call
from core.web.api.common import ID, answer, one, paged
from core.web.api.fields import Field, Fields, page_fields
from core.web.api.openapi import operation

LIST = page_fields(Field("customer_id", "integer", minimum=1, maximum=INT64_MAX, description="Only this customer's."),
                   Field("gateway", max_length=40))
RECORD = Fields(
    Field("customer_id", "integer", required=True, minimum=1, maximum=INT64_MAX),
    Field("amount", "money", required=True, minimum=1, description="In the customer's currency."),
    Field("method", enum=payments.MANUAL_METHODS, description="Default cash."),
    Field("reference", max_length=200, description="The same reference again returns the payment already "
                                                   "recorded (200) instead of recording it twice."),
    Field("invoice_id", "integer", minimum=1, maximum=INT64_MAX, description="Pay this invoice first."),
    Field("received_on", "date", description="Default today."),
    Field("note", max_length=1000),
)


@bp.route("/payments", methods=["GET"])
@api_call("payments:read")
@operation("Payments, newest first", query=LIST, answer="PaymentList")
def list_payments():
    args = LIST.parse_query()
    query = Payment.select().order_by(Payment.id.desc())
    if "customer_id" in args:
        query = query.where(Payment.customer == one(Customer, args["customer_id"], "customer").id)
    if args.get("gateway"):
        query = query.where(Payment.gateway == args["gateway"])
    return answer(paged(query, args, payments.as_dict))


@bp.route(f"/payments/<{ID}:payment_id>", methods=["GET"])
@api_call("payments:read")
@operation("A payment with its allocations and refunds", answer="Payment")
def get_payment(payment_id: int):
    return answer(payments.as_dict(one(Payment, payment_id, "payment")))


@bp.route("/payments", methods=["POST"])
@api_call("payments:write")
@operation("Record a payment staff received (cash, transfer, ...)", body=RECORD, answer="Payment",
           status=(201, 200))
def record_payment():
    data = RECORD.parse_body()
    customer = one(Customer, data["customer_id"], "customer")
    invoice = one(Invoice, data["invoice_id"], "invoice") if data.get("invoice_id") else None
    payment, created = payments.add_manual(customer, data["amount"], method=data.get("method") or "cash",
                                           reference=data.get("reference"), invoice=invoice,
                                           received_on=data.get("received_on"), note=data.get("note") or None)
    return answer(payments.as_dict(payment), 201 if created else 200)
