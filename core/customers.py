"""Creating and listing customers: validation, account numbers and the audit trail."""

from __future__ import annotations

import re

from peewee import SQL, NodeList, fn

from core import audit, numbering, settings, validate
from core.bulk import is_sqlite
from core.clock import utcnow
from core.db import database, refuse_conflict
from core.errors import NotFound, ValidationError
from core.models import Customer

ACCOUNT_SERIES = "ACCOUNT"


def add(*, name, currency=None, email=None, phone=None, address=None, terms_days=None,
        tax_region=None, tax_exempt=False, tax_exemption_ref=None, account_number=None,
        notes=None) -> Customer:
    """Validate and create a customer; the account number is taken from a gapless series if not given.

    ``currency`` and ``terms_days`` default to the ``billing.currency`` and
    ``billing.terms_days`` settings.
    """
    if currency in (None, ""):
        currency = settings.get_or("billing.currency", "USD")
    if terms_days in (None, ""):
        terms_days = settings.get_or("billing.terms_days", 14)
    data = {
        "name": validate.text(name, "name"),
        "currency": validate.currency(currency),
        "email": validate.email(email),
        "phone": validate.phone(phone),
        "address": validate.text(address, "address", required=False, max_length=1000),
        "terms_days": validate.integer(terms_days, "terms_days", minimum=0, maximum=365),
        "tax_region": validate.text(tax_region, "tax_region", required=False, max_length=40),
        "tax_exempt": bool(tax_exempt),
        "tax_exemption_ref": validate.text(tax_exemption_ref, "tax_exemption_ref", required=False, max_length=100),
        "notes": validate.text(notes, "notes", required=False, max_length=5000),
    }
    if data["tax_region"]:
        data["tax_region"] = check_tax_region(data["tax_region"])
    if data["tax_exempt"] and not data["tax_exemption_ref"]:
        raise ValidationError("a tax-exempt customer needs an exemption reference", "tax_exemption_ref")
    wanted = validate.text(account_number, "account_number", required=False, max_length=40)
    with refuse_conflict("another customer took that account number at the same time; try again",
                         "account_number"):
        with database.atomic():
            number = wanted or _next_free_account_number()
            if wanted and Customer.select().where(Customer.account_number == wanted).exists():
                raise ValidationError(f"account number {wanted!r} is already in use", "account_number")
            customer = Customer.create(account_number=number, **data)
            audit.record("customer.create", "customer", customer.id, None, audit.snapshot(customer))
    return customer


def check_tax_region(code: str, pm=None) -> str:
    """``code`` if a tax plugin defines that region, else a :class:`ValidationError` listing those that exist."""
    from core.hooktypes import TaxRegion
    from core.plugins import get_manager

    known = (pm or get_manager()).collect_named("tax_regions", TaxRegion, "code")
    if code not in known:
        hint = ", ".join(sorted(known)) or "none: no tax plugin is installed"
        raise ValidationError(f"no tax definition for region {code!r} (known regions: {hint})", "tax_region")
    return code


def find(account_or_id) -> Customer:
    """A customer by account number, or by id given as ``#12``."""
    text = str(account_or_id).strip()
    customer = Customer.get_or_none(Customer.account_number == text)
    if customer is None and text.startswith("#") and validate.as_id(text[1:]) is not None:
        customer = Customer.get_or_none(Customer.id == validate.as_id(text[1:]))
    if customer is None:
        raise NotFound(f"no customer {text!r}")
    return customer


_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]|[A-Za-z0-9]")


def match_reference(text: str | None):
    """The customer (and invoice) a payer's reference names: ``(customer, invoice or None)`` or ``None``.

    ``text`` is what a payer typed: an account number (``A000042``, any case), an invoice
    number (``INV-2026-000123``), or free text containing one, as in a bank transfer's
    description. The whole text is tried first, then each word of it; the first word that
    names exactly one customer or invoice wins.
    """
    from core import invoices

    text = (text or "").strip()
    if not text or len(text) > 500:
        return None
    candidates = [text] + [t for t in _TOKEN.findall(text) if t != text]
    for candidate in candidates[:50]:
        customer = (Customer.get_or_none(Customer.account_number == candidate)
                    or Customer.get_or_none(fn.UPPER(Customer.account_number) == candidate.upper()))
        if customer is not None:
            return customer, None
        try:
            invoice = invoices.find(candidate.upper()) if not candidate.isdigit() else None
        except (NotFound, ValueError, OverflowError):  # what a payer types is never an error of ours
            invoice = None
        if invoice is not None and invoice.number is not None:
            return invoice.customer, invoice
    return None


def _next_free_account_number() -> str:
    """The next number of the account series that no customer holds yet.

    An operator may have typed numbers of the same shape by hand; those are skipped
    rather than blocking the series.
    """
    while True:
        number = f"A{numbering.take(ACCOUNT_SERIES):06d}"
        if not Customer.select().where(Customer.account_number == number).exists():
            return number


SEARCH_COMMON = 1000  # a text matching this many customers is found faster by walking them in name order


def search(query: str | None = None, limit: int = 100, offset: int = 0):
    """Customers whose name, account number, e-mail or phone contains ``query`` (any case), by name.

    Only the columns the text could be in are read: a phone number has no letters, an
    e-mail address no spaces, a name no ``@``.

    On SQLite a text of three characters or more is first looked up in the trigram index
    ``customer_search``; when it matches fewer than :data:`SEARCH_COMMON` customers, only
    those are read. A more common text (or a shorter one) is matched while walking
    customers in name order, which stops as soon as the page is full. On PostgreSQL the
    planner makes that choice itself, between the ``pg_trgm`` indexes and the name index.
    """
    q = Customer.select().order_by(Customer.name, Customer.id)
    text = (query or "").strip()
    if text:
        columns = [Customer.account_number]
        if "@" not in text:
            columns.append(Customer.name)
        if " " not in text:
            columns.append(Customer.email)
        if not any(c.isalpha() for c in text):
            columns.append(Customer.phone)
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        condition = _like(columns[0], like)
        for column in columns[1:]:
            condition = condition | _like(column, like)
        if not is_sqlite(database.obj):
            with database.atomic():
                # A plan made for this very pattern: a generic plan, which the driver's
                # prepared statements get after a few runs, cannot use the trigram indexes.
                # And no sequential scan: the planner underestimates how many rows a short
                # text matches and reads the whole table, where the name index or the
                # trigram indexes answer in a fraction of the time.
                database.execute_sql("SET LOCAL plan_cache_mode = force_custom_plan")
                database.execute_sql("SET LOCAL enable_seqscan = off")
                return list(q.where(condition).limit(limit).offset(offset))
        ids = _indexed(text, columns) if len(text) >= 3 else None
        q = q.where(Customer.id.in_(ids) if ids is not None else condition)
    return list(q.limit(limit).offset(offset))


def _indexed(text: str, columns) -> list[int] | None:
    """The ids of the customers ``text`` matches, from SQLite's trigram index; ``None`` when there are many."""
    names = " ".join(c.column_name for c in columns)
    phrase = '"' + text.replace('"', '""') + '"'
    rows = database.execute_sql("SELECT rowid FROM customer_search WHERE customer_search MATCH ? LIMIT ?",
                                (f"{{{names}}} : {phrase}", SEARCH_COMMON)).fetchall()
    ids = [row[0] for row in rows]
    return ids if len(ids) < SEARCH_COMMON else None


def _like(column, pattern):
    """Case-insensitive ``LIKE`` with ``\\`` as escape, the same on SQLite and PostgreSQL.

    SQLite's ``LIKE`` ignores the case of ASCII letters already (as its ``LOWER`` only
    folds those); on PostgreSQL ``LOWER(column) LIKE`` scans about twice as fast as ``ILIKE``.
    """
    if is_sqlite(database.obj):
        return NodeList((column, SQL("LIKE"), pattern, SQL("ESCAPE '\\'")))
    return NodeList((fn.LOWER(column), SQL("LIKE"), pattern.lower(), SQL("ESCAPE '\\'")))


def as_dict(customer: Customer) -> dict:
    """A customer as JSON for the CLI and the API."""
    return {
        "id": customer.id,
        "account_number": customer.account_number,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "currency": customer.currency,
        "terms_days": customer.terms_days,
        "tax_region": customer.tax_region,
        "tax_exempt": customer.tax_exempt,
        "state": customer.state,
        "created_at": customer.created_at.isoformat(timespec="seconds"),
    }


def update_contact(customer: Customer, data: dict) -> Customer:
    """Change the name, e-mail, phone, address or notes of ``customer`` (keys of ``data``), validated like a new one, audited.

    Only the fields named are touched; an empty address or notes clears it.
    """
    checks = {
        "name": lambda v: validate.text(v, "name"),
        "email": validate.email,
        "phone": validate.phone,
        "address": lambda v: validate.text(v, "address", required=False, max_length=1000),
        "notes": lambda v: validate.text(v, "notes", required=False, max_length=5000),
    }
    changes = {name: checks[name](value) for name, value in data.items()}
    with database.atomic():
        customer = Customer.get_by_id(customer.id)
        before = audit.snapshot(customer)
        changes = {k: v for k, v in changes.items() if getattr(customer, k) != v}
        if changes:
            Customer.update(updated_at=utcnow(), **changes).where(Customer.id == customer.id).execute()
            customer = Customer.get_by_id(customer.id)
            audit.record("customer.update", "customer", customer.id, before, audit.snapshot(customer))
    return customer
