"""The schema's invariants hold in the database itself, on both backends."""

import peewee
import pytest

from core.db import database
from core.models import AuditEvent, Customer, LedgerEntry, Payment, Plan, Service
from tests.factories import make_customer, make_invoice, make_payment, make_plan, make_service


def _violates(fn):
    """Run ``fn`` in a savepoint and assert the database refused it."""
    with pytest.raises((peewee.IntegrityError, peewee.DataError)):
        with database.atomic():
            fn()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    from core.db import make_database

    db = make_database(f"sqlite:///{tmp_path / 'pragmas.db'}")
    db.connect()
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 10000
    db.close()


def test_decimals_round_trip_exactly(db):
    from decimal import Decimal

    from core.models import InvoiceLine

    invoice = make_invoice()
    line = InvoiceLine.create(invoice=invoice, position=1, kind="usage", description="data",
                              quantity=Decimal("123456789012.123456"), unit_price_minor=1, amount_minor=1)
    assert InvoiceLine.get_by_id(line.id).quantity == Decimal("123456789012.123456")
    with pytest.raises(TypeError, match="expected a Decimal"):
        InvoiceLine.create(invoice=invoice, position=2, kind="usage", description="x",
                           quantity=0.1, unit_price_minor=1, amount_minor=1)
    for bad, message in (("abc", "not a number"), ("NaN", "not a finite"), ("1e999", "more than 40")):
        with pytest.raises(ValueError, match=message):
            InvoiceLine.create(invoice=invoice, position=3, kind="usage", description="x",
                               quantity=bad, unit_price_minor=1, amount_minor=1)
    assert InvoiceLine.select().count() == 1


def test_payment_reference_is_unique_per_gateway(db):
    customer = make_customer()
    make_payment(customer, gateway="mpesa", reference="QX1")
    make_payment(customer, gateway="stripe", reference="QX1")  # another gateway may reuse it
    _violates(lambda: make_payment(customer, gateway="mpesa", reference="QX1"))
    assert Payment.select().count() == 2


def test_invoice_number_is_unique_per_series(db):
    customer = make_customer()
    make_invoice(customer, series="INV-2026", number=1, status="issued")
    make_invoice(customer, series="INV-2027", number=1, status="issued")
    _violates(lambda: make_invoice(customer, series="INV-2026", number=1, status="issued"))


def test_issued_invoice_needs_a_number(db):
    _violates(lambda: make_invoice(status="issued"))


def test_money_columns_refuse_bad_amounts_and_currencies(db):
    customer = make_customer()
    _violates(lambda: make_payment(customer, amount_minor=0))
    _violates(lambda: make_payment(customer, amount_minor=-5))
    _violates(lambda: make_payment(customer, currency="kes"))
    _violates(lambda: make_payment(customer, currency="KESH"))
    _violates(lambda: LedgerEntry.create(customer=customer, kind="adjustment", amount_minor=0,
                                         currency="KES", description="nothing"))


def test_foreign_keys_are_enforced(db):
    plan = make_plan()
    _violates(lambda: Service.create(customer=999_999, plan=plan, start_date="2026-01-01", anchor_day=1))


def test_customer_with_services_cannot_be_deleted(db):
    service = make_service()
    _violates(lambda: Customer.delete().where(Customer.id == service.customer_id).execute())


def test_plan_code_and_version_unique_and_choices_checked(db):
    plan = make_plan(code="home")
    _violates(lambda: Plan.insert(**{**plan.__data__, "id": None}).execute())
    _violates(lambda: Plan.update(kind="satellite").where(Plan.id == plan.id).execute())
    _violates(lambda: Plan.update(period="days", period_days=None).where(Plan.id == plan.id).execute())


def test_service_dates_and_anchor_checked(db):
    _violates(lambda: make_service(anchor_day=32))
    _violates(lambda: make_service(start_date="2026-02-01", end_date="2026-01-01"))


def test_json_columns_round_trip(db):
    event = AuditEvent.create(actor="t", action="x", object_type="y", before={"a": [1, "b"]}, after=None)
    again = AuditEvent.get_by_id(event.id)
    assert again.before == {"a": [1, "b"]}
    assert again.after is None
