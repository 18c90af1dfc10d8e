"""Messages to customers: invoices, receipts, dunning notices and reminders, from editable templates.

Domain events queue messages (see :mod:`plugins.customer_messages.events`); a job every
few seconds delivers what is queued, and a daily job queues the reminders of
:mod:`plugins.customer_messages.reminders`. Messages go out on the ``email`` channel.
"""

from __future__ import annotations

from core import hookimpl, notifications
from core.hooktypes import Job, SettingSpec

from plugins.customer_messages import events, reminders

DELIVER_EVERY_SECONDS = 10
REMINDERS_AT = {"hour": 8, "minute": 0}  # UTC; operators move it with the scheduler.schedules setting


def _days(high: int):
    def parse(text: str) -> int:
        try:
            days = int(str(text).strip())
        except ValueError:
            raise ValueError(f"expected a whole number of days, got {text!r}") from None
        if not 0 <= days <= high:
            raise ValueError(f"expected 0 (off) to {high} days, got {days}")
        return days
    return parse


@hookimpl
def register_settings():
    """When reminders are sent."""
    return [
        SettingSpec("reminders.days_before_due", "Remind of an unpaid invoice this many days before it is due "
                    "(0: never)", default=3, parse=_days(60)),
        SettingSpec("reminders.repeat_days", "Remind overdue accounts again every this many days (0: never)",
                    default=7, parse=_days(365)),
    ]


@hookimpl
def handle_event(event):
    """Queue the message an invoice, a payment or an account-state change calls for."""
    events.handle(event)


def deliver():
    """Send the queued messages whose time has come."""
    return notifications.deliver_pending()


@hookimpl
def register_jobs():
    """Delivery every few seconds; reminders once a day."""
    return [
        Job(id="notifications.deliver", func=deliver, trigger="interval", schedule={"seconds": DELIVER_EVERY_SECONDS},
            description="send queued customer messages"),
        Job(id="reminders.send", func=reminders.send, trigger="cron", schedule=dict(REMINDERS_AT),
            description="queue due-soon and repeated overdue reminders"),
    ]
