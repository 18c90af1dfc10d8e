"""Every hook a wispbill plugin may implement. The docstrings are the contract.

Hooks are called with keyword arguments only; an implementation may accept any subset
of the arguments named here. Single-answer hooks are ``firstresult``: plugins are asked
in turn, installed plugins before built-ins (they are registered after them, and the
most recently registered plugin is asked first), and the first answer that is not
``None`` wins, so a plugin returns ``None`` for anything that is not its own (another
gateway's name, another router kind). List hooks collect every
plugin's answer. A plugin that raises is reported by name and the call goes on without
it, unless the hook says otherwise. Value types live in :mod:`core.hooktypes`.
"""

from core import hookspec

# --- lifecycle ---------------------------------------------------------------------

@hookspec
def register_settings():
    """Declare settings the plugin needs.

    Returns a list of :class:`core.hooktypes.SettingSpec`. Keys must be unique across all
    plugins (a key already declared is reported and left out) and should start with the
    plugin's name (``acmepay.shortcode``). The core stores
    the values, validates them with ``SettingSpec.parse`` when an operator sets them, and
    masks ``secret`` ones everywhere they are shown. Read values with
    ``core.settings.get(key)``.
    """


@hookspec
def register_migrations():
    """Name the package of migrations for the tables this plugin keeps.

    Returns a dotted package name (or a list of them) or ``None``. The package holds
    modules ``NNNN_name.py``, each with ``up(migrator, db)``, as the core's own
    ``core.migrations`` does. ``wispbill migrate`` applies them after the core's, in
    version order, each once and in its own transaction; they are recorded under the
    plugin's name, so versions only need to be unique within the plugin. Write SQL for
    both SQLite and PostgreSQL (``core.db.backend_name(db)`` says which).
    """


@hookspec
def register_jobs():
    """Declare scheduled jobs.

    Returns a list of :class:`core.hooktypes.Job`. Job ids must be unique across all
    plugins and should start with the plugin's name. ``wispbill scheduler`` runs them;
    each run gets its own database connection and must be safe to repeat (a job may run
    again after a crash or on another scheduler instance).
    """


@hookspec
def register_routes():
    """Add web pages or endpoints.

    Returns a list of ``flask.Blueprint`` objects, registered on the app at start-up.
    Give each blueprint a ``url_prefix`` of its own (``/plugins/<name>``). The core's
    CSRF protection covers every form post, and every view needs a signed-in staff
    member unless it is decorated with ``core.web.auth.public``.
    """


@hookspec
def console_links():
    """Link the staff console to the plugin's own pages.

    Returns a list of ``(label, endpoint)`` pairs: the text of a link and the endpoint of
    a view the plugin registered through ``register_routes`` that takes no arguments
    (``"radius.actions"``). The routers and dunning pages of the console show them; a
    link whose endpoint does not exist, needs arguments, or is guarded by a permission
    the signed-in staff member lacks is left out.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``wispbill`` CLI.

    ``cli`` is the root ``click.Group``; add commands or groups with ``cli.add_command``.
    Returns nothing. Use ``click.UsageError`` (exit code 2) for bad arguments. A command
    whose name is already taken (by the core or an earlier plugin) is refused with a
    warning.
    """


@hookspec
def handle_event(event):
    """React to a domain event after the transaction that raised it committed.

    ``event`` is a :class:`core.hooktypes.DomainEvent` (``invoice.issued``,
    ``payment.received``, ``service.suspended``, ...). Return value is ignored. Delivery
    is at least once: an event whose handler raised is offered again later to every
    plugin, so handlers must be idempotent on ``event.id``.
    """


# --- payment gateways --------------------------------------------------------------

@hookspec
def gateway_describe():
    """Describe the payment gateway(s) this plugin provides.

    Returns a :class:`core.hooktypes.GatewayInfo`, a list of them, or ``None``. Gateway
    names must be unique: the plugin registered first (built-ins before installed
    plugins) keeps a name, and a later claim is reported and left out. Declare the gateway's settings with ``register_settings``.
    """


@hookspec(firstresult=True)
def gateway_start_payment(gateway, request):
    """Start collecting a payment through gateway ``gateway`` (its name).

    ``request`` is a :class:`core.hooktypes.PaymentRequest`. Return ``None`` unless
    ``gateway`` is yours; otherwise a :class:`core.hooktypes.PaymentStart` with a
    redirect URL for the payer or a message saying what happens next (a push to the
    phone). Never record money here: the payment exists when its notification arrives.
    Raise ``core.errors.ValidationError`` for a request the gateway cannot take (a
    currency it does not support, a missing phone number).
    """


@hookspec(firstresult=True)
def gateway_parse_notification(gateway, notification):
    """Verify and read a notification (webhook or callback) sent to gateway ``gateway``.

    ``notification`` is a :class:`core.hooktypes.Notification` holding the raw body and
    headers. Return ``None`` unless ``gateway`` is yours; otherwise a list of
    :class:`core.hooktypes.PaymentNotice` (empty for a notification that carries no
    money, such as an event type you ignore). Raise ``core.errors.ValidationError`` when
    the signature or the content is wrong: the core answers 400 and records nothing. The
    same notification may arrive many times; the core records each notice once on
    (gateway, reference), so return the same reference every time.
    """


@hookspec(firstresult=True)
def gateway_reply(gateway, notification, notices, error):
    """Shape the HTTP answer to a notification for gateway ``gateway``.

    Called after the core has handled ``notification``: ``notices`` are the
    :class:`core.hooktypes.PaymentNotice` values it read (empty when ``error`` is set),
    ``error`` is ``None`` or the message of the ``ValidationError`` that refused it.
    Return ``None`` unless ``gateway`` is yours, or to accept the core's own answer (JSON,
    200, or 400 with the error); otherwise a :class:`core.hooktypes.WebhookReply`, for a
    gateway that expects a body of its own (an accept or reject code). The reply cannot
    undo what was recorded, and a refused notification stays refused whatever the
    status you answer.
    """


@hookspec(firstresult=True)
def gateway_refund(gateway, payment, amount, reason):
    """Refund ``amount`` (a Money) of a recorded payment through gateway ``gateway``.

    ``payment`` is the core's ``Payment`` row (read it, never write it); ``reason`` is
    free text. Return ``None`` unless ``gateway`` is yours; otherwise a
    :class:`core.hooktypes.RefundResult`. Raise ``core.errors.ValidationError`` when the
    gateway refuses; the core then records nothing.
    """


# --- pricing and tax ---------------------------------------------------------------

@hookspec
def pricing_adjustments(invoice):
    """Add discounts or surcharges to an invoice being rated.

    ``invoice`` is a :class:`core.hooktypes.DraftInvoice` with the recurring, setup and
    usage lines already rated. Returns a list of :class:`core.hooktypes.Adjustment`
    (negative amounts for discounts) in the invoice's currency, or ``None``. The core
    adds them as lines; a discount never takes an invoice below zero.
    """


@hookspec(firstresult=True)
def pricing_describe_promo(code):
    """Say whether promo code ``code`` (as typed, upper-cased) is one you honour.

    Return a :class:`core.hooktypes.PromoInfo` if it is, else ``None``. The core asks
    before it lets staff attach a code to a customer; the discount itself comes later
    from ``pricing_adjustments``, which sees the customer's codes in ``invoice.promos``.
    """


@hookspec
def tax_regions():
    """List the tax regions you handle.

    Return a list of :class:`core.hooktypes.TaxRegion`. The core refuses a customer whose
    ``tax_region`` no plugin lists, and takes ``prices_include_tax`` from here when it
    rates an invoice. A region listed by two plugins keeps the first.
    """


@hookspec(firstresult=True)
def tax_lines(invoice):
    """Compute the tax of an invoice being rated.

    ``invoice`` is a :class:`core.hooktypes.DraftInvoice` including pricing
    adjustments. Return ``None`` if you do not handle ``invoice.tax_region``; otherwise a
    list of :class:`core.hooktypes.TaxLine` in the invoice's currency, one per tax and
    rate, already rounded (an empty list means no tax is due, for example for an exempt
    customer). The first plugin that answers decides.
    """


# --- router enforcement ------------------------------------------------------------

@hookspec
def enforcer_describe():
    """Describe the kind of router this plugin enforces on.

    Returns a :class:`core.hooktypes.EnforcerInfo` or ``None``. A router row's ``kind``
    selects its enforcer; kinds must be unique across plugins (the plugin registered
    first keeps a kind, a later claim is reported and left out). Declare settings with
    ``register_settings``.
    """


@hookspec(firstresult=True)
def enforcer_read_state(router):
    """Read what router ``router`` (a ``Router`` row) holds for subscribers.

    Return ``None`` unless ``router.kind`` is yours; otherwise a list of
    :class:`core.hooktypes.SubscriberState`, one per subscriber the plugin manages on that
    router (entries it does not manage are left out). Raise ``ConnectionError`` (or
    ``OSError``) when the router cannot be reached: the core retries later with backoff.
    """


@hookspec(firstresult=True)
def enforcer_apply(router, changes):
    """Make router ``router`` match the desired state by applying ``changes``.

    ``changes`` is a list of :class:`core.hooktypes.Change` computed by the core from the
    difference between desired and read state. Return ``None`` unless ``router.kind`` is
    yours; otherwise a :class:`core.hooktypes.ApplyResult`. Applying a change that is
    already in place must succeed (idempotence). A change that fails goes into
    ``ApplyResult.failed``; the core keeps it desired and retries.
    """


@hookspec(firstresult=True)
def enforcer_check(router):
    """Connect to router ``router`` and say what it is, for ``wispbill routers test``.

    Return ``None`` unless ``router.kind`` is yours; otherwise a :class:`core.hooktypes.RouterCheck`
    (the router's identity and version as it reports them). Raise ``OSError`` when it
    cannot be reached, any other exception (with a clear message) when it refuses you,
    such as a wrong password.
    """


@hookspec(firstresult=True)
def enforcer_setup_script(router, context):
    """The one-time configuration an operator pastes into router ``router``.

    Return ``None`` unless ``router.kind`` is yours; otherwise the text of the commands,
    in the router's own language, that make your enforcement work: for example, sending
    suspended subscribers' web traffic to ``context.portal_url`` and letting them reach
    ``context.walled_garden`` and DNS. ``context`` is a :class:`core.hooktypes.SetupContext`.
    The script must be safe to paste twice.
    """


# --- usage -------------------------------------------------------------------------

@hookspec
def usage_collect(since):
    """Collect traffic counters since ``since`` (a naive UTC datetime, or ``None``: all).

    Returns a list of :class:`core.hooktypes.UsageSample` or ``None``. The core stores
    each sample once per (source, external_id) and ignores samples for unknown services,
    so returning overlapping samples is harmless.
    """


# --- notifications -----------------------------------------------------------------

@hookspec(firstresult=True)
def notify(message):
    """Deliver ``message`` (a :class:`core.hooktypes.Message`) on its channel.

    Return ``None`` if you do not deliver ``message.channel``; otherwise a
    :class:`core.hooktypes.Delivery`. Raise an exception when delivery failed; the core
    records the failure and may retry. The first notifier that answers delivers.
    """
