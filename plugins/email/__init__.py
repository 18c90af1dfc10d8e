"""The ``email`` channel: messages sent to an SMTP server (a local relay, or your provider's).

Settings ``email.*`` say which server, how to secure the connection (none, STARTTLS or
TLS from the start), the login and the sender. Each message is plain UTF-8 text with
its own Message-ID, which is the delivery's reference.
"""

from __future__ import annotations

import os

from core import hookimpl, settings, validate
from core.errors import ValidationError
from core.hooktypes import Delivery, SettingSpec

from plugins.email.smtp import SECURITY_MODES, SmtpConfig, SmtpError, build_message, send

NAME = "email"


def _host(text: str) -> str:
    value = text.strip()
    if not value or len(value) > 253 or any(c.isspace() for c in value):
        raise ValueError("expected a host name or address, like smtp.example.net")
    return value


def _whole(low: int, high: int, what: str):
    def parse(text: str) -> int:
        try:
            number = int(str(text).strip())
        except ValueError:
            raise ValueError(f"expected {what} from {low} to {high}, got {text!r}") from None
        if not low <= number <= high:
            raise ValueError(f"expected {what} from {low} to {high}, got {number}")
        return number
    return parse


def _security(text: str) -> str:
    value = text.strip().lower()
    if value not in SECURITY_MODES:
        raise ValueError(f"expected one of {', '.join(SECURITY_MODES)}, got {text!r}")
    return value


def _line(text: str) -> str:
    value = text.strip()
    if len(value) > 200 or any(ord(c) < 32 for c in value):
        raise ValueError("expected one line of at most 200 characters")
    return value


def _address(text: str) -> str:
    if not text.strip():
        return ""
    try:
        return validate.email(text, "address")
    except ValidationError:
        raise ValueError(f"{text.strip()!r} is not an e-mail address") from None


def _ca_file(text: str) -> str:
    value = text.strip()
    if value and not (os.path.isfile(value) and os.access(value, os.R_OK)):
        raise ValueError(f"{value} is not a file this server can read")
    return value


@hookimpl
def register_settings():
    """The SMTP server, its security and login, and the sender of every message."""
    return [
        SettingSpec("email.smtp_host", "SMTP server", default="127.0.0.1", parse=_host),
        SettingSpec("email.smtp_port", "SMTP port (25, 587 for STARTTLS, 465 for TLS)", default=25,
                    parse=_whole(1, 65535, "a port")),
        SettingSpec("email.smtp_security", "SMTP security: none, starttls or tls", default="none", parse=_security),
        SettingSpec("email.smtp_username", "SMTP login (empty: none)", default="", parse=_line),
        SettingSpec("email.smtp_password", "SMTP password", default="", secret=True, parse=str),
        SettingSpec("email.smtp_ca_file", "CA certificates to trust for TLS (PEM file; empty: the system's)",
                    default="", parse=_ca_file),
        SettingSpec("email.from_address", "Sender address of customer messages", default="", parse=_address,
                    help="Required before any e-mail is sent, like billing@example.net."),
        SettingSpec("email.from_name", "Sender name (empty: the company name)", default="", parse=_line),
        SettingSpec("email.reply_to", "Reply-To address (empty: none)", default="", parse=_address),
        SettingSpec("email.timeout_seconds", "Seconds to wait for the SMTP server", default=30,
                    parse=_whole(1, 600, "a number of seconds")),
    ]


def config() -> SmtpConfig:
    """The SMTP settings; :class:`SmtpError` naming a setting that must be set first."""
    from_address = settings.get("email.from_address")
    if not from_address:
        raise SmtpError("email.from_address is not set: wispbill settings set email.from_address billing@example.net")
    username = settings.get("email.smtp_username") or ""
    password = settings.get("email.smtp_password") or ""
    if username and not password:
        raise SmtpError("email.smtp_password is not set, but email.smtp_username is")
    return SmtpConfig(
        from_address=from_address, host=settings.get("email.smtp_host") or "127.0.0.1",
        port=int(settings.get("email.smtp_port")), security=settings.get("email.smtp_security") or "none",
        username=username, password=password,
        from_name=settings.get("email.from_name") or str(settings.get_or("company.name", "") or ""),
        reply_to=settings.get("email.reply_to") or "", timeout=float(settings.get("email.timeout_seconds")),
        ca_file=settings.get("email.smtp_ca_file") or "")


@hookimpl
def notify(message):
    """Send messages of the ``email`` channel; the Message-ID is the delivery's reference."""
    if message.channel != NAME:
        return None
    if not message.to:
        raise SmtpError("the message has no recipient address")
    smtp = config()
    msg = build_message(smtp, message.to, message.subject, message.body)
    send(smtp, msg, message.to)
    return Delivery(notifier=NAME, reference=msg["Message-ID"])
