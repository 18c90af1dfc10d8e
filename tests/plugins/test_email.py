"""The email notifier against a real SMTP server on 127.0.0.1 (aiosmtpd): MIME, TLS, login and failures.

The server is :class:`tests.smtp_standin.SmtpStandIn`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import socket
import ssl

import pytest

from core import notify, settings
from core.errors import PluginError, ValidationError
from core.hooktypes import Message

from tests.smtp_standin import FROM, SmtpStandIn, free_port


@pytest.fixture
def smtp():
    with SmtpStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost: ``(cert_path, key_path)``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wispbill test SMTP")])
    now = dt.datetime.now(dt.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_context(certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


def _send(to="amina@example.org", subject="Invoice INV-2026-000001", body="Dear Amina,\n\nKES 2,500.00 is due.\n"):
    return notify.send(Message("email", to, subject, body, customer_id=1, template="invoice"))


# --- a message as it arrives ---------------------------------------------------------

def test_sends_a_plain_text_mime_message_with_its_headers(db, pm, smtp):
    smtp.configure(**{"email.from_name": "Example Networks", "email.reply_to": "help@example.net"})
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    delivery = _send(subject="Invoice INV-2026-000001 — März", body="Dear Amina,\n\nÜber KES 2,500.00 is due.\n")

    [got] = smtp.received
    msg = got.message
    assert got.mail_from == FROM and got.rcpt_tos == ["amina@example.org"]
    assert str(msg["From"]) == f"Example Networks <{FROM}>"
    assert str(msg["To"]) == "amina@example.org"
    assert str(msg["Reply-To"]) == "help@example.net"
    assert str(msg["Subject"]) == "Invoice INV-2026-000001 — März"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert got.body == "Dear Amina,\n\nÜber KES 2,500.00 is due.\n"
    sent_at = email.utils.parsedate_to_datetime(msg["Date"])
    assert sent_at.utcoffset() == dt.timedelta(0) and before <= sent_at <= before + dt.timedelta(minutes=1)
    # The Message-ID is the delivery's reference, and is made in the sender's domain.
    assert delivery.notifier == "email" and delivery.reference == msg["Message-ID"]
    assert delivery.reference.startswith("<") and delivery.reference.endswith("@example.net>")


def test_sender_name_defaults_to_the_company_name_and_message_ids_differ(db, pm, smtp):
    smtp.configure(**{"company.name": "Kijiji Net"})
    first, second = _send(), _send()
    assert [str(r.message["From"]) for r in smtp.received] == [f"Kijiji Net <{FROM}>"] * 2
    assert "Reply-To" not in smtp.received[0].message
    assert first.reference != second.reference


def test_other_channels_are_left_to_other_notifiers(pm):
    import plugins.email

    assert plugins.email.notify(Message("sms", "+254700000001", "", "hi")) is None
    assert notify.send(Message("log", "ops", "s", "b")).notifier == "log_notifier"


# --- settings ------------------------------------------------------------------------

def test_settings_are_declared_checked_and_the_password_masked(db, pm):
    assert settings.get("email.smtp_host") == "127.0.0.1"
    assert settings.get("email.smtp_port") == 25
    assert settings.get("email.smtp_security") == "none"
    for key, value, problem in (("email.smtp_port", "70000", "from 1 to 65535"),
                                ("email.smtp_security", "ssl", "none, starttls, tls"),
                                ("email.from_address", "not an address", "not an e-mail address"),
                                ("email.timeout_seconds", "0", "from 1 to 600"),
                                ("email.smtp_ca_file", "/no/such/file.pem", "not a file"),
                                ("email.smtp_host", "smtp example", "host name")):
        with pytest.raises(ValidationError, match=problem):
            settings.set_value(key, value)
    settings.set_value("email.smtp_security", "STARTTLS")
    assert settings.get("email.smtp_security") == "starttls"
    settings.set_value("email.smtp_password", "s3cret-pass")
    shown = {row["key"]: row["value"] for row in settings.listing()}
    assert shown["email.smtp_password"] == "********"
    assert settings.get("email.smtp_password") == "s3cret-pass"


def test_missing_sender_is_an_error_naming_the_setting(db, pm, smtp):
    with pytest.raises(PluginError, match=r"email.from_address is not set"):
        _send()
    smtp.configure(**{"email.smtp_username": "billing"})
    with pytest.raises(PluginError, match=r"email.smtp_password is not set"):
        _send()
    assert smtp.received == []


# --- failures ------------------------------------------------------------------------

def _error(exc_info) -> str:
    text = str(exc_info.value.error)
    assert "\n" not in text
    return text


def test_a_server_that_is_down_is_reported_in_one_line(db, pm):
    port = free_port()  # nothing listens there
    SmtpStandIn(port=port).configure()
    with pytest.raises(PluginError) as failed:
        _send()
    assert failed.value.plugin == "email"
    assert _error(failed) == f"the SMTP server 127.0.0.1:{port} cannot be reached: Connection refused"


def test_a_server_that_never_answers_times_out(db, pm):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        SmtpStandIn(port=port).configure(**{"email.timeout_seconds": "1"})
        with pytest.raises(PluginError) as failed:
            _send()
    assert _error(failed) == f"the SMTP server 127.0.0.1:{port} did not answer within 1 s"


def test_a_refused_recipient_is_reported_with_the_servers_answer(db, pm, smtp):
    smtp.configure()
    smtp.refuse.add("nobody@example.org")
    with pytest.raises(PluginError) as failed:
        _send(to="nobody@example.org")
    assert "refused the recipient nobody@example.org: 550 5.1.1 No such mailbox here" in _error(failed)
    assert smtp.received == []


# --- TLS and login -------------------------------------------------------------------

def test_starttls_with_login(db, pm, certificate):
    users = {"billing": "correct-horse"}
    with SmtpStandIn(starttls=server_context(certificate), users=users) as server:
        server.configure(**{"email.smtp_security": "starttls", "email.smtp_ca_file": str(certificate[0]),
                            "email.smtp_username": "billing", "email.smtp_password": "correct-horse"})
        delivery = _send()
        assert [r.rcpt_tos for r in server.received] == [["amina@example.org"]]
        assert delivery.reference == server.received[0].message["Message-ID"]

        # A wrong password is refused with the server's answer, and never shows the password.
        settings.set_value("email.smtp_password", "wrong-horse-battery")
        with pytest.raises(PluginError) as failed:
            _send()
        text = _error(failed)
        assert "refused the login of 'billing': 535" in text
        assert "wrong-horse-battery" not in str(failed.value) and len(server.received) == 1


def test_starttls_refuses_a_certificate_it_does_not_trust(db, pm, certificate):
    with SmtpStandIn(starttls=server_context(certificate)) as server:
        server.configure(**{"email.smtp_security": "starttls"})  # no CA file: the system's CAs
        with pytest.raises(PluginError) as failed:
            _send()
        assert "has a certificate that is not trusted" in _error(failed)
        assert server.received == []


def test_starttls_required_but_not_offered(db, pm, smtp):
    smtp.configure(**{"email.smtp_security": "starttls"})
    with pytest.raises(PluginError) as failed:
        _send()
    assert _error(failed) == f"the SMTP server 127.0.0.1:{smtp.port} does not offer STARTTLS"


def test_tls_from_the_first_byte(db, pm, certificate):
    with SmtpStandIn(tls=server_context(certificate)) as server:
        server.configure(**{"email.smtp_security": "tls", "email.smtp_ca_file": str(certificate[0])})
        _send(subject="Receipt RCT-2026-000001")
        assert [str(r.message["Subject"]) for r in server.received] == ["Receipt RCT-2026-000001"]

