"""Corners of recording payments: decisions that race, repeats of held notices, refunds the invoices cannot take, what payers type."""

from __future__ import annotations

import threading

import pytest

from core import hookimpl, ledger, numbering, payments, refunds, reviews
from core.db import database
from core.errors import ValidationError
from core.hooktypes import GatewayInfo, PaymentNotice, RefundResult
from core.models import (
    Allocation,
    AuditEvent,
    Invoice,
    Payment,
    PaymentAttempt,
    PaymentReview,
    Refund,
)
from tests.factories import kes, make_customer, make_issued_invoice, notice


def due(invoice):
    row = Invoice.get_by_id(invoice.id)
    return row.total_minor - row.settled_minor


# --- the review queue --------------------------------------------------------------

def test_accepting_held_money_for_another_customer_leaves_the_suggested_customers_invoice_alone(db, pm):
    """A notice held because its amount differs from the started payment keeps that payment's
    invoice on the review row. Staff accept it for another customer (the documented
    ``--customer``) without naming an invoice: the money of customer B is allocated to
    customer A's invoice, so A's invoice shows paid while A's ledger still says A owes it."""
    a, b = make_customer(), make_customer()
    inv_a = make_issued_invoice(a, 100_000)
    PaymentAttempt.create(token="PA-1", gateway="manual", gateway_reference="G-1", customer=a.id,
                          invoice=inv_a.id, amount_minor=100_000, currency="KES")
    [held] = payments.record([notice("U1", 100_000 - 1, attempt="PA-1")])
    assert held.status == "held"
    reviews.accept(reviews.get(held.review_id), customer=b, note="it was B who paid")
    payment = Payment.get(Payment.reference == "U1")
    assert payment.customer_id == b.id
    for alloc in Allocation.select().where(Allocation.payment == payment.id):
        assert alloc.invoice.customer_id == b.id, "B's payment was allocated to an invoice of A"
    assert due(inv_a) == 100_000
    assert ledger.balance(a) == kes(due(inv_a))


def test_a_held_refund_delivered_again_is_a_duplicate(db, pm):
    """A refund notice for a payment not (yet) recorded is held; the gateway delivers it again.
    On SQLite ``_insert_once`` relies on the caller having looked for an existing row, but
    ``refunds.record_notice`` only looks in ``refund``, so the second delivery raises an
    IntegrityError (a 500 to the gateway, forever) instead of answering "duplicate"."""
    n = PaymentNotice("manual", "RF1", "refund", kes(1_000), refund_of="NOT-YET")
    assert payments.record([n])[0].status == "held"
    assert payments.record([n])[0].status == "duplicate"
    assert PaymentReview.select().count() == 1


def test_a_held_refund_delivered_again_after_its_payment_arrives_changes_nothing(db, pm):
    """Held once per (gateway, reference) like a payment, the docs say, and a repeat changes
    nothing. Once the payment is recorded, a repeat of the held refund notice is recorded as a
    refund while its review entry stays open, so staff still see it as money to decide on."""
    c = make_customer()
    n = PaymentNotice("manual", "RF1", "refund", kes(1_000), refund_of="P1")
    [held] = payments.record([n])
    assert held.status == "held"
    payments.record([notice("P1", 10_000, customer_id=c.id)])
    again = payments.record([n])[0]
    review = PaymentReview.get_by_id(held.review_id)
    assert (again.status, review.status) != ("recorded", "open"), \
        "the refund was recorded by the repeat while its review entry is still open"


def _pause_at(monkeypatch, module, name, parties):
    """Make every caller of ``module.name`` wait for the others (a rendezvous of ``parties``)."""
    barrier = threading.Barrier(parties)
    real = getattr(module, name)

    def waiting(*args, **kwargs):
        try:
            barrier.wait(3)
        except threading.BrokenBarrierError:  # SQLite: the other writer waits for our commit
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, waiting)


def _in_threads(*jobs):
    results, threads = {}, []

    def run(name, job):
        try:
            results[name] = ("ok", job())
        except Exception as exc:  # reported to the test
            results[name] = ("error", exc)
        finally:
            database.close()

    for name, job in jobs:
        threads.append(threading.Thread(target=run, args=(name, job)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_accept_and_reject_of_one_entry_at_the_same_time_make_one_decision(db, pm, monkeypatch):
    """``reviews._open`` reads the entry without locking it (READ COMMITTED on PostgreSQL):
    an accept (which locks only the customer) and a reject running at once both find it open,
    both succeed, and the money ends up recorded as a payment of an entry that says rejected
    ("returned to the sender"), or the other way round."""
    c = make_customer()
    [held] = payments.record([notice("U1", 60_000, account="who is this")])
    review = reviews.get(held.review_id)
    _pause_at(monkeypatch, reviews, "_close", 2)
    db.close()
    results = _in_threads(("accept", lambda: reviews.accept(review, customer=c)),
                          ("reject", lambda: reviews.reject(review, "returned to the sender")))
    succeeded = sorted(name for name, (status, _v) in results.items() if status == "ok")
    assert len(succeeded) == 1, f"both {succeeded} succeeded; entry now {PaymentReview.get_by_id(review.id).status}" \
                                f" with {Payment.select().count()} payment(s)"


# --- receipt numbers ---------------------------------------------------------------

def test_receipt_numbers_stay_gapless_when_two_payments_race_for_one_reference(db, pm, monkeypatch):
    """Two staff enter the same cheque reference for two customers at once. On PostgreSQL the
    loser's receipt number is taken (outside ``_insert_once``'s savepoint), its insert hits
    the unique index and is rolled back alone, and the transaction commits: the series skips
    a number. The next receipt is RCT-...-000003 after RCT-...-000001."""
    a, b = make_customer(), make_customer()
    _pause_at(monkeypatch, numbering, "take", 2)
    db.close()
    results = _in_threads(("a", lambda: payments.add_manual(a, kes(5_000), reference="CHQ 1")),
                          ("b", lambda: payments.add_manual(b, kes(5_000), reference="CHQ 1")))
    errors = [v for status, v in results.values() if status == "error"]
    assert len(errors) == 1 and isinstance(errors[0], ValidationError) and "already payment" in str(errors[0])
    monkeypatch.undo()
    payments.add_manual(a, kes(1_000), reference="CHQ 2")
    numbers = sorted(p.receipt_number for p in Payment.select())
    assert numbers == [1, 2], f"receipt numbers {numbers}: one was lost"


# --- refunds -----------------------------------------------------------------------

class CountingRefundGateway:
    """A gateway whose refunds move real money: it counts them."""

    def __init__(self):
        self.refunded = []

    @hookimpl
    def gateway_describe(self):
        return [GatewayInfo("cardco", "Card Co", can_refund=True, interactive=False, webhooks=False)]

    @hookimpl
    def gateway_refund(self, gateway, payment, amount, reason):
        if gateway != "cardco":
            return None
        self.refunded.append(amount)
        return RefundResult("cardco", f"re_{len(self.refunded)}", amount)


def test_a_refund_the_invoices_cannot_take_is_refused_before_the_gateway_pays_it_out(db, pm):
    """``refunds.refund`` checks only what is left to refund, then asks the gateway to pay
    the money out, and only then finds (in ``record``) that the paid invoice can take less
    credit than that: the refund is refused and nothing is recorded, but the gateway has
    already sent the money back to the payer."""
    from core import credit_notes

    gateway = CountingRefundGateway()
    pm.add(gateway, "cardco_plugin", "test")
    c = make_customer()
    inv = make_issued_invoice(c, 100_000)
    payments.record([PaymentNotice("cardco", "ch_1", "payment", kes(100_000), customer_id=c.id)])
    payment = Payment.get(Payment.reference == "ch_1")
    credit_notes.issue(Invoice.get_by_id(inv.id), reason="price correction", amount=kes(30_000))
    with pytest.raises(ValidationError):
        refunds.refund(payment, kes(100_000), reason="cancelled")
    assert Refund.select().count() == 0
    assert gateway.refunded == [], f"the gateway paid out {gateway.refunded} for a refund that was refused"


# --- the webhook endpoint ----------------------------------------------------------

class CrashingGateway:
    @hookimpl
    def gateway_describe(self):
        return [GatewayInfo("crashpay", "Crash Pay", currencies=("KES",))]

    @hookimpl
    def gateway_parse_notification(self, gateway, notification):
        if gateway != "crashpay":
            return None
        return [PaymentNotice("crashpay", "N1", "payment", kes(1_000), account="A000001")]


def test_a_failure_while_recording_a_notification_is_audited(app, client, pm, monkeypatch):
    """The docs: a failure of ours (the database, a crash) is answered 500 and leaves a
    ``webhook.failed`` audit event. Only failures while *reading* the notification are
    audited; one while recording it escapes ``receive`` and leaves no trace in the audit."""
    pm.add(CrashingGateway(), "crashpay_plugin", "test")

    def broken(*_a, **_k):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(payments, "record", broken)
    response = client.post("/hooks/crashpay", data=b"{}")
    assert response.status_code == 500
    assert AuditEvent.select().where(AuditEvent.action == "webhook.failed").count() == 1


# --- settings read once per request ------------------------------------------------

def test_a_setting_written_and_rolled_back_in_a_snapshot_is_not_read_back(db, pm):
    """``set_value`` puts the new value in the open snapshot as soon as its own (possibly
    nested) transaction block ends, not when it commits: when the outer transaction is rolled
    back (bad input later in the same change), the rest of the request reads a value the
    database does not hold, e.g. receipts are numbered with a prefix nobody saved."""
    from core import settings

    with settings.snapshot():
        assert settings.get("payments.receipt_prefix") == "RCT"  # the snapshot is loaded
        with pytest.raises(ValidationError):
            with database.atomic():
                settings.set_value("payments.receipt_prefix", "REC")
                settings.set_value("billing.terms_days", "not a number")  # the change is refused whole
        assert settings.get("payments.receipt_prefix") == "RCT"


# --- placing a notice by what the payer typed --------------------------------------

@pytest.mark.parametrize("typed", ["PAYMENT FOR INV-2026-99999999999999999999 THANKS", "FLAT B-2²"])
def test_whatever_a_payer_types_as_the_reference_is_held_not_a_crash(db, pm, typed):
    """The reference a payer types (an M-Pesa paybill account, a bank narrative) is matched
    by ``customers.match_reference``, which hands every word to ``invoices.find``; a number
    part too large for an integer column (SQLite) or a digit ``int()`` cannot read ("²")
    raises out of ``payments.record``: the webhook answers 500 forever and a statement
    import stops half way, instead of the money being held for review."""
    make_customer()
    [outcome] = payments.record([notice("TYPED-1", 1_000, account=typed)])
    assert outcome.status == "held"


def test_an_outside_refund_reference_already_used_for_another_payment_is_refused(db, pm):
    """``refunds.record`` answers an existing (gateway, reference) with that row, whatever
    payment and amount it was for. Staff recording a second reversal with a reference they
    already used (``--outside MPESA-REV-1``) for another payment get the *other* payment's
    refund back as if it were done: nothing is recorded for this payment, no error is shown."""
    c = make_customer()
    first, _ = payments.add_manual(c, kes(10_000), reference="P1")
    second, _ = payments.add_manual(c, kes(20_000), reference="P2")
    refunds.refund(first, kes(1_000), reason="overpaid", outside_reference="MPESA-REV-1")
    try:
        row = refunds.refund(second, kes(5_000), reason="paid twice", outside_reference="MPESA-REV-1")
    except ValidationError:
        return  # refused, as add_manual refuses a reference used with other details
    assert (row.payment_id, row.amount_minor) == (second.id, 5_000), \
        f"got refund {row.id} of payment {row.payment_id} for {row.amount_minor}; payment P2 has no refund"
