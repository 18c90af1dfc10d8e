"""Message templates: the shipped texts, an operator's edits, and rendering them safely.

A template has a subject and a body, both Jinja text rendered in a sandbox where an
undefined variable is an error. Each template name documents the variables it gets
(:data:`TEMPLATES`, :data:`VARIABLES`). The shipped text of ``<name>`` is the file
``templates/emails/<name>.txt``: a first line ``Subject: ...``, a blank line, then the
body. An operator's edit is a ``MessageTemplate`` row that is used instead until it is
reset. An edit that does not parse, uses a variable its template does not get, or fails
to render with sample values is refused and nothing is written.

The ``*_context`` functions gather those variables from the database, with amounts
formatted by :mod:`core.money` and dates written ``YYYY-MM-DD``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from importlib import resources

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from core import audit, ledger, settings
from core.clock import today as utc_today
from core.clock import utcnow
from core.db import database, refuse_conflict
from core.errors import NotFound, ValidationError
from core.models import Customer, Invoice, MessageTemplate, Payment
from core.money import Money

SUBJECT_MAX = 300
BODY_MAX = 20_000


@dataclass(frozen=True)
class Variable:
    """A value templates can use: what it holds, and the sample shown in previews and used to check edits."""

    description: str
    sample: object


VARIABLES: dict[str, Variable] = {
    "company_name": Variable("your company's name (the company.name setting)", "Example Networks"),
    "customer_name": Variable("the customer's name", "Amina Wanjiku"),
    "account_number": Variable("the customer's account number", "A000042"),
    "invoice_number": Variable("the invoice number", "INV-2026-000123"),
    "invoice_total": Variable("the invoice total, with its currency", "KES 2,500.00"),
    "amount_due": Variable("what is still to pay on the invoice", "KES 2,500.00"),
    "issue_date": Variable("the invoice date", "2026-03-01"),
    "due_date": Variable("the date the invoice is due", "2026-03-15"),
    "period": Variable("the service period the invoice covers, or empty", "2026-03-01 to 2026-03-31"),
    "is_paid": Variable("true when nothing is left to pay on the invoice", False),
    "days_until_due": Variable("whole days from today to the due date (0: due today)", 3),
    "pay_url": Variable("the invoice's pay link, or empty (no web.base_url setting, nothing to pay)",
                        "https://billing.example.net/pay/sample-token"),
    "receipt_number": Variable("the payment's receipt number", "RCT-2026-000042"),
    "amount": Variable("the amount paid, with its currency", "KES 2,500.00"),
    "paid_on": Variable("the date the money was received", "2026-03-10"),
    "payment_method": Variable("how it was paid (Cash, M-Pesa, Card, ...)", "M-Pesa"),
    "payment_reference": Variable("the payment's reference (transaction code, cheque number)", "QK7TX31ABC"),
    "balance_due": Variable("what the customer owes now in all, or empty when nothing", "KES 500.00"),
    "account_credit": Variable("the customer's unused credit, or empty when none", "KES 0.00"),
    "state": Variable("the account state: active, reminded, throttled, suspended or terminated", "suspended"),
    "overdue_amount": Variable("how much is overdue, with its currency", "KES 2,500.00"),
    "days_overdue": Variable("days since the oldest overdue invoice was due", 12),
    "oldest_due_date": Variable("the due date of the oldest overdue invoice, or empty", "2026-03-15"),
    "reset_url": Variable("the link that sets a new portal password (works once)",
                          "https://billing.example.net/portal/reset/sample-token"),
    "reset_minutes": Variable("how many minutes the password link works", 60),
}

_COMMON = ("company_name", "customer_name", "account_number")
_INVOICE = _COMMON + ("invoice_number", "invoice_total", "amount_due", "issue_date", "due_date", "period",
                      "is_paid", "pay_url")
_RECEIPT = _COMMON + ("receipt_number", "amount", "paid_on", "payment_method", "payment_reference",
                      "balance_due", "account_credit")
_ACCOUNT = _COMMON + ("state", "overdue_amount", "days_overdue", "oldest_due_date", "balance_due",
                      "account_credit", "pay_url")


@dataclass(frozen=True)
class TemplateInfo:
    """A message template the system sends: its name, when it is sent, and the variables it gets."""

    name: str
    description: str
    variables: tuple[str, ...]


TEMPLATES: dict[str, TemplateInfo] = {t.name: t for t in (
    TemplateInfo("invoice", "an invoice was issued", _INVOICE),
    TemplateInfo("due_soon", "an unpaid invoice is due in reminders.days_before_due days", _INVOICE + ("days_until_due",)),
    TemplateInfo("receipt", "a payment was received", _RECEIPT),
    TemplateInfo("reminder", "the account is overdue (again every reminders.repeat_days while it stays so)", _ACCOUNT),
    TemplateInfo("throttled", "the account's speed was reduced for non-payment", _ACCOUNT),
    TemplateInfo("suspended", "the account's service was suspended for non-payment", _ACCOUNT),
    TemplateInfo("terminated", "the account's service was terminated for non-payment", _ACCOUNT),
    TemplateInfo("restored", "a throttled or suspended account is back to normal", _ACCOUNT),
    TemplateInfo("password_reset", "the customer asked for a portal password link, or staff sent one",
                 _COMMON + ("reset_url", "reset_minutes")),
)}


@dataclass(frozen=True)
class Template:
    """A template's text as it is used now: an operator's edit, or the shipped one."""

    name: str
    subject: str
    body: str
    edited: bool
    updated_at: dt.datetime | None = None
    updated_by: str | None = None


# --- loading ------------------------------------------------------------------------

def info(name: str) -> TemplateInfo:
    """The description of template ``name``; :class:`NotFound` naming the templates that exist."""
    found = TEMPLATES.get(name)
    if found is None:
        raise NotFound(f"no message template {name!r} (templates: {', '.join(TEMPLATES)})")
    return found


def shipped(name: str) -> tuple[str, str]:
    """The ``(subject, body)`` shipped in ``templates/emails/<name>.txt``."""
    info(name)
    text = (resources.files("templates") / "emails" / f"{name}.txt").read_text(encoding="utf-8")
    first, _, rest = text.replace("\r\n", "\n").partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"templates/emails/{name}.txt: the first line must be 'Subject: ...'")
    return first[len("Subject:"):].strip(), rest[1:] if rest.startswith("\n") else rest


def get(name: str) -> Template:
    """Template ``name`` as it is used now."""
    info(name)
    row = MessageTemplate.get_or_none(MessageTemplate.name == name)
    if row is not None:
        return Template(name, row.subject, row.body, True, row.updated_at, row.updated_by)
    subject, body = shipped(name)
    return Template(name, subject, body, False)


def listing() -> list[Template]:
    """Every template as it is used now, in the order of :data:`TEMPLATES`."""
    rows = {r.name: r for r in MessageTemplate.select()}
    out = []
    for name in TEMPLATES:
        row = rows.get(name)
        if row is None:
            out.append(Template(name, *shipped(name), edited=False))
        else:
            out.append(Template(name, row.subject, row.body, True, row.updated_at, row.updated_by))
    return out


# --- rendering ----------------------------------------------------------------------

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True,
                            lstrip_blocks=True, keep_trailing_newline=True)


@functools.lru_cache(maxsize=128)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def _tidy_body(text: str) -> str:
    """The rendered body with sections left empty by conditions closed up: no runs of blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def render_text(subject: str, body: str, context: dict) -> tuple[str, str]:
    """Render a subject and a body with ``context``: the subject on one line, the body tidied."""
    rendered_subject = " ".join(_compile(subject).render(context).split())
    return rendered_subject, _tidy_body(_compile(body).render(context))


def render(name: str, context: dict) -> tuple[str, str]:
    """``(subject, body)`` of template ``name`` as used now, rendered with ``context``.

    Raises :class:`ValidationError` naming the template when it cannot be rendered.
    """
    template = get(name)
    try:
        return render_text(template.subject, template.body, context)
    except Exception as exc:  # undefined variables, sandbox refusals, errors in the template's own logic
        raise ValidationError(f"message template {name!r} cannot be rendered: {exc}", name) from None


def sample_context(name: str) -> dict:
    """Sample values of the variables template ``name`` gets, as used to check an edit."""
    return {var: VARIABLES[var].sample for var in info(name).variables}


# --- editing ------------------------------------------------------------------------

def _checked_source(field: str, source: str, template: TemplateInfo) -> None:
    try:
        parsed = _ENV.parse(source)
        _compile(source)  # finds unknown filters and tests, which parsing lets through
    except jinja2.TemplateSyntaxError as exc:
        raise ValidationError(f"{field}: syntax error on line {exc.lineno}: {exc.message}", field) from None
    unknown = meta.find_undeclared_variables(parsed) - set(template.variables) - set(_ENV.globals)
    if unknown:
        raise ValidationError(f"{field}: unknown variable(s) {', '.join(sorted(unknown))}; the {template.name} "
                              f"template can use {', '.join(template.variables)}", field)


def check(name: str, subject: str, body: str) -> tuple[str, str]:
    """Refuse (with :class:`ValidationError`) a subject and body template ``name`` cannot use.

    Returns them rendered with the sample values.
    """
    template = info(name)
    _checked_source("subject", subject, template)
    _checked_source("body", body, template)
    sample = sample_context(name)
    rendered = []
    for field, source in (("subject", subject), ("body", body)):
        try:
            rendered.append(_compile(source).render(sample))
        except Exception as exc:  # anything a template can raise (a sandbox refusal, a bad filter argument)
            raise ValidationError(f"{field}: cannot be rendered: {exc}", field) from None
    if not rendered[0].strip():
        raise ValidationError("subject: is empty once rendered", "subject")
    return " ".join(rendered[0].split()), _tidy_body(rendered[1])


def _clean(field: str, text: str, limit: int) -> str:
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise ValidationError(f"{field} is required", field)
    if len(text) > limit:
        raise ValidationError(f"{field} is longer than {limit:,} characters", field)
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        raise ValidationError(f"{field} contains control characters", field)
    return text


def save(name: str, subject: str | None = None, body: str | None = None) -> Template:
    """Store an operator's edit of template ``name`` (``None`` keeps that part as it is), audited.

    The edit is checked first (:func:`check`); a refused edit writes nothing.
    """
    current = get(name)
    subject = _clean("subject", current.subject if subject is None else subject, SUBJECT_MAX).strip()
    if "\n" in subject:
        raise ValidationError("subject must be one line", "subject")
    body = _clean("body", current.body if body is None else body, BODY_MAX)
    check(name, subject, body)
    with refuse_conflict(f"template {name} was changed at the same time; try again", "name"), database.atomic():
        row = MessageTemplate.get_or_none(MessageTemplate.name == name)
        before = None if row is None else {"subject": row.subject, "body": row.body}
        values = {"subject": subject, "body": body, "updated_at": utcnow(), "updated_by": audit.current_actor()[:150]}
        if row is None:
            MessageTemplate.create(name=name, **values)
        else:
            MessageTemplate.update(**values).where(MessageTemplate.name == name).execute()
        audit.record("template.set", "message_template", name, before, {"subject": subject, "body": body})
    return get(name)


def reset(name: str) -> bool:
    """Go back to the shipped text of template ``name``, audited; ``False`` when it was not edited."""
    info(name)
    with database.atomic():
        row = MessageTemplate.get_or_none(MessageTemplate.name == name)
        if row is None:
            return False
        MessageTemplate.delete().where(MessageTemplate.name == name).execute()
        audit.record("template.reset", "message_template", name, {"subject": row.subject, "body": row.body}, None)
    return True


# --- the variables, from the database -----------------------------------------------

def _date(value) -> str:
    if value is None:
        return ""
    return (value.date() if isinstance(value, dt.datetime) else value).isoformat()


def customer_context(customer: Customer) -> dict:
    """The variables every template gets: the company's name, the customer's name and account number."""
    return {"company_name": str(settings.get_or("company.name", "") or ""), "customer_name": customer.name,
            "account_number": customer.account_number}


def balance_context(customer: Customer) -> dict:
    """``balance_due`` and ``account_credit`` from the customer's ledger (each empty when zero)."""
    balance = ledger.balance(customer)
    return {"balance_due": str(balance) if balance.minor > 0 else "",
            "account_credit": str(-balance) if balance.minor < 0 else ""}


def _open_due(invoice: Invoice) -> int:
    return max(invoice.total_minor - invoice.settled_minor, 0) if invoice.status == "issued" else 0


def pay_url(invoice: Invoice) -> str:
    """The invoice's pay link; empty without ``web.base_url`` (a relative link is no use in a message)."""
    if invoice.number is None or not _open_due(invoice) or not settings.get_or("web.base_url", ""):
        return ""
    from core import paylinks

    return paylinks.url_for(invoice)


def invoice_context(invoice: Invoice, today: dt.date | None = None) -> dict:
    """The variables of the ``invoice`` and ``due_soon`` templates for ``invoice``."""
    today = today or utc_today()
    due = _open_due(invoice)
    period = ""
    if invoice.period_start and invoice.period_end:
        period = f"{_date(invoice.period_start)} to {_date(invoice.period_end)}"
    return customer_context(invoice.customer) | {
        "invoice_number": invoice.display_number or f"draft {invoice.id}",
        "invoice_total": str(Money(invoice.total_minor, invoice.currency)),
        "amount_due": str(Money(due, invoice.currency)),
        "issue_date": _date(invoice.issue_date),
        "due_date": _date(invoice.due_date),
        "period": period,
        "is_paid": invoice.status == "paid" or (invoice.status == "issued" and due == 0),
        "days_until_due": (invoice.due_date - today).days if invoice.due_date else 0,
        "pay_url": pay_url(invoice),
    }


def payment_context(payment: Payment) -> dict:
    """The variables of the ``receipt`` template for ``payment``."""
    from core.receipts import METHOD_NAMES

    customer = payment.customer
    return customer_context(customer) | balance_context(customer) | {
        "receipt_number": payment.receipt or f"payment {payment.id}",
        "amount": str(Money(payment.amount_minor, payment.currency)),
        "paid_on": _date(payment.received_at),
        "payment_method": METHOD_NAMES.get(payment.method or "", payment.method or payment.gateway),
        "payment_reference": payment.reference,
    }


def _open_invoices(customer: Customer):
    return (Invoice.select().where(Invoice.customer == customer.id, Invoice.status == "issued",
                                   Invoice.total_minor > Invoice.settled_minor)
            .order_by(Invoice.due_date, Invoice.id))


def _overdue(customer: Customer, open_invoices, today: dt.date) -> tuple[Money, dt.date | None]:
    late = [i for i in open_invoices if i.due_date is not None and i.due_date < today]
    return (Money(sum(_open_due(i) for i in late), customer.currency),
            min((i.due_date for i in late), default=None))


def overdue(customer: Customer, today: dt.date | None = None) -> tuple[Money, dt.date | None]:
    """What ``customer`` owes on invoices past their due date, and the oldest of those due dates."""
    return _overdue(customer, _open_invoices(customer), today or utc_today())


def account_context(customer: Customer, facts: dict | None = None, today: dt.date | None = None) -> dict:
    """The variables of the account-state templates (``reminder``, ``suspended``, ...).

    ``facts`` is an ``account.*`` event's payload (``to_state``, ``overdue_minor``,
    ``currency``, ``days_overdue``, ``oldest_due_date``); what it leaves out is worked out
    from the customer's open invoices as of ``today``.
    """
    facts = facts or {}
    today = today or utc_today()
    open_invoices = list(_open_invoices(customer))
    overdue_amount, oldest = _overdue(customer, open_invoices, today)
    if "overdue_minor" in facts:
        overdue_amount = Money(int(facts["overdue_minor"]), facts.get("currency") or customer.currency)
    oldest_text = (facts["oldest_due_date"] or "") if "oldest_due_date" in facts else _date(oldest)
    days = facts["days_overdue"] if "days_overdue" in facts else ((today - oldest).days if oldest else 0)
    return customer_context(customer) | balance_context(customer) | {
        "state": facts.get("to_state") or customer.state,
        "overdue_amount": str(overdue_amount),
        "days_overdue": int(days or 0),
        "oldest_due_date": oldest_text,
        "pay_url": pay_url(open_invoices[0]) if open_invoices else "",
    }


def preview_context(name: str, customer: Customer) -> dict:
    """The variables template ``name`` would get for ``customer`` now: their newest invoice or payment.

    May make the invoice's pay link (run it in a transaction that is rolled back to leave
    no trace). :class:`ValidationError` when the customer has nothing to show it with.
    """
    info(name)
    if name in ("invoice", "due_soon"):
        invoice = (Invoice.select().where(Invoice.customer == customer.id, Invoice.number.is_null(False))
                   .order_by(Invoice.id.desc()).first())
        if invoice is None:
            raise ValidationError(f"customer {customer.account_number} has no issued invoice to preview "
                                  f"the {name} template with", "customer")
        return invoice_context(invoice)
    if name == "receipt":
        payment = (Payment.select().where(Payment.customer == customer.id)
                   .order_by(Payment.received_at.desc(), Payment.id.desc()).first())
        if payment is None:
            raise ValidationError(f"customer {customer.account_number} has no payment to preview the receipt "
                                  "template with", "customer")
        return payment_context(payment)
    return account_context(customer)
