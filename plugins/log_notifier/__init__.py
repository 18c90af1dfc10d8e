"""A notifier for the ``log`` channel: writes each message to the application log.

Useful on a demo box and as the place undeliverable staff alerts still land.
"""

import hashlib
import logging

from core import hookimpl
from core.hooktypes import Delivery

log = logging.getLogger("wispbill.notify")


@hookimpl
def notify(message):
    """Log messages of the ``log`` channel; leave every other channel to other notifiers."""
    if message.channel != "log":
        return None
    log.info("to %s: %s\n%s", message.to, message.subject, message.body)
    digest = hashlib.sha256(f"{message.to}\0{message.subject}\0{message.body}".encode()).hexdigest()
    return Delivery(notifier="log_notifier", reference=digest[:16])
