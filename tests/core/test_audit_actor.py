"""A long actor name (a staff member with a 150-character username) fits every column that records who acted."""

from core import audit, charges, credit_notes
from core.models import AuditEvent, Charge, CreditNote
from core.money import Money
from tests.factories import make_customer, make_issued_invoice


def test_a_long_actor_is_cut_to_fit_not_refused(db):
    customer = make_customer(currency="KES")
    invoice = make_issued_invoice(customer, 10_000)
    long_actor = "user:" + "a" * 150
    with audit.acting_as(long_actor):
        assert audit.current_actor() == long_actor[:audit.ACTOR_LENGTH]
        note = credit_notes.issue(invoice, reason="goodwill", amount=Money(500, "KES"))
        charges.add(customer=customer, description="Router", amount="10")
    assert CreditNote.get_by_id(note.id).created_by == long_actor[:100]
    assert Charge.get().created_by == long_actor[:150]
    assert AuditEvent.select().where(AuditEvent.actor == long_actor[:150]).count() >= 2
