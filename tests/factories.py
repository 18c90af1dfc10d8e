"""Factory helpers so that a test reads as the scenario it checks."""

from __future__ import annotations

import datetime as dt
import itertools

from core import catalog, customers
from core.models import Invoice, Payment, Service

_seq = itertools.count(1)


def make_customer(**overrides):
    data = {"name": f"Customer {next(_seq)}", "currency": "KES"}
    data.update(overrides)
    return customers.add(**data)


def make_plan(**overrides):
    n = next(_seq)
    data = {"code": f"plan-{n}", "name": f"Plan {n}", "kind": "internet", "price": "1,500.00",
            "currency": "KES", "download_kbps": 10_000, "upload_kbps": 2_000}
    data.update(overrides)
    return catalog.add(**data)


def make_service(customer=None, plan=None, **overrides):
    customer = customer or make_customer()
    plan = plan or make_plan(currency=customer.currency)
    data = {"customer": customer, "plan": plan, "start_date": dt.date(2026, 1, 1), "anchor_day": 1}
    data.update(overrides)
    return Service.create(**data)


def make_payment(customer=None, **overrides):
    customer = customer or make_customer()
    data = {"customer": customer, "gateway": "manual", "reference": f"R{next(_seq)}",
            "amount_minor": 150_000, "currency": customer.currency}
    data.update(overrides)
    return Payment.create(**data)


def make_invoice(customer=None, **overrides):
    customer = customer or make_customer()
    data = {"customer": customer, "currency": customer.currency}
    data.update(overrides)
    return Invoice.create(**data)


def make_issued_invoice(customer, total_minor, due_date=dt.date(2026, 3, 15), number=None):
    """An issued invoice of one line and no tax, posted to the ledger, as the billing run leaves one."""
    from core import ledger
    from core.db import database
    from core.models import InvoiceLine
    from core.money import Money

    with database.atomic():
        invoice = Invoice.create(customer=customer, currency=customer.currency, series="INV-2026",
                                 number=number or next(_seq), status="issued", subtotal_minor=total_minor,
                                 total_minor=total_minor, issue_date=due_date - dt.timedelta(days=14),
                                 due_date=due_date)
        InvoiceLine.create(invoice=invoice, position=1, kind="oneoff", description="Service",
                           unit_price_minor=total_minor, amount_minor=total_minor)
        ledger.post(customer.id, "invoice", Money(total_minor, customer.currency),
                    f"Invoice {invoice.display_number}", invoice=invoice.id)
    return invoice


def kes(minor: int):
    """Kenyan shillings, in cents."""
    from core.money import Money

    return Money(minor, "KES")


def notice(reference="TX1", minor=100_000, **overrides):
    """A payment notice from the ``manual`` gateway, as a gateway plugin would give the core."""
    from core.hooktypes import PaymentNotice

    data = {"gateway": "manual", "reference": reference, "kind": "payment", "amount": kes(minor)}
    data.update(overrides)
    return PaymentNotice(**data)
