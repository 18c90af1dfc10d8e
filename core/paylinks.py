"""Pay links: an unguessable public address for each issued invoice (``/pay/<token>``).

The token is 32 random bytes (URL-safe text), made the first time an invoice's link is
asked for and kept, so a link sent in an e-mail keeps working. Anyone holding it sees
what the invoice is for and what is due, and can pay it; nothing else.
"""

from __future__ import annotations

import secrets

import peewee

from core import settings
from core.db import database, is_unique_violation
from core.errors import NotFound, ValidationError
from core.models import Invoice, PayLink


def token_for(invoice: Invoice) -> str:
    """The invoice's pay-link token, made on first use."""
    if invoice.number is None:
        raise ValidationError("a draft invoice has no pay link", "invoice")
    link = PayLink.get_or_none(PayLink.invoice == invoice.id)
    if link is not None:
        return link.token
    try:
        with database.atomic():
            return PayLink.create(invoice=invoice.id, token=secrets.token_urlsafe(32)).token
    except peewee.IntegrityError as exc:  # made by a concurrent request meanwhile
        if not is_unique_violation(exc):
            raise
        return PayLink.get(PayLink.invoice == invoice.id).token


def url_for(invoice: Invoice, base_url: str | None = None) -> str:
    """The full pay-link address: ``web.base_url`` (or ``base_url``) + ``/pay/<token>``."""
    base = (base_url or settings.get_or("web.base_url", "", None) or "").rstrip("/")
    return f"{base}/pay/{token_for(invoice)}"


def invoice_for(token: str) -> Invoice:
    """The invoice a token opens; :class:`NotFound` for anything else."""
    if not token or len(token) > 64:
        raise NotFound("no such pay link")
    link = PayLink.get_or_none(PayLink.token == token)
    if link is None:
        raise NotFound("no such pay link")
    return link.invoice
