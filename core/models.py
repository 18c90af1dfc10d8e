"""The tables of the whole domain and the constraints that keep the data honest.

Money is always a pair of columns: an integer amount in minor units (``*_minor``) and an
ISO 4217 ``currency``; there are no float columns. Timestamps are naive UTC. Rates and
quantities that are not money are ``Decimal`` values kept as exact decimal text, since
SQLite would turn a NUMERIC column into a binary float. The schema itself is created by
the numbered migrations in ``core/migrations``; a test checks that these classes and the
migrated schema agree column for column.
"""

from __future__ import annotations

import json
from decimal import Decimal

import peewee as pw

from core.clock import utcnow
from core.db import database

CURRENCY_CHECK = "length(currency) = 3 AND upper(currency) = currency"


def to_json(value) -> str | None:
    """``value`` as the JSON text a :class:`JSONText` column stores."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


class JSONText(pw.TextField):
    """JSON stored as text, the same on SQLite and PostgreSQL."""

    def db_value(self, value):
        return to_json(value)

    def python_value(self, value):
        if value is None:
            return None
        return json.loads(value)


class ExactDecimal(pw.TextField):
    """A ``Decimal`` stored as its exact text (``"0.16"``) on every backend; floats refused.

    Compare and add these values in Python, not in SQL: as text, ``'10' < '9'``.
    """

    MAX_CHARS = 40

    def db_value(self, value):
        if value is None:
            return None
        if isinstance(value, (float, bool)) or not isinstance(value, (Decimal, int, str)):
            raise TypeError(f"{self.name}: expected a Decimal, got {type(value).__name__}")
        try:
            number = Decimal(value)
        except ArithmeticError:
            raise ValueError(f"{self.name}: {value!r} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{self.name}: {value!r} is not a finite number")
        text = format(number, "f")
        if len(text) > self.MAX_CHARS:
            raise ValueError(f"{self.name}: {value!r} has more than {self.MAX_CHARS} characters")
        return text

    def python_value(self, value):
        return None if value is None else Decimal(value)


def _choices_check(column: str, values) -> pw.Check:
    quoted = ", ".join(f"'{v}'" for v in values)
    return pw.Check(f"{column} IN ({quoted})")


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


# --- settings and staff -------------------------------------------------------------

class Setting(BaseModel):
    """A stored setting of the core or of a plugin; ``value`` is JSON."""

    key = pw.CharField(primary_key=True, max_length=200)
    value = JSONText(null=True)
    secret = pw.BooleanField(default=False)
    updated_at = pw.DateTimeField(default=utcnow)


USER_ROLES = ("admin", "billing", "support", "readonly")


class User(BaseModel):
    """A staff member who signs in to the console."""

    username = pw.CharField(max_length=150, unique=True)
    password_hash = pw.CharField(max_length=255)
    role = pw.CharField(max_length=20, default="admin", constraints=[_choices_check("role", USER_ROLES)])
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_login_at = pw.DateTimeField(null=True)


class StaffSession(BaseModel):
    """A signed-in console session. The cookie carries the token; only its hash is stored.

    Signing out revokes the row, so a copied cookie stops working at once rather than
    when it would have expired.
    """

    token_hash = pw.CharField(max_length=64, unique=True)
    user = pw.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    revoked_at = pw.DateTimeField(null=True)
    user_agent = pw.CharField(max_length=200, null=True)
    remote_addr = pw.CharField(max_length=45, null=True)


# --- customers and catalog ----------------------------------------------------------

ACCOUNT_STATES = ("active", "reminded", "throttled", "suspended", "terminated")


class DunningPolicy(BaseModel):
    """When an overdue account is reminded, throttled, suspended and terminated.

    Day counts are days past the due date of the oldest overdue invoice; ``None`` skips
    the step. Nothing happens while the overdue amount is below ``minimum_owed_minor``
    (in the customer's currency). The policy named ``default`` applies unless a plan or a
    customer names another.
    """

    name = pw.CharField(max_length=60, unique=True)
    remind_after_days = pw.IntegerField(null=True, constraints=[pw.Check("remind_after_days >= 0")])
    throttle_after_days = pw.IntegerField(null=True, constraints=[pw.Check("throttle_after_days >= 0")])
    suspend_after_days = pw.IntegerField(null=True, constraints=[pw.Check("suspend_after_days >= 0")])
    terminate_after_days = pw.IntegerField(null=True, constraints=[pw.Check("terminate_after_days >= 0")])
    minimum_owed_minor = pw.BigIntegerField(default=0, constraints=[pw.Check("minimum_owed_minor >= 0")])
    throttle_download_kbps = pw.IntegerField(default=512, constraints=[pw.Check("throttle_download_kbps > 0")])
    throttle_upload_kbps = pw.IntegerField(default=256, constraints=[pw.Check("throttle_upload_kbps > 0")])
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)


class Customer(BaseModel):
    """A subscriber account: who is billed, in which currency, and its account state."""

    account_number = pw.CharField(max_length=40, unique=True)
    name = pw.CharField(max_length=200)
    email = pw.CharField(max_length=254, null=True)
    phone = pw.CharField(max_length=40, null=True)
    address = pw.TextField(null=True)
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    terms_days = pw.IntegerField(default=14, constraints=[pw.Check("terms_days >= 0")])
    tax_region = pw.CharField(max_length=40, null=True)
    tax_exempt = pw.BooleanField(default=False)
    tax_exemption_ref = pw.CharField(max_length=100, null=True)
    state = pw.CharField(max_length=20, default="active", index=True,
                         constraints=[_choices_check("state", ACCOUNT_STATES)])
    state_changed_at = pw.DateTimeField(null=True)
    dunning_policy = pw.ForeignKeyField(DunningPolicy, null=True, backref="customers", on_delete="RESTRICT")
    dunning_exempt = pw.BooleanField(default=False)
    promise_until = pw.DateField(null=True)  # promise to pay: no dunning step before this date (inclusive)
    notes = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)


PLAN_KINDS = ("internet", "tv", "phone", "vas")
PLAN_PERIODS = ("monthly", "weekly", "daily", "days")


class Plan(BaseModel):
    """A priced offer. A price change makes a new row with the same ``code`` and a higher ``version``."""

    code = pw.CharField(max_length=60)
    version = pw.IntegerField(default=1, constraints=[pw.Check("version >= 1")])
    name = pw.CharField(max_length=200)
    kind = pw.CharField(max_length=20, constraints=[_choices_check("kind", PLAN_KINDS)])
    period = pw.CharField(max_length=10, default="monthly", constraints=[_choices_check("period", PLAN_PERIODS)])
    period_days = pw.IntegerField(null=True, constraints=[pw.Check("period_days IS NULL OR period_days > 0")])
    price_minor = pw.BigIntegerField(constraints=[pw.Check("price_minor >= 0")])
    setup_fee_minor = pw.BigIntegerField(default=0, constraints=[pw.Check("setup_fee_minor >= 0")])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    tax_category = pw.CharField(max_length=40, default="standard")
    download_kbps = pw.IntegerField(null=True, constraints=[pw.Check("download_kbps IS NULL OR download_kbps > 0")])
    upload_kbps = pw.IntegerField(null=True, constraints=[pw.Check("upload_kbps IS NULL OR upload_kbps > 0")])
    burst_download_kbps = pw.IntegerField(null=True)
    burst_upload_kbps = pw.IntegerField(null=True)
    data_cap_mb = pw.BigIntegerField(null=True, constraints=[pw.Check("data_cap_mb IS NULL OR data_cap_mb > 0")])
    fup_download_kbps = pw.IntegerField(null=True)
    fup_upload_kbps = pw.IntegerField(null=True)
    overage_per_gb_minor = pw.BigIntegerField(null=True, constraints=[
        pw.Check("overage_per_gb_minor IS NULL OR overage_per_gb_minor >= 0")])
    dunning_policy = pw.ForeignKeyField(DunningPolicy, null=True, backref="plans", on_delete="RESTRICT")
    active = pw.BooleanField(default=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("code", "version"), True),)
        constraints = [pw.Check("period <> 'days' OR period_days IS NOT NULL")]


class Router(BaseModel):
    """A NAS or router that an enforcer plugin (``kind``) keeps in step with billing."""

    name = pw.CharField(max_length=100, unique=True)
    kind = pw.CharField(max_length=40)
    host = pw.CharField(max_length=255)
    port = pw.IntegerField(null=True, constraints=[pw.Check("port IS NULL OR (port > 0 AND port < 65536)")])
    username = pw.CharField(max_length=100, null=True)
    secret = pw.CharField(max_length=255, null=True)
    use_tls = pw.BooleanField(default=False)
    options = JSONText(null=True)
    active = pw.BooleanField(default=True)
    last_seen_at = pw.DateTimeField(null=True)
    last_reconcile_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)


SERVICE_STATUSES = ("pending", "active", "suspended", "cancelled")
BILLING_MODES = ("prepaid", "postpaid")
ACCESS_KINDS = ("pppoe", "dhcp", "static", "hotspot")


class Service(BaseModel):
    """A customer's subscription to one plan version, and how it reaches the network."""

    customer = pw.ForeignKeyField(Customer, backref="services", on_delete="RESTRICT")
    plan = pw.ForeignKeyField(Plan, backref="services", on_delete="RESTRICT")
    status = pw.CharField(max_length=20, default="active", constraints=[_choices_check("status", SERVICE_STATUSES)])
    billing_mode = pw.CharField(max_length=10, default="postpaid", constraints=[_choices_check("billing_mode", BILLING_MODES)])
    start_date = pw.DateField()
    end_date = pw.DateField(null=True)
    anchor_day = pw.IntegerField(constraints=[pw.Check("anchor_day BETWEEN 1 AND 31")])
    next_bill_date = pw.DateField(null=True, index=True)
    price_override_minor = pw.BigIntegerField(null=True, constraints=[
        pw.Check("price_override_minor IS NULL OR price_override_minor >= 0")])
    billed_through = pw.DateField(null=True)  # exclusive: every day before it is on an invoice or a charge
    setup_billed = pw.BooleanField(default=False)
    pending_plan = pw.ForeignKeyField(Plan, null=True, backref="pending_services", on_delete="RESTRICT")
    pending_change_date = pw.DateField(null=True)
    usage_billed_through = pw.DateField(null=True)  # exclusive: usage before it is rated
    router = pw.ForeignKeyField(Router, null=True, backref="services", on_delete="SET NULL")
    username = pw.CharField(max_length=100, null=True, unique=True)
    password = pw.CharField(max_length=255, null=True)
    ip_address = pw.CharField(max_length=45, null=True)
    mac_address = pw.CharField(max_length=17, null=True)
    paid_through = pw.DateField(null=True)  # prepaid, exclusive: access is paid for every day before it
    access = pw.CharField(max_length=10, null=True, constraints=[
        pw.Check("access IS NULL OR access IN ('pppoe', 'dhcp', 'static', 'hotspot')")])
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        constraints = [
            pw.Check("end_date IS NULL OR end_date >= start_date"),
            pw.Check("(pending_plan_id IS NULL) = (pending_change_date IS NULL)"),
        ]


# --- invoices, credit notes ---------------------------------------------------------

class NumberSeries(BaseModel):
    """A gapless numbering series (``INV-2026``, ``CN-2026``): the next number to hand out.

    Numbers are taken by locking this row inside the transaction that issues the document,
    so a rolled-back issue leaves no gap.
    """

    name = pw.CharField(primary_key=True, max_length=40)
    next_number = pw.BigIntegerField(default=1, constraints=[pw.Check("next_number >= 1")])


INVOICE_STATUSES = ("draft", "issued", "paid", "void")


class Invoice(BaseModel):
    """A bill to one customer. Once ``issued`` its lines and totals never change."""

    customer = pw.ForeignKeyField(Customer, backref="invoices", on_delete="RESTRICT")
    series = pw.CharField(max_length=40, null=True)
    number = pw.BigIntegerField(null=True)
    status = pw.CharField(max_length=10, default="draft", constraints=[_choices_check("status", INVOICE_STATUSES)])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    subtotal_minor = pw.BigIntegerField(default=0)
    tax_minor = pw.BigIntegerField(default=0)
    total_minor = pw.BigIntegerField(default=0)
    settled_minor = pw.BigIntegerField(default=0, constraints=[pw.Check("settled_minor >= 0")])
    issue_date = pw.DateField(null=True, index=True)
    due_date = pw.DateField(null=True)
    period_start = pw.DateField(null=True)
    period_end = pw.DateField(null=True)
    run_key = pw.CharField(max_length=100, null=True, unique=True)
    tax_inclusive = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow)
    issued_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("series", "number"), True),)
        constraints = [
            pw.Check("(series IS NULL) = (number IS NULL)"),
            pw.Check("status = 'draft' OR number IS NOT NULL"),
            pw.Check("total_minor = subtotal_minor + tax_minor OR tax_inclusive"),
            pw.Check("settled_minor <= total_minor OR total_minor < 0"),
        ]

    @property
    def display_number(self) -> str | None:
        """``INV-2026-000123`` once issued, ``None`` for a draft."""
        return None if self.number is None else f"{self.series}-{self.number:06d}"


LINE_KINDS = ("recurring", "setup", "proration", "oneoff", "usage", "discount", "credit")


class InvoiceLine(BaseModel):
    """One charge or discount on an invoice; ``amount_minor`` excludes tax unless the invoice is tax-inclusive."""

    # looked up through the unique (invoice, position) index
    invoice = pw.ForeignKeyField(Invoice, backref="lines", on_delete="CASCADE", index=False)
    position = pw.IntegerField()
    kind = pw.CharField(max_length=20, constraints=[_choices_check("kind", LINE_KINDS)])
    description = pw.CharField(max_length=300)
    service = pw.ForeignKeyField(Service, null=True, backref="invoice_lines", on_delete="SET NULL")
    quantity = ExactDecimal(default=Decimal(1))
    unit_price_minor = pw.BigIntegerField()
    amount_minor = pw.BigIntegerField()
    tax_category = pw.CharField(max_length=40, default="standard")
    period_start = pw.DateField(null=True)
    period_end = pw.DateField(null=True)
    source = pw.CharField(max_length=100, null=True)

    class Meta:
        indexes = ((("invoice", "position"), True),)


class InvoiceTax(BaseModel):
    """Tax on an invoice, one row per tax and rate, as printed on the invoice."""

    invoice = pw.ForeignKeyField(Invoice, backref="taxes", on_delete="CASCADE")
    name = pw.CharField(max_length=100)
    rate = ExactDecimal()
    compound = pw.BooleanField(default=False)
    taxable_minor = pw.BigIntegerField()
    tax_minor = pw.BigIntegerField()
    source = pw.CharField(max_length=100, null=True)


class CreditNote(BaseModel):
    """A correction to an issued invoice: whole or partial, numbered in its own series."""

    invoice = pw.ForeignKeyField(Invoice, backref="credit_notes", on_delete="RESTRICT")
    customer = pw.ForeignKeyField(Customer, backref="credit_notes", on_delete="RESTRICT")
    series = pw.CharField(max_length=40)
    number = pw.BigIntegerField()
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    subtotal_minor = pw.BigIntegerField(constraints=[pw.Check("subtotal_minor >= 0")])
    tax_minor = pw.BigIntegerField(default=0, constraints=[pw.Check("tax_minor >= 0")])
    total_minor = pw.BigIntegerField(constraints=[pw.Check("total_minor > 0")])
    unallocated_minor = pw.BigIntegerField(default=0, constraints=[pw.Check("unallocated_minor >= 0")])
    reason = pw.TextField()
    issued_at = pw.DateTimeField(default=utcnow)
    created_by = pw.CharField(max_length=100)

    class Meta:
        indexes = ((("series", "number"), True),)


class CreditNoteLine(BaseModel):
    """One reversed amount on a credit note, optionally against an invoice line."""

    credit_note = pw.ForeignKeyField(CreditNote, backref="lines", on_delete="CASCADE")
    invoice_line = pw.ForeignKeyField(InvoiceLine, null=True, on_delete="RESTRICT")
    description = pw.CharField(max_length=300)
    amount_minor = pw.BigIntegerField(constraints=[pw.Check("amount_minor > 0")])
    tax_minor = pw.BigIntegerField(default=0, constraints=[pw.Check("tax_minor >= 0")])


# --- charges, promo codes, billing runs ---------------------------------------------

CHARGE_KINDS = ("oneoff", "proration", "setup", "usage")


class Charge(BaseModel):
    """A charge waiting for the next invoice: a one-off, or the prorated part of a plan change.

    The billing run puts every uninvoiced charge dated on or before its as-of date on the
    customer's invoice and links it here, in the same transaction.
    """

    customer = pw.ForeignKeyField(Customer, backref="charges", on_delete="RESTRICT")
    service = pw.ForeignKeyField(Service, null=True, backref="charges", on_delete="SET NULL")
    kind = pw.CharField(max_length=20, constraints=[_choices_check("kind", CHARGE_KINDS)])
    description = pw.CharField(max_length=300)
    quantity = ExactDecimal(default=Decimal(1))
    unit_price_minor = pw.BigIntegerField()
    amount_minor = pw.BigIntegerField(constraints=[pw.Check("amount_minor >= 0")])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    tax_category = pw.CharField(max_length=40, default="standard")
    charge_date = pw.DateField()
    period_start = pw.DateField(null=True)
    period_end = pw.DateField(null=True)
    invoice = pw.ForeignKeyField(Invoice, null=True, backref="charges", on_delete="RESTRICT")
    created_by = pw.CharField(max_length=150, default="system")
    created_at = pw.DateTimeField(default=utcnow)


class PromoRedemption(BaseModel):
    """A promo code attached to a customer, and how many issued invoices it has discounted."""

    customer = pw.ForeignKeyField(Customer, backref="promos", on_delete="CASCADE", index=False)
    code = pw.CharField(max_length=60)
    redeemed_on = pw.DateField()
    times_applied = pw.IntegerField(default=0, constraints=[pw.Check("times_applied >= 0")])
    created_by = pw.CharField(max_length=150, default="system")

    class Meta:
        indexes = ((("customer", "code"), True),)


class BillingRun(BaseModel):
    """One ``wispbill bill`` run: its as-of date, what it did, and how it ended."""

    as_of = pw.DateField()
    started_at = pw.DateTimeField(default=utcnow)
    finished_at = pw.DateTimeField(null=True)
    status = pw.CharField(max_length=20, default="running",
                          constraints=[_choices_check("status", ("running", "finished", "failed"))])
    invoices = pw.IntegerField(default=0)
    failures = JSONText(null=True)
    started_by = pw.CharField(max_length=150, default="system")


# --- payments and the ledger --------------------------------------------------------

PAYMENT_STATUSES = ("pending", "succeeded", "failed", "refunded", "partially_refunded")


class Payment(BaseModel):
    """Money received (or promised) through a gateway; unique per (gateway, reference)."""

    customer = pw.ForeignKeyField(Customer, null=True, backref="payments", on_delete="RESTRICT")
    gateway = pw.CharField(max_length=40)
    reference = pw.CharField(max_length=200)
    method = pw.CharField(max_length=40, null=True)
    status = pw.CharField(max_length=20, default="succeeded",
                          constraints=[_choices_check("status", PAYMENT_STATUSES)])
    amount_minor = pw.BigIntegerField(constraints=[pw.Check("amount_minor > 0")])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    received_at = pw.DateTimeField(default=utcnow, index=True)
    payer = pw.CharField(max_length=200, null=True)
    unallocated_minor = pw.BigIntegerField(default=0, constraints=[pw.Check("unallocated_minor >= 0")])
    raw = JSONText(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    receipt_series = pw.CharField(max_length=40, null=True)
    receipt_number = pw.BigIntegerField(null=True)
    recorded_by = pw.CharField(max_length=150, null=True)
    note = pw.TextField(null=True)

    class Meta:
        indexes = ((("gateway", "reference"), True), (("receipt_series", "receipt_number"), True))

    @property
    def receipt(self) -> str | None:
        """``RCT-2026-000042``: the number printed on the payment's receipt."""
        return None if self.receipt_number is None else f"{self.receipt_series}-{self.receipt_number:06d}"


ATTEMPT_STATUSES = ("started", "succeeded", "failed")


class PaymentAttempt(BaseModel):
    """A payment the core started through a gateway (a checkout page, a push to a phone).

    It records what was asked for, so that the notice which later reports the money can
    be checked against it. ``token`` is the core's reference sent to the gateway;
    ``gateway_reference`` is the gateway's own id for the attempt.
    """

    token = pw.CharField(max_length=40, unique=True)
    gateway = pw.CharField(max_length=40)
    gateway_reference = pw.CharField(max_length=200, null=True)
    customer = pw.ForeignKeyField(Customer, backref="payment_attempts", on_delete="RESTRICT")
    invoice = pw.ForeignKeyField(Invoice, null=True, backref="payment_attempts", on_delete="RESTRICT")
    amount_minor = pw.BigIntegerField(constraints=[pw.Check("amount_minor > 0")])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    status = pw.CharField(max_length=20, default="started", constraints=[_choices_check("status", ATTEMPT_STATUSES)])
    message = pw.TextField(null=True)
    redirect_url = pw.TextField(null=True)
    payment = pw.ForeignKeyField(Payment, null=True, backref="attempts", on_delete="RESTRICT")
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("gateway", "gateway_reference"), True),)


REVIEW_STATUSES = ("open", "accepted", "rejected")
REVIEW_KINDS = ("payment", "refund")


class PaymentReview(BaseModel):
    """Money a gateway reported that the core would not apply on its own; staff decide.

    A payment for an unknown account, one whose amount or currency differs from what was
    asked, an unmatched bank transfer. Unique per (gateway, reference) like payments, so a
    notice held here is held once however often it arrives.
    """

    gateway = pw.CharField(max_length=40)
    reference = pw.CharField(max_length=200)
    kind = pw.CharField(max_length=20, default="payment", constraints=[_choices_check("kind", REVIEW_KINDS)])
    customer = pw.ForeignKeyField(Customer, null=True, backref="payment_reviews", on_delete="RESTRICT")
    invoice = pw.ForeignKeyField(Invoice, null=True, backref="payment_reviews", on_delete="RESTRICT")
    attempt = pw.ForeignKeyField(PaymentAttempt, null=True, backref="reviews", on_delete="RESTRICT")
    amount_minor = pw.BigIntegerField(constraints=[pw.Check("amount_minor > 0")])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    account = pw.CharField(max_length=200, null=True)
    refund_of = pw.CharField(max_length=200, null=True)
    payer = pw.CharField(max_length=200, null=True)
    method = pw.CharField(max_length=40, null=True)
    received_at = pw.DateTimeField(default=utcnow)
    reason = pw.TextField()
    status = pw.CharField(max_length=20, default="open", index=True,
                          constraints=[_choices_check("status", REVIEW_STATUSES)])
    payment = pw.ForeignKeyField(Payment, null=True, backref="reviews", on_delete="RESTRICT")
    raw = JSONText(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    resolved_at = pw.DateTimeField(null=True)
    resolved_by = pw.CharField(max_length=150, null=True)
    resolution = pw.TextField(null=True)

    class Meta:
        indexes = ((("gateway", "reference"), True),)


class PayLink(BaseModel):
    """The unguessable token of an invoice's public pay page (``/pay/<token>``)."""

    invoice = pw.ForeignKeyField(Invoice, unique=True, backref="pay_links", on_delete="RESTRICT")
    token = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow)


class Allocation(BaseModel):
    """The part of a payment or of a credit note applied to one invoice (exactly one source)."""

    # each looked up through its unique (source, invoice) index
    payment = pw.ForeignKeyField(Payment, null=True, backref="allocations", on_delete="RESTRICT", index=False)
    credit_note = pw.ForeignKeyField(CreditNote, null=True, backref="allocations", on_delete="RESTRICT",
                                     index=False)
    invoice = pw.ForeignKeyField(Invoice, backref="allocations", on_delete="RESTRICT")
    amount_minor = pw.BigIntegerField(constraints=[pw.Check("amount_minor > 0")])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("payment", "invoice"), True), (("credit_note", "invoice"), True))
        constraints = [pw.Check("(payment_id IS NULL) <> (credit_note_id IS NULL)")]


class Refund(BaseModel):
    """Money returned against a payment; unique per (gateway, reference)."""

    payment = pw.ForeignKeyField(Payment, backref="refunds", on_delete="RESTRICT")
    gateway = pw.CharField(max_length=40)
    reference = pw.CharField(max_length=200)
    amount_minor = pw.BigIntegerField(constraints=[pw.Check("amount_minor > 0")])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    reason = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("gateway", "reference"), True),)


LEDGER_KINDS = ("invoice", "payment", "credit_note", "refund", "adjustment")


class LedgerEntry(BaseModel):
    """One money movement on a customer's account. Positive: the customer owes more.

    A customer's balance is the sum of ``amount_minor`` over their entries (per currency).
    Entries are only ever added.
    """

    customer = pw.ForeignKeyField(Customer, backref="ledger", on_delete="RESTRICT")
    kind = pw.CharField(max_length=20, constraints=[_choices_check("kind", LEDGER_KINDS)])
    amount_minor = pw.BigIntegerField(constraints=[pw.Check("amount_minor <> 0")])
    currency = pw.CharField(max_length=3, constraints=[pw.Check(CURRENCY_CHECK)])
    invoice = pw.ForeignKeyField(Invoice, null=True, on_delete="RESTRICT")
    # Indexed only where set (partial indexes in migration 0002): most entries are invoices.
    payment = pw.ForeignKeyField(Payment, null=True, on_delete="RESTRICT", index=False)
    credit_note = pw.ForeignKeyField(CreditNote, null=True, on_delete="RESTRICT", index=False)
    refund = pw.ForeignKeyField(Refund, null=True, on_delete="RESTRICT", index=False)
    description = pw.CharField(max_length=300)
    created_at = pw.DateTimeField(default=utcnow)


# --- usage, enforcement -------------------------------------------------------------

class UsageRecord(BaseModel):
    """Traffic counted for a service over an interval, from one usage source."""

    service = pw.ForeignKeyField(Service, backref="usage", on_delete="CASCADE")
    source = pw.CharField(max_length=40)
    external_id = pw.CharField(max_length=200)
    period_start = pw.DateTimeField()
    period_end = pw.DateTimeField()
    bytes_in = pw.BigIntegerField(default=0, constraints=[pw.Check("bytes_in >= 0")])
    bytes_out = pw.BigIntegerField(default=0, constraints=[pw.Check("bytes_out >= 0")])
    collected_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("source", "external_id"), True), (("service", "period_start"), False))
        constraints = [pw.Check("period_end >= period_start")]


ENFORCEMENT_STATES = ("active", "throttled", "suspended", "removed")


class Enforcement(BaseModel):
    """What a service's router should hold (desired) and what it was last seen to hold (applied)."""

    service = pw.ForeignKeyField(Service, unique=True, backref="enforcement", on_delete="CASCADE")
    router = pw.ForeignKeyField(Router, null=True, backref="enforcements", on_delete="SET NULL")
    desired_state = pw.CharField(max_length=20, constraints=[_choices_check("desired_state", ENFORCEMENT_STATES)])
    applied_state = pw.CharField(max_length=20, null=True)
    desired = JSONText(null=True)
    applied = JSONText(null=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(null=True, index=True)
    last_error = pw.TextField(null=True)
    updated_at = pw.DateTimeField(default=utcnow)


# --- audit and events ---------------------------------------------------------------

class AuditEvent(BaseModel):
    """Who changed what, when, with the object's state before and after."""

    at = pw.DateTimeField(default=utcnow, index=True)
    actor = pw.CharField(max_length=150)
    action = pw.CharField(max_length=100)
    object_type = pw.CharField(max_length=60)
    object_id = pw.CharField(max_length=60, null=True)
    before = JSONText(null=True)
    after = JSONText(null=True)

    class Meta:
        indexes = ((("object_type", "object_id"), False),)


class Event(BaseModel):
    """A domain event in the outbox: written with the change, handed to plugins after commit."""

    name = pw.CharField(max_length=100)
    payload = JSONText()
    created_at = pw.DateTimeField(default=utcnow)
    dispatched_at = pw.DateTimeField(null=True, index=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)


class SchedulerLease(BaseModel):
    """Who runs the scheduler's jobs: one holder at a time, until ``expires_at`` unless renewed."""

    name = pw.CharField(primary_key=True, max_length=40)
    holder = pw.CharField(max_length=200)
    acquired_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()


NOTIFICATION_STATUSES = ("pending", "sent", "failed", "skipped")


class Notification(BaseModel):
    """One message to a customer, sent at most once per ``key`` (event and template)."""

    key = pw.CharField(max_length=200, unique=True)
    customer = pw.ForeignKeyField(Customer, null=True, backref="notifications", on_delete="RESTRICT")
    template = pw.CharField(max_length=60)
    channel = pw.CharField(max_length=20)
    recipient = pw.CharField(max_length=254, null=True)
    subject = pw.TextField(null=True)
    body = pw.TextField(null=True)
    status = pw.CharField(max_length=10, default="pending", index=True,
                          constraints=[_choices_check("status", NOTIFICATION_STATUSES)])
    notifier = pw.CharField(max_length=60, null=True)
    reference = pw.CharField(max_length=200, null=True)
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True)


class MessageTemplate(BaseModel):
    """An operator's edited message template; templates without a row use the shipped text."""

    name = pw.CharField(primary_key=True, max_length=60)
    subject = pw.TextField()
    body = pw.TextField()
    updated_at = pw.DateTimeField(default=utcnow)
    updated_by = pw.CharField(max_length=150, null=True)


# --- the web: customer sign-in, API tokens, login throttling, customer requests ---------

class CustomerLogin(BaseModel):
    """A customer's portal password. They sign in with the email or phone on their account."""

    customer = pw.ForeignKeyField(Customer, unique=True, backref="logins", on_delete="CASCADE")
    password_hash = pw.CharField(max_length=255)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    last_login_at = pw.DateTimeField(null=True)


class PortalSession(BaseModel):
    """A signed-in portal session of a customer; like :class:`StaffSession`, only the token's hash is kept."""

    token_hash = pw.CharField(max_length=64, unique=True)
    customer = pw.ForeignKeyField(Customer, backref="portal_sessions", on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    revoked_at = pw.DateTimeField(null=True)
    user_agent = pw.CharField(max_length=200, null=True)
    remote_addr = pw.CharField(max_length=45, null=True)


class PasswordReset(BaseModel):
    """A password-reset link sent to a customer: usable once, until it expires."""

    token_hash = pw.CharField(max_length=64, unique=True)
    customer = pw.ForeignKeyField(Customer, backref="password_resets", on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField()
    used_at = pw.DateTimeField(null=True)
    remote_addr = pw.CharField(max_length=45, null=True)


LOGIN_REALMS = ("staff", "portal", "api")


class LoginFailure(BaseModel):
    """A failed sign-in, counted by the login rate limit and the account lockout."""

    realm = pw.CharField(max_length=10, constraints=[_choices_check("realm", LOGIN_REALMS)])
    account = pw.CharField(max_length=254)
    remote_addr = pw.CharField(max_length=45, null=True)
    at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("realm", "account", "at"), False), (("remote_addr", "at"), False))


class ApiToken(BaseModel):
    """A staff member's token for the JSON API, with the scopes it may use; only its hash is kept."""

    user = pw.ForeignKeyField(User, backref="api_tokens", on_delete="CASCADE")
    name = pw.CharField(max_length=100)
    token_hash = pw.CharField(max_length=64, unique=True)
    prefix = pw.CharField(max_length=16)
    scopes = JSONText()
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField(null=True)
    last_used_at = pw.DateTimeField(null=True)
    revoked_at = pw.DateTimeField(null=True)


CUSTOMER_REQUEST_KINDS = ("message", "plan_change")
CUSTOMER_REQUEST_STATUSES = ("open", "done", "declined")


class CustomerRequest(BaseModel):
    """What a customer asked for in the portal: a message to the operator or a plan change."""

    customer = pw.ForeignKeyField(Customer, backref="requests", on_delete="RESTRICT")
    kind = pw.CharField(max_length=20, constraints=[_choices_check("kind", CUSTOMER_REQUEST_KINDS)])
    body = pw.TextField()
    service = pw.ForeignKeyField(Service, null=True, backref="requests", on_delete="SET NULL")
    plan = pw.ForeignKeyField(Plan, null=True, backref="requests", on_delete="RESTRICT")
    status = pw.CharField(max_length=10, default="open", index=True,
                          constraints=[_choices_check("status", CUSTOMER_REQUEST_STATUSES)])
    created_at = pw.DateTimeField(default=utcnow)
    closed_at = pw.DateTimeField(null=True)
    closed_by = pw.CharField(max_length=150, null=True)
    reply = pw.TextField(null=True)


ALL_MODELS = (
    Setting, User, StaffSession, DunningPolicy, Customer, Plan, Router, Service, NumberSeries, Invoice, InvoiceLine,
    InvoiceTax, CreditNote, CreditNoteLine, Charge, PromoRedemption, BillingRun, Payment, Allocation,
    Refund, LedgerEntry, PaymentAttempt, PaymentReview, PayLink,
    UsageRecord, Enforcement, AuditEvent, Event, SchedulerLease, Notification, MessageTemplate,
    CustomerLogin, PortalSession, PasswordReset, LoginFailure, ApiToken, CustomerRequest,
)
