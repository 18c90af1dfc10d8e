"""Customer messages end to end: an event or a reminder run, the queue, the scheduler's job, a real SMTP server.

The e-mails go to an aiosmtpd server on 127.0.0.1 (see tests/smtp_standin.py) and
are read back as the customer would get them.
"""

from __future__ import annotations

import datetime as dt

import pytest

from core import catalog, events, hookimpl, messages, notifications, payments, services, settings
from core.billing import run as bill
from core.clock import utcnow
from core.db import database
from core.models import Customer, Event, Notification, PayLink
from core.money import Money
from core.scheduler import collect_jobs, run_job
from tests.factories import make_customer, make_issued_invoice
from tests.smtp_standin import SmtpStandIn

D = dt.date


@pytest.fixture
def smtp(db, pm):
    with SmtpStandIn() as server:
        server.configure(**{"company.name": "Kijiji Net", "web.base_url": "https://billing.example.net"})
        yield server


def deliver_job():
    """Run the scheduler's delivery job once, as the scheduler would."""
    job = {j.id: j for j in collect_jobs()}["notifications.deliver"]
    return run_job(job)


def dispatch_and_deliver():
    events.dispatch_pending()
    return deliver_job()


def emit(name, payload):
    with database.atomic():
        return events.emit(name, payload)


def amina(**overrides):
    return make_customer(**{"name": "Amina Wanjiku", "email": "amina@example.org", **overrides})


def account_event(customer, name, from_state, to_state, **extra):
    payload = {"customer_id": customer.id, "account_number": customer.account_number, "from_state": from_state,
               "to_state": to_state, "reason": "policy default", "overdue_minor": 300_000, "currency": "KES",
               "days_overdue": 9, "oldest_due_date": "2026-03-01", **extra}
    return emit(name, payload)


def test_jobs_are_registered(pm):
    jobs = {j.id: j for j in collect_jobs(pm)}
    assert (jobs["notifications.deliver"].trigger, jobs["notifications.deliver"].schedule) == (
        "interval", {"seconds": 10})
    assert jobs["reminders.send"].trigger == "cron" and jobs["reminders.send"].schedule == {"hour": 8, "minute": 0}


# --- events --------------------------------------------------------------------------

def test_an_issued_invoice_is_emailed_with_its_pay_link(smtp):
    customer = amina()
    home = catalog.add(code="home", name="Home 10", kind="internet", price="3,000.00", currency="KES")
    services.add(customer=customer, plan=home, start_date=D(2026, 1, 1), billing_mode="prepaid")
    assert bill(D(2026, 1, 1)).invoice_numbers == ["INV-2026-000001"]

    outcome = dispatch_and_deliver()
    assert outcome.sent == 1
    [got] = smtp.received
    assert got.rcpt_tos == ["amina@example.org"]
    assert str(got.message["Subject"]) == "Invoice INV-2026-000001 from Kijiji Net"
    assert str(got.message["From"]) == "Kijiji Net <billing@example.net>"
    body = got.body
    assert body.startswith("Dear Amina Wanjiku,\n")
    assert "Your invoice INV-2026-000001 for KES 3,000.00 is ready." in body
    assert f"Account number: {customer.account_number}" in body and "Due date:       2026-01-15" in body
    assert f"https://billing.example.net/pay/{PayLink.get().token}" in body
    row = Notification.get()
    assert (row.key, row.status, row.reference) == (f"event:{Event.get(Event.name == 'invoice.issued').id}:invoice", "sent",
                                                    got.message["Message-ID"])


def test_a_payment_sends_a_receipt(smtp):
    customer = amina()
    invoice = make_issued_invoice(customer, 400_000)
    payment, _created = payments.add_manual(customer, Money(150_000, "KES"), method="mobile_money",
                                            reference="QK7TX31ABC", invoice=invoice)
    dispatch_and_deliver()
    [got] = smtp.received
    assert str(got.message["Subject"]) == f"Payment received: KES 1,500.00 (receipt {payment.receipt})"
    assert "Reference:      QK7TX31ABC" in got.body and "Paid by:        Mobile money" in got.body
    assert "You still owe KES 2,500.00." in got.body


@pytest.mark.parametrize("name, from_state, to_state, subject", [
    ("account.reminded", "active", "reminded", "Payment overdue on account {a}"),
    ("account.throttled", "reminded", "throttled", "Your internet speed has been reduced (account {a})"),
    ("account.suspended", "throttled", "suspended", "Your service is suspended (account {a})"),
    ("account.terminated", "suspended", "terminated", "Your service has ended (account {a})"),
    ("account.restored", "suspended", "active", "Your service is restored (account {a})"),
    ("account.restored", "throttled", "active", "Your service is restored (account {a})"),
])
def test_account_state_changes_send_their_message(smtp, name, from_state, to_state, subject):
    customer = amina()
    account_event(customer, name, from_state, to_state)
    dispatch_and_deliver()
    [got] = smtp.received
    assert str(got.message["Subject"]) == subject.format(a=customer.account_number)
    if to_state != "active":
        assert "KES 3,000.00" in got.body
    if to_state in ("reminded", "throttled", "suspended"):
        assert "2026-03-01" in got.body


def test_an_account_that_was_only_reminded_gets_no_restored_message(smtp):
    account_event(amina(), "account.restored", "reminded", "active")
    dispatch_and_deliver()
    assert smtp.received == [] and Notification.select().count() == 0
    assert Event.get().dispatched_at is not None


def test_a_redelivered_event_sends_one_email(smtp, pm):
    calls = []

    class Flaky:
        @hookimpl
        def handle_event(self, event):
            calls.append(event.id)
            if len(calls) == 1:
                raise RuntimeError("accounting system down")

    pm.add(Flaky(), "flaky", "test")
    account_event(amina(), "account.suspended", "throttled", "suspended")
    events.dispatch_pending()
    assert Event.get().dispatched_at is None  # offered again later, to every plugin
    Event.update(next_attempt_at=dt.datetime(2000, 1, 1)).execute()
    assert events.dispatch_pending() == 1 and len(calls) == 2
    deliver_job()
    deliver_job()
    assert len(smtp.received) == 1 and Notification.select().count() == 1


def test_a_customer_without_email_is_skipped(smtp):
    customer = amina(email=None)
    account_event(customer, "account.suspended", "throttled", "suspended")
    dispatch_and_deliver()
    row = Notification.get()
    assert row.status == "skipped" and row.last_error == f"customer {customer.account_number} has no e-mail address"
    assert smtp.received == [] and Event.get().dispatched_at is not None


def test_events_for_rows_that_do_not_exist_send_nothing(smtp):
    emit("invoice.issued", {"invoice_id": 7})
    emit("payment.received", {"payment_id": "x"})
    emit("account.suspended", {"customer_id": 999})
    emit("service.suspended", {"service_id": 1})
    assert events.dispatch_pending() == 4
    assert Notification.select().count() == 0


def test_an_operators_edit_is_what_the_customer_gets(smtp):
    messages.save("suspended", subject="{{ company_name }}: service paused for {{ account_number }}",
                  body="Hello {{ customer_name }}, please pay {{ overdue_amount }}.\n")
    customer = amina()
    account_event(customer, "account.suspended", "throttled", "suspended")
    dispatch_and_deliver()
    [got] = smtp.received
    assert str(got.message["Subject"]) == f"Kijiji Net: service paused for {customer.account_number}"
    assert got.body == "Hello Amina Wanjiku, please pay KES 3,000.00.\n"


def test_smtp_down_is_recorded_retried_and_delivered_when_it_is_back(smtp):
    port = smtp.port
    smtp.stop()
    account_event(amina(), "account.throttled", "reminded", "throttled")
    outcome = dispatch_and_deliver()
    assert (outcome.sent, outcome.retrying) == (0, 1)
    row = Notification.get()
    assert row.status == "pending" and row.attempts == 1
    assert f"the SMTP server 127.0.0.1:{port} cannot be reached: Connection refused" in row.last_error

    with SmtpStandIn(port=port) as back:
        assert deliver_job().sent == 0  # not yet: the next try is a minute after the first
        assert notifications.deliver_pending(now=utcnow() + dt.timedelta(minutes=1, seconds=1)).sent == 1
        [got] = back.received
        assert "speed has been reduced" in str(got.message["Subject"])
    row = Notification.get()
    assert (row.status, row.attempts, row.last_error, row.reference) == (
        "sent", 2, None, got.message["Message-ID"])


# --- the reminders job ---------------------------------------------------------------

def reminders_run(today):
    from plugins.customer_messages import reminders

    return reminders.send(today)


def test_due_soon_is_sent_once_per_invoice_a_few_days_before_the_due_date(smtp):
    customer = amina()
    invoice = make_issued_invoice(customer, 250_000, due_date=D(2026, 3, 15))  # issued 2026-03-01
    assert reminders_run(D(2026, 3, 11)) == 0  # four days before: not yet
    assert reminders_run(D(2026, 3, 12)) == 1
    assert reminders_run(D(2026, 3, 12)) == 0  # run again the same day: nothing new
    assert reminders_run(D(2026, 3, 13)) == 0  # nor the next day
    deliver_job()
    [got] = smtp.received
    assert str(got.message["Subject"]) == f"Invoice {invoice.display_number} is due on 2026-03-15"
    assert "in 3 days" in got.body and "https://billing.example.net/pay/" in got.body
    assert Notification.get().key == f"due_soon:invoice:{invoice.id}"


def test_due_soon_leaves_out_paid_and_short_term_invoices_and_can_be_off(smtp):
    customer = amina()
    paid = make_issued_invoice(customer, 100_000, due_date=D(2026, 3, 15))
    payments.add_manual(customer, Money(100_000, "KES"), invoice=paid)
    short = make_issued_invoice(customer, 100_000, due_date=D(2026, 3, 15))
    from core.models import Invoice

    Invoice.update(issue_date=D(2026, 3, 13)).where(Invoice.id == short.id).execute()
    assert reminders_run(D(2026, 3, 13)) == 0

    make_issued_invoice(amina(), 100_000, due_date=D(2026, 3, 15))
    settings.set_value("reminders.days_before_due", "0")
    assert reminders_run(D(2026, 3, 13)) == 0
    settings.set_value("reminders.days_before_due", "3")
    assert reminders_run(D(2026, 3, 13)) == 1


def _overdue(state="reminded", since=dt.datetime(2026, 3, 10, 6, 0), **overrides):
    customer = amina(**overrides)
    make_issued_invoice(customer, 300_000, due_date=D(2026, 3, 1))
    Customer.update(state=state, state_changed_at=since).where(Customer.id == customer.id).execute()
    return Customer.get_by_id(customer.id)


def test_overdue_accounts_are_reminded_again_every_few_days(smtp):
    settings.set_value("reminders.days_before_due", "0")
    customer = _overdue("suspended")
    assert reminders_run(D(2026, 3, 16)) == 0  # six days in the state
    assert reminders_run(D(2026, 3, 17)) == 1  # seven
    assert reminders_run(D(2026, 3, 17)) == 0
    assert reminders_run(D(2026, 3, 23)) == 0
    assert reminders_run(D(2026, 3, 24)) == 1  # fourteen
    keys = [n.key for n in Notification.select().order_by(Notification.id)]
    assert keys == [f"reminder:{customer.id}:2026-03-10T06:00:00:1", f"reminder:{customer.id}:2026-03-10T06:00:00:2"]
    deliver_job()
    assert [str(r.message["Subject"]) for r in smtp.received] == [
        f"Payment overdue on account {customer.account_number}"] * 2
    assert "KES 3,000.00 overdue" in smtp.received[1].body and "(23 days ago)" in smtp.received[1].body


def test_repeated_reminders_spare_promises_the_paid_the_terminated_and_can_be_off(smtp):
    settings.set_value("reminders.days_before_due", "0")
    _overdue("reminded")
    promised = _overdue("throttled")
    Customer.update(promise_until=D(2026, 3, 20)).where(Customer.id == promised.id).execute()
    _overdue("terminated")
    paid = _overdue("reminded")
    payments.add_manual(paid, Money(300_000, "KES"))
    assert reminders_run(D(2026, 3, 17)) == 1  # only the first
    settings.set_value("reminders.repeat_days", "0")
    assert reminders_run(D(2026, 3, 24)) == 0
