"""Talking to Stripe's API: a configured client, and Stripe's errors turned into ValidationError.

Every error message is one line, says what failed and why, and carries no API key: it
reaches staff on screen and the audit trail.
"""

from __future__ import annotations

import contextlib
import re

import stripe

from core.errors import ValidationError
from gateways.stripe.settings import SECRET_KEY, StripeConfig

TIMEOUT = (10, 30)  # seconds to connect, seconds to read: a payer's browser is waiting
RETRIES = 2  # the library retries connection failures and 5xx with an idempotency key

_KEY_LIKE = re.compile(r"\b(sk|rk|pk|whsec)_[A-Za-z0-9_]+")
_MESSAGE_LIMIT = 300


def connect(config: StripeConfig) -> stripe.StripeClient:
    """A Stripe client for the configured key and API address; ValidationError without a key."""
    if not config.secret_key:
        raise ValidationError(f"Stripe is not configured: set {SECRET_KEY}", SECRET_KEY)
    return stripe.StripeClient(
        config.secret_key,
        base_addresses={"api": config.api_base},
        max_network_retries=RETRIES,
        http_client=stripe.RequestsClient(timeout=TIMEOUT),
    )


def services(client: stripe.StripeClient):
    """The v1 services (``client.v1`` from stripe 12 on; the client itself before)."""
    return getattr(client, "v1", client)


def field(obj, name: str):
    """``obj[name]`` of a Stripe object, or ``None`` when the answer lacks it."""
    return obj[name] if name in obj else None


def plain(obj) -> dict:
    """A Stripe object (or ``None``) as a plain dict."""
    if obj is None:
        return {}
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _reason(exc: stripe.StripeError, config: StripeConfig) -> str:
    if isinstance(exc, stripe.AuthenticationError):
        return f"Stripe refused the API key (check {SECRET_KEY})"
    if isinstance(exc, stripe.PermissionError):
        return "the API key is not allowed to do this (a restricted key needs Checkout Sessions and Refunds)"
    if isinstance(exc, stripe.APIConnectionError):
        return f"could not reach Stripe at {config.api_base}; try again"
    if isinstance(exc, stripe.RateLimitError):
        return "Stripe is limiting the request rate; try again in a moment"
    message = exc.user_message or "no reason given"
    return f"Stripe said: {message}" + (f" ({exc.code})" if exc.code else "")


def describe(exc: stripe.StripeError, action: str, config: StripeConfig) -> str:
    """One line for staff: ``action``, then why Stripe failed, with any key masked."""
    text = " ".join(f"{action}: {_reason(exc, config)}".split())
    if config.secret_key:
        text = text.replace(config.secret_key, "sk_***")
    text = _KEY_LIKE.sub(lambda m: m.group(1) + "_***", text)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


@contextlib.contextmanager
def refusals(action: str, config: StripeConfig):
    """Turn any Stripe error raised inside the block into a ValidationError described by ``action``."""
    try:
        yield
    except stripe.StripeError as exc:
        raise ValidationError(describe(exc, action, config)) from None
