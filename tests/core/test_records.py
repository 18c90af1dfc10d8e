"""Writes through the core: validation, gapless numbering and the audit trail."""

import pytest

from core import audit, catalog, customers, numbering, users
from core.db import bind, database
from core.errors import ValidationError
from core.models import AuditEvent, Customer, NumberSeries, Plan
from tests.conftest import run_concurrently
from tests.factories import make_customer


def test_customer_add_audits_with_actor(db):
    with audit.acting_as("user:alice"):
        customer = customers.add(name="Wanjiku", currency="kes", email="W@Example.COM")
    assert customer.currency == "KES" and customer.email == "W@example.com"
    event = AuditEvent.get((AuditEvent.object_type == "customer") & (AuditEvent.object_id == str(customer.id)))
    assert event.actor == "user:alice"
    assert event.action == "customer.create"
    assert event.before is None and event.after["name"] == "Wanjiku"


@pytest.mark.parametrize("fields, field", [
    ({"name": "", "currency": "KES"}, "name"),
    ({"name": "A", "currency": "XXQ"}, "currency"),
    ({"name": "A", "currency": "KES", "email": "not-an-email"}, "email"),
    ({"name": "A", "currency": "KES", "phone": "call me"}, "phone"),
    ({"name": "A", "currency": "KES", "terms_days": "-1"}, "terms_days"),
    ({"name": "A", "currency": "KES", "tax_exempt": True}, "tax_exemption_ref"),
])
def test_bad_customer_input_writes_nothing(db, fields, field):
    with pytest.raises(ValidationError) as info:
        customers.add(**fields)
    assert info.value.field == field
    assert Customer.select().count() == 0
    assert AuditEvent.select().count() == 0


def test_duplicate_account_number_refused(db):
    make_customer(account_number="ACC-1")
    with pytest.raises(ValidationError, match="already in use"):
        make_customer(account_number="ACC-1")
    assert Customer.select().count() == 1


def test_account_numbers_are_sequential(db):
    numbers = [make_customer().account_number for _ in range(3)]
    assert numbers == ["A000001", "A000002", "A000003"]


def test_numbering_rolls_back_with_the_transaction(db):
    with database.atomic():
        assert numbering.take("INV-2026") == 1
    with pytest.raises(RuntimeError):
        with database.atomic():
            assert numbering.take("INV-2026") == 2
            raise RuntimeError("issue failed")
    with database.atomic():
        assert numbering.take("INV-2026") == 2  # no gap
    assert NumberSeries.get_by_id("INV-2026").next_number == 3


def test_numbering_outside_transaction_refused(db):
    with pytest.raises(RuntimeError, match="inside a transaction"):
        numbering.take("X")


def test_concurrent_numbering_is_gapless(db, db_url):
    def take_ten(conn):
        taken = []
        for _ in range(10):
            with conn.atomic():
                taken.append(numbering.take("S", db=conn))
        return taken

    db.close()
    results = run_concurrently(db_url, take_ten, workers=4)
    assert sorted(n for taken in results for n in taken) == list(range(1, 41))
    bind(db_url)


def test_plan_price_change_makes_a_new_version(db):
    first = catalog.add(code="home", name="Home", kind="internet", price="1,000.00", currency="KES")
    second = catalog.add(code="home", name="Home", kind="internet", price="1,200.00", currency="KES")
    assert (first.version, second.version) == (1, 2)
    assert Plan.get_by_id(first.id).price_minor == 100_000  # the old version keeps its price
    assert [p.id for p in catalog.listing()] == [second.id]


@pytest.mark.parametrize("fields, field", [
    ({"price": "12.345"}, "price"),
    ({"price": "-5"}, "price"),
    ({"kind": "satellite"}, "kind"),
    ({"period": "days"}, "period_days"),
    ({"kind": "tv", "download_kbps": 100}, "kind"),
    ({"fup_download_kbps": 100}, "data_cap_mb"),
    ({"code": "Has Spaces"}, "code"),
])
def test_bad_plan_input_writes_nothing(db, fields, field):
    data = {"code": "p", "name": "P", "kind": "internet", "price": "10.00", "currency": "USD", **fields}
    with pytest.raises(ValidationError) as info:
        catalog.add(**data)
    assert info.value.field == field
    assert Plan.select().count() == 0


def test_users_hash_with_argon2_and_authenticate(db):
    user = users.create("clerk", "a long enough password", role="billing")
    assert user.password_hash.startswith("$argon2")
    assert users.authenticate("clerk", "a long enough password").id == user.id
    assert users.authenticate("clerk", "wrong password!!") is None
    assert users.authenticate("nobody", "a long enough password") is None
    with pytest.raises(ValidationError, match="at least"):
        users.create("other", "short")
    with pytest.raises(ValidationError, match="already exists"):
        users.create("clerk", "another long password")
