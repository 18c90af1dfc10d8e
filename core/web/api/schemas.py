"""JSON Schemas of what the API answers, for the OpenAPI document's ``components``.

They follow the ``as_dict`` functions of the core modules, which give the shapes.
"""

from __future__ import annotations


def _obj(required=(), **props) -> dict:
    return {"type": "object", "properties": props, "required": list(required or props)}


def _null(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


S, I, B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
NS, NI = _null(S), _null(I)
MONEY = {"$ref": "#/components/schemas/Money"}
NMONEY = _null(MONEY)


def _list(item: str) -> dict:
    return _obj(items={"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
                limit=I, offset=I)


CUSTOMER = _obj(id=I, account_number=S, name=S, email=NS, phone=NS, currency=S, terms_days=I, tax_region=NS,
                tax_exempt=B, state=S, created_at=S)
CUSTOMER_DETAIL = {"allOf": [{"$ref": "#/components/schemas/Customer"},
                             _obj(address=NS, notes=NS, tax_exemption_ref=NS, balance=MONEY)]}
PLAN = _obj(id=I, code=S, version=I, name=S, kind=S, period=S, period_days=NI, price=MONEY, setup_fee=MONEY,
            tax_category=S, download_kbps=NI, upload_kbps=NI, data_cap_mb=NI, fup_download_kbps=NI,
            fup_upload_kbps=NI, overage_per_gb=NMONEY, active=B)
SERVICE = _obj(id=I, customer_id=I, plan=S, plan_version=I, plan_name=S, status=S, billing_mode=S, price=MONEY,
               start_date=S, end_date=NS, anchor_day=I, billed_through=NS, next_bill_date=NS, pending_plan=NS,
               pending_change_date=NS, username=NS, ip_address=NS)
LINE = _obj(position=I, kind=S, description=S, service_id=NI, quantity=S, unit_price=MONEY, amount=MONEY,
            tax_category=S, period_start=NS, period_end=NS)
TAX = _obj(name=S, rate=S, compound=B, taxable=MONEY, tax=MONEY)
INVOICE = _obj(id=I, number=NS, customer_id=I, status=S, currency=S, subtotal=MONEY, tax=MONEY, total=MONEY,
               settled=MONEY, due=MONEY, issue_date=NS, due_date=NS, period_start=NS, period_end=NS, tax_inclusive=B)
INVOICE_DETAIL = {"allOf": [{"$ref": "#/components/schemas/Invoice"},
                            _obj(lines={"type": "array", "items": LINE}, taxes={"type": "array", "items": TAX})]}
CREDIT_NOTE = _obj(id=I, number=S, invoice_id=I, customer_id=I, subtotal=MONEY, tax=MONEY, total=MONEY,
                   unallocated=MONEY, reason=S, issued_at=S,
                   lines={"type": "array", "items": _obj(invoice_line_id=NI, description=S, amount=MONEY, tax=MONEY)})
PAYMENT = _obj(id=I, receipt=NS, customer_id=NI, account_number=NS, gateway=S, reference=S, method=NS, status=S,
               amount=MONEY, unallocated=MONEY, received_at=S, payer=NS, note=NS, recorded_by=NS,
               allocations={"type": "array", "items": _obj(invoice=NS, invoice_id=I, amount=MONEY)},
               refunds={"type": "array", "items": _obj(id=I, reference=NS, amount=MONEY, reason=NS, at=S)})
USAGE = _obj(service_id=I, period_start=S, period_end=S, bytes_in=I, bytes_out=I, bytes_total=I, cap_bytes=NI,
             percent_of_cap=NI, daily={"type": "array", "items": _obj(date=S, bytes_in=I, bytes_out=I)})
ROUTER = _obj(id=I, name=S, kind=S, host=S, port=NI, username=NS, use_tls=B, active=B, options={"type": "object"},
              services=I, pending=I, last_seen_at=NS, last_reconcile_at=NS, last_error=NS)
RECONCILE = _obj(router=S, desired=I, read=I, changes=I, applied=I, failed={"type": "object"}, error=NS,
                 seconds={"type": "number"})

COMPONENTS = {
    "Money": {"type": "object", "properties": {"minor": I, "currency": S}, "required": ["minor", "currency"],
              "description": "An amount in whole minor units of an ISO 4217 currency."},
    "Error": {"type": "object", "required": ["error", "message", "status"],
              "properties": {"error": S, "message": S, "status": I, "field": S}},
    "Customer": CUSTOMER, "CustomerDetail": CUSTOMER_DETAIL, "CustomerList": _list("Customer"),
    "Plan": PLAN, "PlanList": _list("Plan"),
    "Service": SERVICE, "ServiceList": _list("Service"),
    "Invoice": INVOICE, "InvoiceDetail": INVOICE_DETAIL, "InvoiceList": _list("Invoice"),
    "CreditNote": CREDIT_NOTE,
    "Payment": PAYMENT, "PaymentList": _list("Payment"),
    "PlanChange": _obj(service={"$ref": "#/components/schemas/Service"}, effective=NS, upgrade=B,
                       credit_notes={"type": "array", "items": S}, charges=I),
    "Cancellation": _obj(service={"$ref": "#/components/schemas/Service"}, end_date=S,
                         credit_notes={"type": "array", "items": S}, charges=I),
    "Usage": USAGE,
    "Router": ROUTER, "RouterList": _list("Router"), "Reconcile": RECONCILE,
}
