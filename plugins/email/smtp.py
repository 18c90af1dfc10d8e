"""One e-mail over SMTP with the standard library: the MIME message, the connection, and its errors.

Every failure (refused connection, timeout, TLS, login, a refused sender or recipient, a
rejected message) becomes a :class:`SmtpError` whose message is one line naming the
server and what it said; the password never appears in it.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

SECURITY_MODES = ("none", "starttls", "tls")


class SmtpError(Exception):
    """Sending failed; the message says why, in one line fit for a notification's error."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send: the server, its security, the login and the sender."""

    from_address: str
    host: str = "127.0.0.1"
    port: int = 25
    security: str = "none"
    username: str = ""
    password: str = ""
    from_name: str = ""
    reply_to: str = ""
    timeout: float = 30
    ca_file: str = ""

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def build_message(config: SmtpConfig, to: str, subject: str, body: str) -> EmailMessage:
    """A plain-text UTF-8 message with From, To, Subject, Date, Message-ID (and Reply-To when set)."""
    domain = config.from_address.rpartition("@")[2] or "localhost"
    msg = EmailMessage()
    msg["From"] = Address(display_name=config.from_name, addr_spec=config.from_address)
    msg["To"] = to
    msg["Subject"] = " ".join(subject.split())  # one line: a header cannot carry a line break
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=domain)
    if config.reply_to:
        msg["Reply-To"] = config.reply_to
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: tells autoresponders not to answer
    msg.set_content(body)
    return msg


def _reply(code, text) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(f"{code} {text}".split())


def _connect(config: SmtpConfig, context: ssl.SSLContext | None) -> smtplib.SMTP:
    if config.security == "tls":
        return smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
    client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    if config.security == "starttls":
        client.ehlo()
        if not client.has_extn("starttls"):
            client.close()
            raise SmtpError(f"the SMTP server {config.where} does not offer STARTTLS")
        client.starttls(context=context)
        client.ehlo()
    return client


def _deliver(config: SmtpConfig, msg: EmailMessage, to: str) -> None:
    context = ssl.create_default_context(cafile=config.ca_file or None) if config.security != "none" else None
    with _connect(config, context) as client:
        if config.username:
            client.login(config.username, config.password)
        refused = client.send_message(msg, from_addr=config.from_address, to_addrs=[to])
    if refused:
        code, text = refused.get(to, next(iter(refused.values())))
        raise SmtpError(f"the SMTP server {config.where} refused the recipient {to}: {_reply(code, text)}")


def send(config: SmtpConfig, msg: EmailMessage, to: str) -> None:
    """Hand ``msg`` for ``to`` to the server; :class:`SmtpError` when it is not accepted."""
    try:
        _deliver(config, msg, to)
        return
    except SmtpError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        problem = f"refused the login of {config.username!r}: {_reply(exc.smtp_code, exc.smtp_error)}"
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        problem = f"refused the recipient {to}: {_reply(code, text)}"
    except smtplib.SMTPSenderRefused as exc:
        problem = f"refused the sender {config.from_address}: {_reply(exc.smtp_code, exc.smtp_error)}"
    except smtplib.SMTPDataError as exc:
        problem = f"rejected the message: {_reply(exc.smtp_code, exc.smtp_error)}"
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):  # smtplib reports a read that timed out as a disconnect
            problem = f"did not answer within {config.timeout:g} s"
        else:
            problem = f"closed the connection unexpectedly ({exc or 'no reason given'})"
    except smtplib.SMTPResponseException as exc:
        problem = f"answered {_reply(exc.smtp_code, exc.smtp_error)}"
    except smtplib.SMTPException as exc:
        problem = f"failed: {exc}"
    except TimeoutError:
        problem = f"did not answer within {config.timeout:g} s"
    except ssl.SSLCertVerificationError as exc:
        problem = f"has a certificate that is not trusted: {exc.verify_message or exc.reason}"
    except ssl.SSLError as exc:
        problem = f"could not agree on TLS: {exc.reason or exc}"
    except OSError as exc:
        problem = f"cannot be reached: {exc.strerror or exc}"
    text = " ".join(f"the SMTP server {config.where} {problem}".split())
    if config.password:
        text = text.replace(config.password, "***")
    raise SmtpError(text)
