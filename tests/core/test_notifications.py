"""The notification queue: once per key, skipped without an address, delivered with retries and backoff.

A small notifier plugin for the ``email`` channel stands in for the mail server here;
the e-mail tests (tests/plugins) use a real one.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from core import hookimpl, messages, notifications
from core.clock import utcnow
from core.db import database
from core.hooktypes import Delivery
from core.models import Notification
from tests.factories import make_customer


class Mailbox:
    """Takes ``email`` messages before the built-in plugin; ``down`` makes it fail like a dead server."""

    def __init__(self):
        self.sent = []
        self.down = False

    @hookimpl(tryfirst=True)
    def notify(self, message):
        if message.channel != "email":
            return None
        if self.down:
            raise ConnectionRefusedError("connection refused")
        assert not database.in_transaction(), "a notifier must not be called inside a transaction"
        self.sent.append(message)
        return Delivery("mailbox", reference=f"<{len(self.sent)}@test>")


@pytest.fixture
def mailbox(pm):
    box = Mailbox()
    assert pm.add(box, "mailbox", "test")
    return box


def _context(customer):
    return messages.sample_context("restored") | messages.customer_context(customer)


def _queue(customer, key="event:1:restored"):
    return notifications.queue(key, customer, "restored", _context(customer))


def test_queue_renders_once_per_key(db):
    customer = make_customer(name="Amina Wanjiku", email="amina@example.org")
    row = _queue(customer)
    assert (row.status, row.recipient, row.channel, row.template, row.attempts) == (
        "pending", "amina@example.org", "email", "restored", 0)
    assert row.subject == f"Your service is restored (account {customer.account_number})"
    assert row.body.startswith("Dear Amina Wanjiku,\n")

    messages.save("restored", subject="Back online")  # a later edit does not change what was queued
    again = _queue(customer)
    assert again.id == row.id and again.subject == row.subject
    assert Notification.select().count() == 1
    assert _queue(customer, key="event:2:restored").subject == "Back online"


def test_a_customer_without_an_address_is_skipped_with_the_reason(db, mailbox):
    customer = make_customer(email=None, phone="+254700000001")
    row = _queue(customer)
    assert row.status == "skipped" and row.recipient is None
    assert row.last_error == f"customer {customer.account_number} has no e-mail address"
    sms = notifications.queue("event:1:restored:sms", customer, "restored", _context(customer), channel="sms")
    assert sms.status == "pending" and sms.recipient == "+254700000001"
    assert notifications.deliver_pending().sent == 0  # nobody takes sms here; the skipped one is not tried
    assert mailbox.sent == []


def test_a_template_that_cannot_render_queues_nothing(db):
    customer = make_customer(email="a@example.org")
    with pytest.raises(Exception, match="cannot be rendered"):
        notifications.queue("event:1:invoice", customer, "invoice", messages.customer_context(customer))
    assert Notification.select().count() == 0
    with pytest.raises(ValueError, match="1 to 200"):
        notifications.queue("k" * 201, customer, "restored", _context(customer))


def test_deliver_marks_rows_sent_with_the_notifiers_reference(db, mailbox):
    first = _queue(make_customer(email="a@example.org"), "k1")
    second = _queue(make_customer(email="b@example.org"), "k2")
    outcome = notifications.deliver_pending()
    assert (outcome.sent, outcome.retrying, outcome.failed, outcome.errors) == (2, 0, 0, [])
    assert [(m.to, m.template, m.customer_id) for m in mailbox.sent] == [
        ("a@example.org", "restored", first.customer_id), ("b@example.org", "restored", second.customer_id)]
    assert mailbox.sent[0].subject == first.subject and mailbox.sent[0].body == first.body
    row = Notification.get_by_id(first.id)
    assert (row.status, row.notifier, row.reference, row.attempts, row.last_error) == (
        "sent", "mailbox", "<1@test>", 1, None)
    assert row.sent_at is not None and notifications.next_attempt_at(row) is None
    assert notifications.deliver_pending().sent == 0  # nothing twice
    assert len(mailbox.sent) == 2


def test_failures_are_retried_with_growing_pauses_then_marked_failed(db, mailbox):
    row = _queue(make_customer(email="a@example.org"))
    queued_at = row.created_at
    mailbox.down = True
    outcome = notifications.deliver_pending()
    assert (outcome.sent, outcome.retrying) == (0, 1)
    [(row_id, error)] = outcome.errors
    assert row_id == row.id and "plugin 'mailbox' failed in notify" in error and "connection refused" in error
    stored = Notification.get_by_id(row.id)
    assert (stored.status, stored.attempts) == ("pending", 1) and "connection refused" in stored.last_error
    assert notifications.next_attempt_at(stored) == queued_at + dt.timedelta(minutes=1)

    # Too early for the next try: nothing is called.
    assert notifications.deliver_pending(now=queued_at + dt.timedelta(seconds=59)).retrying == 0
    assert Notification.get_by_id(row.id).attempts == 1
    # Each pause doubles: 1, 2, 4, ... minutes, at most six hours.
    assert [notifications.retry_delay(n) for n in (1, 2, 3, 9, 10, 11)] == [
        dt.timedelta(minutes=m) for m in (1, 2, 4, 256, 360, 360)]
    for attempts in range(1, notifications.MAX_ATTEMPTS - 1):
        due = queued_at + notifications._waited(attempts)
        assert notifications.deliver_pending(now=due - dt.timedelta(seconds=1)).retrying == 0
        assert notifications.deliver_pending(now=due).retrying == 1
    assert Notification.get_by_id(row.id).attempts == notifications.MAX_ATTEMPTS - 1
    last = notifications.deliver_pending(now=utcnow() + dt.timedelta(days=2))
    assert (last.retrying, last.failed) == (0, 1)
    stored = Notification.get_by_id(row.id)
    assert (stored.status, stored.attempts) == ("failed", notifications.MAX_ATTEMPTS)
    assert notifications._waited(notifications.MAX_ATTEMPTS - 1) > dt.timedelta(hours=20)

    mailbox.down = False
    assert notifications.deliver_pending(now=utcnow() + dt.timedelta(days=3)).sent == 0  # failed stays failed
    assert mailbox.sent == []


def test_a_server_back_up_gets_the_waiting_message(db, mailbox):
    row = _queue(make_customer(email="a@example.org"))
    mailbox.down = True
    notifications.deliver_pending()
    mailbox.down = False
    assert notifications.deliver_pending().sent == 0  # still waiting for its next try
    assert notifications.deliver_pending(include_waiting=True).sent == 1
    stored = Notification.get_by_id(row.id)
    assert (stored.status, stored.attempts, stored.last_error) == ("sent", 2, None)


def test_no_notifier_for_the_channel_is_recorded_as_an_error(db, pm):
    row = notifications.queue("k", make_customer(phone="+254700000009"), "restored",
                              _context(make_customer()), channel="sms")
    outcome = notifications.deliver_pending()
    assert outcome.errors == [(row.id, "no notifier delivers the 'sms' channel")]
    assert Notification.get_by_id(row.id).last_error == "no notifier delivers the 'sms' channel"


def test_deliver_refuses_to_run_inside_a_transaction(db, mailbox):
    _queue(make_customer(email="a@example.org"))
    with pytest.raises(RuntimeError, match="outside a transaction"):
        with database.atomic():
            notifications.deliver_pending()
    assert Notification.get().attempts == 0


def test_a_try_is_claimed_so_two_deliverers_do_not_both_send(db, mailbox):
    row = _queue(make_customer(email="a@example.org"))
    assert notifications._claim(row) is True
    assert notifications._claim(row) is False  # the same try, seen by a second deliverer
    assert Notification.get_by_id(row.id).attempts == 1


def test_racing_queues_of_one_key_make_one_row(db, monkeypatch):
    customer = make_customer(email="a@example.org")
    render = messages.render

    def render_then_lose_the_race(name, context):
        result = render(name, context)
        Notification.create(key="event:9:restored", customer=customer.id, template=name, channel="email",
                            recipient="a@example.org", subject="theirs", body="theirs")
        return result

    monkeypatch.setattr(messages, "render", render_then_lose_the_race)
    row = _queue(customer, "event:9:restored")
    assert row.subject == "theirs" and Notification.select().count() == 1


def test_threads_queueing_one_key_make_one_row(db):
    customer = make_customer(email="a@example.org")
    start = threading.Barrier(4)
    ids, errors = [], []

    def run():
        try:
            start.wait(10)
            ids.append(_queue(customer, "event:10:restored").id)
        except Exception as exc:  # re-raised below
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(ids) == 4 and len(set(ids)) == 1
    assert Notification.select().count() == 1


def test_listing_and_json(db, mailbox):
    a, b = make_customer(email="a@example.org"), make_customer()
    _queue(a, "k1")
    _queue(b, "k2")
    notifications.deliver_pending()
    assert [n.key for n in notifications.listing()] == ["k2", "k1"]
    assert [n.key for n in notifications.listing("skipped")] == ["k2"]
    assert [n.key for n in notifications.listing(customer=a)] == ["k1"]
    data = notifications.as_dict(notifications.listing("sent")[0])
    assert data["status"] == "sent" and data["reference"] == "<1@test>" and data["next_attempt_at"] is None
    assert "body" not in data


# --- the notifications commands -------------------------------------------------------

@pytest.mark.parametrize("args", [["notifications"], ["notifications", "list"], ["notifications", "send"]],
                         ids=" ".join)
def test_notification_commands_have_help(args):
    from click.testing import CliRunner

    from core.cli import cli

    result = CliRunner().invoke(cli, args + ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and "--help" in result.output


def test_notifications_list_and_send(db, cli, mailbox):
    import json

    a = make_customer(email="a@example.org")
    row = _queue(a, "k1")
    _queue(make_customer(), "k2")
    db.close()
    listed = cli("notifications", "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split("\t")[2:5] == ["skipped", "restored", "-"] and "has no e-mail address" in lines[0]
    assert lines[1].split("\t")[2:5] == ["pending", "restored", "a@example.org"]

    sent = cli("notifications", "send")
    assert sent.exit_code == 0 and sent.output == "1 sent, 0 to retry, 0 failed\n"
    assert [m.to for m in mailbox.sent] == ["a@example.org"]
    data = json.loads(cli("notifications", "list", "--status", "sent", "--json").output)
    assert [(d["id"], d["reference"]) for d in data] == [(row.id, "<1@test>")]
    mine = json.loads(cli("notifications", "list", "--customer", a.account_number, "--json").output)
    assert [d["key"] for d in mine] == ["k1"]

    bad = cli("notifications", "list", "--status", "lost")
    assert bad.exit_code == 2 and "'lost' is not one of" in bad.output
    assert cli("notifications", "list", "--customer", "A999999").exit_code == 2


def test_notifications_send_exits_1_naming_what_failed(db, cli, mailbox):
    import json

    row = _queue(make_customer(email="a@example.org"))
    db.close()
    mailbox.down = True
    failed = cli("notifications", "send")
    assert failed.exit_code == 1
    assert "0 sent, 1 to retry, 0 failed" in failed.output
    assert f"notification {row.id}: plugin 'mailbox' failed in notify: connection refused" in failed.output
    mailbox.down = False
    assert json.loads(cli("notifications", "send", "--json").output)["sent"] == 0  # waiting for its next try
    now = cli("notifications", "send", "--retry-now", "--json")
    assert now.exit_code == 0 and json.loads(now.output) == {"sent": 1, "retrying": 0, "failed": 0, "errors": []}
