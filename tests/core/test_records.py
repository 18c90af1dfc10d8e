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


def test_search_treats_wildcards_literally(db):
    make_customer(name="100% Fibre Ltd")
    make_customer(name="1000 Hills Lodge")
    make_customer(name="snake_case Inc")
    make_customer(name="snakeXcase Inc")
    assert [c.name for c in customers.search("100%")] == ["100% Fibre Ltd"]
    assert [c.name for c in customers.search("SNAKE_")] == ["snake_case Inc"]
    assert {c.name for c in customers.search("hills")} == {"1000 Hills Lodge"}


def test_hand_typed_account_numbers_do_not_block_the_series(db):
    make_customer(account_number="A000001")
    make_customer(account_number="A000003")
    numbers = [make_customer().account_number for _ in range(3)]
    assert numbers == ["A000002", "A000004", "A000005"]


def test_defaults_come_from_the_billing_settings(db, pm):
    from core import settings

    settings.set_value("billing.currency", "ngn")
    settings.set_value("billing.terms_days", "30")
    customer = customers.add(name="Ada")
    assert (customer.currency, customer.terms_days) == ("NGN", 30)
    plan = catalog.add(code="basic", name="Basic", kind="tv", price="5,000")
    assert plan.currency == "NGN" and plan.price_minor == 500_000


def test_racing_writers_get_a_clear_error_not_a_crash(db, db_url):
    """Eight writers create the same user at once: one wins, the others are told why."""
    import threading

    from core.db import bind

    db.close()
    bind(db_url)
    barrier = threading.Barrier(8)

    def create(_conn):
        barrier.wait()
        try:
            users.create("racer", "a long enough password")
            return "created"
        except ValidationError as exc:
            return str(exc)
        finally:
            database.close()

    outcomes = run_concurrently(db_url, create, workers=8)
    assert outcomes.count("created") == 1
    assert set(outcomes) - {"created"} == {"user 'racer' already exists"}


def test_plan_and_user_creation_are_audited_without_secrets(db):
    with audit.acting_as("cli:ops"):
        plan = catalog.add(code="fibre", name="Fibre", kind="internet", price="50", currency="USD")
        user = users.create("clerk2", "a long enough password", role="billing")
    plan_event = AuditEvent.get((AuditEvent.action == "plan.create") & (AuditEvent.object_id == str(plan.id)))
    assert plan_event.actor == "cli:ops" and plan_event.after["price_minor"] == 5000
    user_event = AuditEvent.get((AuditEvent.action == "user.create") & (AuditEvent.object_id == str(user.id)))
    assert user_event.after["username"] == "clerk2" and user_event.after["role"] == "billing"
    assert "password_hash" not in user_event.after
    assert "argon2" not in str(user_event.after)
