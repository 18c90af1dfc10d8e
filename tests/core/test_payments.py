"""Recording payments: idempotence, allocation, the review queue and refunds, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from core import ledger, payments, refunds, reviews
from core.errors import ValidationError
from core.hooktypes import PaymentNotice
from core.models import (
    AuditEvent,
    CreditNote,
    Event,
    Invoice,
    LedgerEntry,
    Payment,
    PaymentAttempt,
    PaymentReview,
    Refund,
)
from core.money import Money
from tests.concurrency import at_once
from tests.factories import kes, make_customer, make_issued_invoice, notice

D = dt.date


def invoice_state(invoice):
    row = Invoice.get_by_id(invoice.id)
    return row.status, row.settled_minor


def test_a_payment_pays_the_oldest_invoice_first_and_keeps_the_rest_as_credit(db, pm):
    c = make_customer()
    newer = make_issued_invoice(c, 300_000, due_date=D(2026, 4, 15))
    older = make_issued_invoice(c, 200_000, due_date=D(2026, 3, 15))
    [partial] = payments.record([notice("TX1", 250_000, customer_id=c.id)])
    assert partial.status == "recorded"
    assert invoice_state(older) == ("paid", 200_000)
    assert invoice_state(newer) == ("issued", 50_000)  # partial: the rest stays open
    payments.record([notice("TX2", 300_000, customer_id=c.id)])
    assert invoice_state(newer) == ("paid", 300_000)
    overpaid = Payment.get(Payment.reference == "TX2")
    assert overpaid.unallocated_minor == 50_000  # account credit
    assert ledger.balance(c) == kes(-50_000)
    assert ledger.balance(c).minor == sum(e.amount_minor for e in LedgerEntry.select().where(LedgerEntry.customer == c.id))
    # the credit pays the next invoice as soon as it is issued and credit is applied
    later = make_issued_invoice(c, 80_000, due_date=D(2026, 5, 15))
    from core import allocation
    from core.db import database

    with database.atomic():
        allocation.apply_credit(c.id)
    assert invoice_state(later) == ("issued", 50_000)
    assert Payment.get_by_id(overpaid.id).unallocated_minor == 0


def test_a_payment_for_a_named_invoice_pays_that_one_first(db, pm):
    c = make_customer()
    older = make_issued_invoice(c, 100_000, due_date=D(2026, 3, 15))
    named = make_issued_invoice(c, 100_000, due_date=D(2026, 4, 15))
    payments.record([notice("TX1", 150_000, invoice_id=named.id)])
    assert invoice_state(named) == ("paid", 100_000)
    assert invoice_state(older) == ("issued", 50_000)
    assert Payment.get(Payment.reference == "TX1").customer_id == c.id


def test_the_same_notice_a_hundred_times_is_one_payment(db, pm):
    c = make_customer()
    make_issued_invoice(c, 100_000)
    outcomes = payments.record([notice("TX1", 100_000, account=c.account_number)] * 100)
    assert [o.status for o in outcomes].count("recorded") == 1
    assert {o.status for o in outcomes[1:]} == {"duplicate"}
    assert Payment.select().count() == 1
    assert LedgerEntry.select().where(LedgerEntry.kind == "payment").count() == 1
    assert Event.select().where(Event.name == "payment.received").count() == 1


@pytest.mark.parametrize("workers", [2, 6])
def test_racing_deliveries_of_one_notice_make_one_payment(db, pm, workers):
    c = make_customer()
    make_issued_invoice(c, 100_000)
    statuses = at_once(workers, lambda: payments.record_notice(notice("RACE", 100_000, customer_id=c.id)).status)
    assert sorted(statuses) == ["duplicate"] * (workers - 1) + ["recorded"]
    assert Payment.select().count() == 1
    assert LedgerEntry.select().where(LedgerEntry.kind == "payment").count() == 1
    assert Invoice.get().settled_minor == 100_000


def test_racing_held_notices_are_held_once(db, pm):
    statuses = at_once(4, lambda: payments.record_notice(notice("NOBODY", 100_000, account="zzz")).status)
    assert sorted(statuses) == ["duplicate"] * 3 + ["held"]
    assert PaymentReview.select().count() == 1


def test_received_event_and_audit_are_written_with_the_payment(db, pm):
    c = make_customer()
    [outcome] = payments.record([notice("TX1", 5_000, customer_id=c.id, method="mpesa")])
    event = Event.get(Event.name == "payment.received")
    assert event.payload == {"payment_id": outcome.payment_id, "customer_id": c.id, "gateway": "manual",
                             "reference": "TX1", "amount_minor": 5_000, "currency": "KES",
                             "receipt": Payment.get_by_id(outcome.payment_id).receipt}
    assert event.dispatched_at is None  # handed to plugins by the outbox, after commit
    audit = AuditEvent.get(AuditEvent.action == "payment.record")
    assert audit.object_id == str(outcome.payment_id) and audit.after["amount_minor"] == 5_000


def test_receipt_numbers_are_gapless(db, pm):
    c = make_customer()
    payments.record([notice(f"T{i}", 1_000, customer_id=c.id) for i in range(3)])
    numbers = [p.receipt_number for p in Payment.select().order_by(Payment.id)]
    assert numbers == [1, 2, 3]
    assert Payment.get(Payment.reference == "T0").receipt == f"RCT-{dt.date.today().year}-000001"


# --- the review queue --------------------------------------------------------------

def _attempt(c, minor=100_000, gateway="manual", token="PA-1", gateway_reference="G-1", invoice=None):
    return PaymentAttempt.create(token=token, gateway=gateway, gateway_reference=gateway_reference, customer=c,
                                 invoice=invoice, amount_minor=minor, currency="KES")


def test_money_that_cannot_be_placed_is_held_not_applied(db, pm):
    c = make_customer()
    inv = make_issued_invoice(c, 100_000)
    _attempt(c, 100_000)
    cases = {
        "U1": (notice("U1", 100_000, account="nobody-knows-this"), "no customer matches account"),
        "U2": (notice("U2", 90_000, attempt="G-1"), "KES 900.00 received where KES 1,000.00 was asked for"),
        "U3": (notice("U3", 100_000, attempt="PA-missing"), "no payment was started"),
        "U4": (PaymentNotice("manual", "U4", "payment", Money(100, "USD"), customer_id=c.id), "paid in USD"),
        "U5": (notice("U5", 100_000, customer_id=999_999), "does not exist"),
    }
    for reference, (n, reason) in cases.items():
        [outcome] = payments.record([n])
        assert outcome.status == "held" and reason in outcome.reason, (reference, outcome)
    assert Payment.select().count() == 0
    assert invoice_state(inv) == ("issued", 0)
    assert LedgerEntry.select().where(LedgerEntry.kind == "payment").count() == 0
    assert Event.select().where(Event.name == "payment.received").count() == 0
    assert Event.select().where(Event.name == "payment.held").count() == 5
    # held once, however often it comes back
    assert payments.record([cases["U1"][0]])[0].status == "duplicate"
    assert PaymentReview.select().count() == 5


def test_staff_accept_or_reject_held_money(db, pm):
    c = make_customer()
    inv = make_issued_invoice(c, 100_000)
    [held] = payments.record([notice("U1", 60_000, account="ref 55 unknown")])
    with pytest.raises(ValidationError, match="which customer"):
        reviews.accept(reviews.get(held.review_id))
    row = reviews.accept(reviews.get(held.review_id), customer=c, note="phoned the payer")
    assert row.status == "accepted" and row.payment_id and row.resolution == "phoned the payer"
    assert invoice_state(inv) == ("issued", 60_000)
    # the gateway's reference is kept: the same notice again is still a duplicate
    assert payments.record([notice("U1", 60_000, account="ref 55 unknown")])[0].status == "duplicate"
    with pytest.raises(ValidationError, match="already accepted"):
        reviews.reject(reviews.get(held.review_id), "too late")

    [other] = payments.record([notice("U2", 10_000, account="???")])
    with pytest.raises(ValidationError, match="say why"):
        reviews.reject(reviews.get(other.review_id), " ")
    assert reviews.reject(reviews.get(other.review_id), "returned to sender").status == "rejected"
    assert Payment.select().count() == 1


def test_an_attempt_is_checked_and_closed_by_its_notice(db, pm):
    c = make_customer()
    inv = make_issued_invoice(c, 100_000)
    attempt = _attempt(c, 100_000, invoice=inv)
    failed = _attempt(c, 100_000, token="PA-2", gateway_reference="G-2")
    [ok] = payments.record([notice("P1", 100_000, attempt="PA-1")])
    assert ok.status == "recorded"
    row = PaymentAttempt.get_by_id(attempt.id)
    assert row.status == "succeeded" and row.payment_id == ok.payment_id
    assert invoice_state(inv) == ("paid", 100_000)
    # a push whose money another notice reported first (a paybill confirmation, same receipt) is closed too
    third = _attempt(c, 100_000, token="PA-3", gateway_reference="G-3")
    assert payments.record([notice("P1", 100_000, attempt="G-3")])[0].status == "duplicate"
    assert PaymentAttempt.get_by_id(third.id).status == "succeeded"
    assert PaymentAttempt.get_by_id(third.id).payment_id == ok.payment_id
    [fail] = payments.record([PaymentNotice("manual", "G-2", "failure", kes(0), attempt="G-2",
                                            message="cancelled by the payer")])
    assert fail.status == "failed"
    row = PaymentAttempt.get_by_id(failed.id)
    assert row.status == "failed" and row.message == "cancelled by the payer"
    assert Payment.select().count() == 1


def test_notices_a_gateway_should_never_send_are_refused_before_anything_is_written(db, pm):
    c = make_customer()
    bad = [notice("", 1_000, customer_id=c.id), notice("X", 0, customer_id=c.id),
           notice("X", 100, kind="gift", customer_id=c.id),
           PaymentNotice("manual", "R", "refund", kes(100)), notice("X" * 201, 100, customer_id=c.id)]
    for n in bad:
        with pytest.raises(ValidationError):
            payments.record([notice("GOOD", 1_000, customer_id=c.id), n])
    assert Payment.select().count() == 0


# --- manual payments ---------------------------------------------------------------

def test_manual_payments_are_idempotent_on_their_reference(db, pm):
    c = make_customer()
    first, created = payments.add_manual(c, kes(50_000), method="cheque", reference="CHQ 1001")
    assert created and first.method == "cheque" and first.recorded_by == "system"
    again, created = payments.add_manual(c, kes(50_000), method="cheque", reference="CHQ 1001")
    assert not created and again.id == first.id
    with pytest.raises(ValidationError, match="already payment"):
        payments.add_manual(c, kes(40_000), method="cheque", reference="CHQ 1001")
    with pytest.raises(ValidationError, match="method must be"):
        payments.add_manual(c, kes(1), method="gold")
    with pytest.raises(ValidationError, match="billed in KES"):
        payments.add_manual(c, Money(1, "USD"))
    generated, _ = payments.add_manual(c, kes(1_000))
    assert generated.reference.startswith("CASH-")
    assert Payment.select().count() == 2


# --- refunds -----------------------------------------------------------------------

def test_a_refund_takes_account_credit_first_then_credits_the_paid_invoices(db, pm):
    c = make_customer()
    inv = make_issued_invoice(c, 100_000)
    payment, _ = payments.add_manual(c, kes(150_000), reference="P1")
    assert payment.unallocated_minor == 50_000
    first = refunds.refund(payment, kes(30_000), reason="overpaid")
    assert Payment.get_by_id(payment.id).unallocated_minor == 20_000
    assert Payment.get_by_id(payment.id).status == "partially_refunded"
    assert CreditNote.select().count() == 0  # the credit was spare: no invoice is touched
    assert ledger.balance(c) == kes(-20_000)
    second = refunds.refund(payment, reason="service cancelled")  # all that is left: 1,200.00
    assert second.amount_minor == 120_000
    note = CreditNote.get()
    assert (note.invoice_id, note.total_minor, note.unallocated_minor) == (inv.id, 100_000, 0)
    assert invoice_state(inv) == ("paid", 100_000)  # a refund never makes an invoice due again
    assert ledger.balance(c) == kes(0)
    assert Payment.get_by_id(payment.id).status == "refunded"
    assert LedgerEntry.get(LedgerEntry.credit_note == note.id).refund_id == second.id
    assert {first.reference[:3], second.reference[:3]} == {"P1-"}
    assert Event.select().where(Event.name == "payment.refunded").count() == 2
    with pytest.raises(ValidationError, match="left to refund"):
        refunds.refund(payment, kes(1), reason="again")


def test_refund_on_a_partly_paid_invoice_keeps_what_is_due(db, pm):
    c = make_customer()
    inv = make_issued_invoice(c, 100_000)
    payment, _ = payments.add_manual(c, kes(40_000), reference="P1")
    refunds.refund(payment, kes(40_000), reason="paid by mistake", outside_reference="MPESA-REV-1")
    inv = Invoice.get_by_id(inv.id)
    assert (inv.status, inv.total_minor - inv.settled_minor) == ("issued", 60_000)
    assert ledger.balance(c) == kes(60_000)
    assert Refund.get().reference == "MPESA-REV-1"


def test_refunds_are_idempotent_and_checked(db, pm):
    c = make_customer()
    payment, _ = payments.add_manual(c, kes(10_000), reference="P1")
    row, created = refunds.record(payment, kes(4_000), reference="RF1", reason="x")
    again, created_again = refunds.record(payment, kes(4_000), reference="RF1", reason="x")
    assert created and not created_again and row.id == again.id
    for amount, message in ((kes(7_000), "left to refund"), (Money(1, "USD"), "not USD"), (kes(0), "more than zero")):
        with pytest.raises(ValidationError, match=message):
            refunds.refund(payment, amount, reason="r", outside_reference="X")
    with pytest.raises(ValidationError, match="needs a reason"):
        refunds.refund(payment, kes(1), reason="", outside_reference="X")
    assert Refund.select().count() == 1
    # a refund notice from a gateway: recorded once; one for an unknown payment is held
    out = payments.record([PaymentNotice("manual", "RF2", "refund", kes(1_000), refund_of="P1")] * 3)
    assert [o.status for o in out] == ["recorded", "duplicate", "duplicate"]
    [held] = payments.record([PaymentNotice("manual", "RF3", "refund", kes(1_000), refund_of="NOPE")])
    assert held.status == "held" and "not recorded" in held.reason
    [too_much] = payments.record([PaymentNotice("manual", "RF4", "refund", kes(9_000), refund_of="P1")])
    assert too_much.status == "held" and "left to refund" in too_much.reason
    assert Refund.select().count() == 2
