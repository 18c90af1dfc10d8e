"""The Stripe gateway's settings: what an operator may type for each, and reading them back.

Parse errors never quote the typed value: the two keys are secrets, and the message is
shown in the console and kept in the audit trail.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from core import settings as core_settings
from core.hooktypes import SettingSpec

SECRET_KEY = "stripe.secret_key"
WEBHOOK_SECRET = "stripe.webhook_secret"
API_BASE = "stripe.api_base"
TOLERANCE = "stripe.tolerance_seconds"

DEFAULT_API_BASE = "https://api.stripe.com"
DEFAULT_TOLERANCE = 300

_SECRET_KEY = re.compile(r"(sk|rk)_(test|live)_[A-Za-z0-9]+")
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def parse_secret_key(text: str) -> str:
    """A secret (``sk_``) or restricted (``rk_``) API key; empty to leave Stripe unconfigured."""
    value = text.strip()
    if not value:
        return ""
    if value.startswith("pk_"):
        raise ValueError("that is a publishable key (pk_...); use the secret key (sk_live_... or sk_test_...)")
    if not _SECRET_KEY.fullmatch(value):
        raise ValueError("a Stripe secret key looks like sk_live_... or sk_test_... "
                         "(rk_live_... or rk_test_... for a restricted key)")
    return value


def parse_webhook_secret(text: str) -> str:
    """The signing secret of the webhook endpoint (``whsec_...``); empty to leave it unset."""
    value = text.strip()
    if not value:
        return ""
    if not _WEBHOOK_SECRET.fullmatch(value):
        raise ValueError("a webhook signing secret looks like whsec_...: copy it from the endpoint's page "
                         "in the Stripe Dashboard (Developers, Webhooks)")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_api_base(text: str) -> str:
    """The API's base address, scheme and host only; plain http is accepted on loopback alone."""
    value = text.strip().rstrip("/")
    try:
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname
        _ = parts.port  # a port that is not a number raises ValueError here
    except ValueError:
        raise ValueError("expected an address like https://api.stripe.com") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("expected an address like https://api.stripe.com")
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("give the scheme and host only, like https://api.stripe.com (no path or query)")
    if parts.scheme == "http" and not _loopback(host):
        # The secret key travels in every request's Authorization header.
        raise ValueError("use https: plain http is only allowed for a loopback address")
    return value


def parse_tolerance(text: str) -> int:
    """Seconds a signed webhook stays acceptable, from 1 to 3600."""
    try:
        seconds = int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number of seconds, got {text.strip()!r}") from None
    if not 1 <= seconds <= 3600:
        raise ValueError("the tolerance must be between 1 and 3600 seconds")
    return seconds


def specs() -> list[SettingSpec]:
    """The settings this gateway declares."""
    return [
        SettingSpec(SECRET_KEY, "Stripe secret API key", default="", secret=True, parse=parse_secret_key,
                    help="sk_live_... (or sk_test_... while testing), from Developers, API keys."),
        SettingSpec(WEBHOOK_SECRET, "Stripe webhook signing secret", default="", secret=True,
                    parse=parse_webhook_secret,
                    help="whsec_..., shown on the webhook endpoint's page after you add <base>/hooks/stripe."),
        SettingSpec(API_BASE, "Stripe API address", default=DEFAULT_API_BASE, parse=parse_api_base,
                    help="Leave as https://api.stripe.com unless you route Stripe through a proxy of your own."),
        SettingSpec(TOLERANCE, "Stripe webhook tolerance (seconds)", default=DEFAULT_TOLERANCE,
                    parse=parse_tolerance,
                    help="A webhook signed longer ago than this is refused as a replay."),
    ]


@dataclass(frozen=True)
class StripeConfig:
    """The stored settings, read once per hook call."""

    secret_key: str
    webhook_secret: str
    api_base: str
    tolerance: int

    @property
    def configured(self) -> bool:
        """Both keys are set, so payments can start and their webhooks be verified."""
        return bool(self.secret_key and self.webhook_secret)


def load() -> StripeConfig:
    """Read the gateway's settings with ``core.settings.get``."""
    return StripeConfig(
        secret_key=core_settings.get(SECRET_KEY) or "",
        webhook_secret=core_settings.get(WEBHOOK_SECRET) or "",
        api_base=core_settings.get(API_BASE) or DEFAULT_API_BASE,
        tolerance=int(core_settings.get(TOLERANCE) or DEFAULT_TOLERANCE),
    )
