"""Value objects that cross the plugin boundary: what hooks receive and return.

They are plain frozen dataclasses so that a plugin needs nothing but ``core`` to build
them, and so that the core can check a plugin's answer before it trusts it. Money is
always a :class:`core.money.Money`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from core.money import Money

# --- lifecycle ---------------------------------------------------------------------

@dataclass(frozen=True)
class SettingSpec:
    """A setting a plugin (or the core) declares; the core stores and validates it.

    ``key`` is dotted and starts with the plugin's own prefix (``acmepay.api_key``).
    ``secret`` values are never shown back in the UI, the API or the CLI.
    ``parse`` turns the text an operator typed into the stored value, raising
    ``ValueError`` with a message for bad input.
    """

    key: str
    label: str
    default: Any = None
    secret: bool = False
    help: str = ""
    parse: Callable[[str], Any] = str


@dataclass(frozen=True)
class Job:
    """A scheduled job: ``func()`` runs on ``trigger`` (``interval`` or ``cron``) with ``schedule`` kwargs."""

    id: str
    func: Callable[[], Any]
    trigger: str = "interval"
    schedule: dict = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class DomainEvent:
    """A domain event as plugins see it: ``name`` like ``invoice.issued``, JSON ``payload``."""

    id: int
    name: str
    payload: dict
    created_at: dt.datetime


# --- gateways ----------------------------------------------------------------------

@dataclass(frozen=True)
class GatewayInfo:
    """What a payment gateway is and can do (its settings go through ``register_settings``)."""

    name: str
    label: str
    currencies: tuple[str, ...] = ()  # empty: any currency
    can_refund: bool = False
    can_charge_saved_method: bool = False
    interactive: bool = True  # False for gateways staff record by hand (no pay-link button)
    configured: bool = True  # False while settings it needs are missing: left off pay links
    asks_for: tuple[str, ...] = ()  # what the pay page asks the payer for: "phone", "email"
    webhooks: bool = True  # False: /hooks/<name> does not exist (notifications come from staff only)
    settings: tuple[str, ...] = ()  # keys of the settings it needs before it can take money
    hosts: tuple[str, ...] = ()  # hosts a payer's browser must reach: kept open for suspended subscribers


@dataclass(frozen=True)
class PaymentRequest:
    """A request to collect ``amount`` from a customer, for an invoice or as a top-up.

    ``reference`` is the core's own reference for this attempt (unique, ``PA-...``): pass
    it to the gateway (as metadata, a client reference) so that notices can name it in
    ``PaymentNotice.attempt``. ``account`` is the customer's account number, short enough
    for a paybill account reference. ``notify_url`` is where this gateway's notifications
    are received (``<base>/hooks/<gateway>``; append a path of your own if you need
    several), ``return_url`` the page to send the payer back to.
    """

    customer_id: int
    amount: Money
    reference: str
    description: str
    invoice_id: int | None = None
    return_url: str | None = None
    phone: str | None = None
    email: str | None = None
    account: str | None = None
    notify_url: str | None = None


@dataclass(frozen=True)
class PaymentStart:
    """How a started payment continues: a page to send the payer to, or a push to their phone.

    ``reference`` is the gateway's own id for the attempt (a checkout session, a push
    request id); the core keeps it with the attempt, and a notice may name either it or
    the request's reference in ``PaymentNotice.attempt``. ``amount`` is what the gateway
    actually asked for when it differs from the request (a gateway that takes whole units
    only rounds up); the core then expects that amount.
    """

    gateway: str
    reference: str
    redirect_url: str | None = None
    message: str | None = None
    amount: Money | None = None


@dataclass(frozen=True)
class Notification:
    """An incoming gateway notification (webhook or callback, or a file staff import) exactly as received.

    ``path`` is what followed ``/hooks/<gateway>/`` in the URL (empty for ``/hooks/<gateway>``);
    ``headers`` keys keep the case the client sent, so look them up case-insensitively.
    """

    gateway: str
    body: bytes
    headers: dict
    query: dict = field(default_factory=dict)
    remote_addr: str | None = None
    path: str = ""


@dataclass(frozen=True)
class PaymentNotice:
    """A verified fact from a gateway, for the core to record idempotently on (gateway, reference).

    ``kind`` is ``payment`` (money received), ``failure`` (an attempt failed: nothing is
    recorded but the attempt's status) or ``refund`` (money returned; ``refund_of`` names
    the original payment's reference). The payer is found from, in order: ``customer_id``,
    the started payment named by ``attempt``, ``invoice_id``, then ``account`` (an account
    or invoice number, or free text containing one, such as a bank transfer's reference).
    A payment the core cannot place, or whose amount or currency differs from what was
    asked, is held for staff to review rather than applied.
    """

    gateway: str
    reference: str
    kind: str
    amount: Money
    customer_id: int | None = None
    account: str | None = None
    invoice_id: int | None = None
    refund_of: str | None = None
    received_at: dt.datetime | None = None
    method: str | None = None
    payer: str | None = None
    raw: dict = field(default_factory=dict)
    attempt: str | None = None
    message: str | None = None  # for people: why an attempt failed, why money was refunded


@dataclass(frozen=True)
class RefundResult:
    """A refund accepted by the gateway, with the gateway's own reference for it."""

    gateway: str
    reference: str
    amount: Money
    status: str = "succeeded"  # or "pending"


@dataclass(frozen=True)
class WebhookReply:
    """The HTTP answer to a notification, for gateways that expect a particular one."""

    status: int = 200
    body: str = ""
    content_type: str = "application/json"


# --- pricing and tax ---------------------------------------------------------------

@dataclass(frozen=True)
class DraftLine:
    """A line of an invoice being rated."""

    kind: str
    description: str
    amount: Money
    tax_category: str = "standard"
    service_id: int | None = None
    plan_code: str | None = None
    plan_kind: str | None = None
    quantity: Decimal = Decimal(1)
    period_start: dt.date | None = None
    period_end: dt.date | None = None  # inclusive, as printed


@dataclass(frozen=True)
class PromoUse:
    """A promo code a customer redeemed, and on how many issued invoices it has discounted so far."""

    code: str
    redeemed_on: dt.date
    times_applied: int = 0


@dataclass(frozen=True)
class DraftInvoice:
    """An invoice before it is issued, as pricing and tax plugins see it."""

    customer_id: int
    currency: str
    issue_date: dt.date
    lines: tuple[DraftLine, ...]
    tax_region: str | None = None
    tax_exempt: bool = False
    tax_inclusive: bool = False
    promo_codes: tuple[str, ...] = ()
    promos: tuple[PromoUse, ...] = ()


@dataclass(frozen=True)
class Adjustment:
    """A discount (negative) or surcharge (positive) line a pricing plugin adds.

    ``promo_code`` names the redeemed promo code this adjustment comes from: once the
    invoice is issued, the core counts one more use of that code for the customer
    (see :class:`PromoUse`).
    """

    description: str
    amount: Money
    tax_category: str = "standard"
    source: str = ""
    promo_code: str | None = None


@dataclass(frozen=True)
class PromoInfo:
    """A promo code a pricing plugin knows, as shown to staff when they attach it to a customer."""

    code: str
    description: str
    valid_until: dt.date | None = None


@dataclass(frozen=True)
class TaxRegion:
    """A tax region a tax plugin handles: its code (as set on customers), name, and price convention.

    ``prices_include_tax``: plan prices in this region are quoted with tax included.
    """

    code: str
    name: str
    prices_include_tax: bool = False


@dataclass(frozen=True)
class TaxLine:
    """Tax at one rate on an invoice: ``taxable`` base and the rounded ``tax``."""

    name: str
    rate: Decimal
    taxable: Money
    tax: Money
    compound: bool = False
    source: str = ""


# --- routers and usage -------------------------------------------------------------

@dataclass(frozen=True)
class EnforcerInfo:
    """An enforcer plugin: the ``kind`` of router it drives (its settings go through ``register_settings``).

    ``transactional`` says the enforcer's ``enforcer_apply`` only writes to this
    database (tables an AAA server reads, say) and never reaches the network: the core
    then applies changes inside the transaction of the account change they follow, so
    the two commit together.
    """

    kind: str
    label: str
    transactional: bool = False


@dataclass(frozen=True)
class SubscriberState:
    """What a router holds (or should hold) for one subscriber, keyed by ``key``.

    ``state`` is ``active``, ``throttled`` or ``suspended``; ``rate`` is
    ``(down_kbps, up_kbps)`` or ``None`` for no limit.
    """

    key: str
    state: str
    address: str | None = None
    rate: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One change for an enforcer to make: ``action`` is ``set`` (add or update) or ``remove``."""

    action: str
    subscriber: SubscriberState


@dataclass(frozen=True)
class ApplyResult:
    """What an enforcer applied: keys done, and keys that failed with their error."""

    applied: tuple[str, ...] = ()
    failed: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RouterCheck:
    """What a router says it is when asked (``wispbill routers test``)."""

    identity: str
    version: str = ""
    detail: str = ""


@dataclass(frozen=True)
class SetupContext:
    """What a router's one-time setup script needs to know about this billing server.

    ``portal_url`` is the "please pay" page suspended subscribers are sent to, served
    from ``portal_address``:``portal_port``; ``walled_garden`` lists the hosts they may
    still reach (the payment gateways').
    """

    portal_url: str
    portal_address: str
    portal_port: int
    walled_garden: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsageSample:
    """Bytes counted for a service between two times by one usage source.

    ``external_id`` is unique within ``source``: the core stores a sample once however
    often it is collected.
    """

    source: str
    external_id: str
    service_id: int
    period_start: dt.datetime
    period_end: dt.datetime
    bytes_in: int
    bytes_out: int


# --- notifications -----------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """A message to deliver on ``channel`` (``email``, ``sms``, ...) to ``to``."""

    channel: str
    to: str
    subject: str
    body: str
    customer_id: int | None = None
    template: str | None = None


@dataclass(frozen=True)
class Delivery:
    """A notifier's receipt: which notifier delivered the message and its reference."""

    notifier: str
    reference: str | None = None
