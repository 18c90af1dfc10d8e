"""The ``mpesa.*`` settings: their declarations, the checks on what an operator types, and one read of them all."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from core import settings as core_settings
from core.hooktypes import SettingSpec

API_BASES = {
    "sandbox": "https://sandbox.safaricom.co.ke",
    "production": "https://api.safaricom.co.ke",
}
TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MIN_TOKEN_LENGTH = 32

_SHORTCODE = re.compile(r"[0-9]{5,8}")
_CALLBACK_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


# --- parse functions: text typed by an operator -> stored value ----------------------

def parse_environment(text: str) -> str:
    """``sandbox`` or ``production``."""
    value = text.strip().lower()
    if value not in API_BASES:
        raise ValueError("expected sandbox or production")
    return value


def parse_api_base(text: str) -> str:
    """An https address without a trailing slash (http on loopback only), or empty for the environment's own."""
    value = text.strip().rstrip("/")
    if not value:
        return ""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("expected an address such as https://sandbox.safaricom.co.ke")
    if parts.scheme == "http" and parts.hostname.lower() not in LOOPBACK_HOSTS:
        raise ValueError("must be https: the consumer secret is sent with every token request")
    return value


def parse_credential(text: str) -> str:
    """A consumer key, consumer secret or passkey: non-empty, no spaces inside."""
    value = text.strip()
    if not value:
        raise ValueError("may not be empty")
    if any(c.isspace() for c in value):
        raise ValueError("may not contain spaces; paste it exactly as the Daraja portal shows it")
    return value


def parse_shortcode(text: str) -> str:
    """A paybill, till or store number: 5 to 8 digits."""
    value = text.strip()
    if not _SHORTCODE.fullmatch(value):
        raise ValueError("expected a shortcode of 5 to 8 digits, such as 174379")
    return value


def parse_optional_shortcode(text: str) -> str | None:
    """Like :func:`parse_shortcode`; empty means: the same as ``mpesa.shortcode``."""
    return parse_shortcode(text) if text.strip() else None


def parse_transaction_type(text: str) -> str:
    """``CustomerPayBillOnline`` (paybill) or ``CustomerBuyGoodsOnline`` (till), in any letter case."""
    wanted = text.strip().lower()
    for name in TRANSACTION_TYPES:
        if name.lower() == wanted:
            return name
    raise ValueError("expected CustomerPayBillOnline (paybill) or CustomerBuyGoodsOnline (till)")


def parse_callback_token(text: str) -> str:
    """At least 32 letters, digits, ``-`` or ``_``: the secret last segment of every callback URL."""
    value = text.strip()
    if len(value) < MIN_TOKEN_LENGTH or not _CALLBACK_TOKEN.fullmatch(value):
        raise ValueError(f"expected at least {MIN_TOKEN_LENGTH} letters, digits, - or _; make one with: "
                         "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return value


def parse_allowed_ips(text: str) -> list[str]:
    """A comma-separated list of addresses or networks (``196.201.214.0/24``); empty allows any source."""
    networks = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return networks


def parse_max_age_hours(text: str) -> int:
    """Whole hours from 1 to 720."""
    try:
        hours = int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number of hours, got {text.strip()!r}") from None
    if not 1 <= hours <= 720:
        raise ValueError("expected between 1 and 720 hours")
    return hours


def check_public_url(value: str, what: str) -> str:
    """``value`` if it is https (or http on this machine, for tests); else ``ValueError``."""
    parts = urllib.parse.urlsplit(value)
    host = (parts.hostname or "").lower()
    if not host or parts.query or parts.fragment:
        raise ValueError(f"{what} {value!r} is not a usable address")
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return value
    raise ValueError(f"{what} must be https (Daraja posts only to https addresses), got {value!r}")


def parse_callback_base_url(text: str) -> str:
    """Empty, or the public https address Daraja posts callbacks to, in place of ``<base>/hooks/mpesa``."""
    value = text.strip().rstrip("/")
    return check_public_url(value, "the callback address") if value else ""


# --- declarations ---------------------------------------------------------------------

def specs() -> list[SettingSpec]:
    """Every ``mpesa.*`` setting."""
    return [
        SettingSpec("mpesa.environment", "M-Pesa environment (sandbox or production)", default="sandbox",
                    parse=parse_environment),
        SettingSpec("mpesa.api_base", "M-Pesa API address override", default="", parse=parse_api_base,
                    help="Leave empty: the environment decides. Set only to reach a test double."),
        SettingSpec("mpesa.consumer_key", "M-Pesa consumer key", parse=parse_credential),
        SettingSpec("mpesa.consumer_secret", "M-Pesa consumer secret", secret=True, parse=parse_credential),
        SettingSpec("mpesa.shortcode", "M-Pesa business shortcode (paybill, or store number for a till)",
                    parse=parse_shortcode),
        SettingSpec("mpesa.passkey", "M-Pesa Express passkey", secret=True, parse=parse_credential),
        SettingSpec("mpesa.transaction_type", "M-Pesa Express transaction type", default=TRANSACTION_TYPES[0],
                    parse=parse_transaction_type),
        SettingSpec("mpesa.party_b", "M-Pesa till number receiving pushes (default: the shortcode)",
                    parse=parse_optional_shortcode),
        SettingSpec("mpesa.c2b_shortcode", "M-Pesa shortcode customers pay to directly (default: the shortcode)",
                    parse=parse_optional_shortcode),
        SettingSpec("mpesa.callback_token", "M-Pesa callback token (secret last part of callback URLs)",
                    secret=True, parse=parse_callback_token,
                    help="Daraja does not sign callbacks: only a caller that knows this token is believed."),
        SettingSpec("mpesa.allowed_ips", "M-Pesa callback source addresses (comma list; empty: any)",
                    default=[], parse=parse_allowed_ips),
        SettingSpec("mpesa.max_age_hours", "M-Pesa callbacks older than this are refused (hours)", default=72,
                    parse=parse_max_age_hours),
        SettingSpec("mpesa.callback_base_url", "M-Pesa public callback address (default: <base>/hooks/mpesa)",
                    default="", parse=parse_callback_base_url,
                    help="Daraja refuses URLs containing 'mpesa'; point this at a path your proxy forwards."),
    ]


# --- one read of everything -----------------------------------------------------------

@dataclass(frozen=True)
class MpesaConfig:
    """The M-Pesa settings as the gateway uses them, with the defaults resolved."""

    environment: str = "sandbox"
    api_base_override: str = ""
    consumer_key: str | None = None
    consumer_secret: str | None = None
    shortcode: str | None = None
    passkey: str | None = None
    transaction_type: str = TRANSACTION_TYPES[0]
    party_b_override: str | None = None
    c2b_shortcode_override: str | None = None
    callback_token: str | None = None
    allowed_ips: tuple[str, ...] = ()
    max_age_hours: int = 72
    callback_base_url: str = ""

    @property
    def api_base(self) -> str:
        """Where the Daraja API is: the override, else the environment's address."""
        return self.api_base_override or API_BASES[self.environment]

    @property
    def party_b(self) -> str | None:
        """The till or paybill that receives pushed payments."""
        return self.party_b_override or self.shortcode

    @property
    def c2b_shortcode(self) -> str | None:
        """The shortcode whose direct payments are confirmed to wispbill."""
        return self.c2b_shortcode_override or self.shortcode

    @property
    def missing(self) -> list[str]:
        """The settings still needed before the gateway can be offered."""
        needed = self.needed()
        return [key for key, value in needed.items() if not value]

    def needed(self) -> dict:
        """Each setting the gateway needs before it can take money, with its value."""
        return {"mpesa.consumer_key": self.consumer_key, "mpesa.consumer_secret": self.consumer_secret,
                  "mpesa.shortcode": self.shortcode, "mpesa.passkey": self.passkey,
                  "mpesa.callback_token": self.callback_token}

    @property
    def configured(self) -> bool:
        """True when credentials, shortcode, passkey and callback token are all set."""
        return not self.missing

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in a message."""
        return tuple(v for v in (self.consumer_secret, self.passkey, self.callback_token) if v)


def load(pm=None) -> MpesaConfig:
    """Read every ``mpesa.*`` setting from the database."""
    def get(key):
        return core_settings.get(f"mpesa.{key}", pm)

    return MpesaConfig(
        environment=get("environment") or "sandbox",
        api_base_override=get("api_base") or "",
        consumer_key=get("consumer_key") or None,
        consumer_secret=get("consumer_secret") or None,
        shortcode=get("shortcode") or None,
        passkey=get("passkey") or None,
        transaction_type=get("transaction_type") or TRANSACTION_TYPES[0],
        party_b_override=get("party_b") or None,
        c2b_shortcode_override=get("c2b_shortcode") or None,
        callback_token=get("callback_token") or None,
        allowed_ips=tuple(get("allowed_ips") or ()),
        max_age_hours=int(get("max_age_hours") or 72),
        callback_base_url=get("callback_base_url") or "",
    )
