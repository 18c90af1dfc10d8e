"""An SMTP server on 127.0.0.1 for tests: aiosmtpd keeping what it receives."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from core import settings

FROM = "billing@example.net"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    """One message as the server took it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list
    message: object

    @property
    def body(self) -> str:
        return self.message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # CRLF on the wire


class _Handler:
    def __init__(self, owner):
        self.owner = owner

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.owner.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content, policy=email_policy.default)
        self.owner.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 2.0.0 Message accepted"


class SmtpStandIn:
    """An SMTP server on 127.0.0.1 that keeps what it receives.

    ``starttls`` (an ``SSLContext``) offers and requires STARTTLS, ``tls`` speaks TLS from
    the first byte, ``users`` (login -> password) requires a login. ``port`` may be given
    to come back on the same port after :meth:`stop`.
    """

    def __init__(self, *, starttls=None, tls=None, users=None, port=None):
        self.starttls, self.tls, self.users = starttls, tls, users or {}
        self.port = port or free_port()
        self.received: list[Received] = []
        self.refuse: set[str] = set()
        self._controller = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode()
        ok = self.users.get(login) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False)

    def start(self):
        kwargs = {}
        if self.starttls is not None:
            kwargs.update(tls_context=self.starttls, require_starttls=True)
        if self.users:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self.starttls is not None or self.tls is not None)
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, ssl_context=self.tls,
                                      **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def configure(self, **extra) -> None:
        """Point the ``email.*`` settings at this server."""
        values = {"email.smtp_host": "127.0.0.1", "email.smtp_port": str(self.port), "email.from_address": FROM}
        values.update(extra)
        for key, value in values.items():
            settings.set_value(key, value)
