"""One test (at least) per plugin hook: a small real plugin registered on the ``pm``
fixture, exercised through the core function that calls the hook.

Tests that need no database take no ``db`` fixture, so they run once instead of once
per backend.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from decimal import Decimal

import click
import pytest
from click.testing import CliRunner
from flask import Blueprint, request

from core import audit, hookimpl
from core.db import database
from core.errors import NotFound, PluginError, ValidationError
from core.hooktypes import (
    Adjustment,
    ApplyResult,
    Change,
    Delivery,
    DomainEvent,
    DraftInvoice,
    DraftLine,
    EnforcerInfo,
    GatewayInfo,
    Job,
    RouterCheck,
    Message,
    Notification,
    PaymentNotice,
    PaymentRequest,
    PaymentStart,
    RefundResult,
    SettingSpec,
    SubscriberState,
    TaxLine,
    UsageSample,
)
from core.money import Money
from core.plugins import build_manager

SECRET = "test-secret-key-that-is-long-enough"


# --- lifecycle ---------------------------------------------------------------------

def _region(text: str) -> str:
    text = text.strip().upper()
    if len(text) != 2 or not text.isalpha():
        raise ValueError("expected a two-letter region code")
    return text


class AcmeSettings:
    @hookimpl
    def register_settings(self):
        return [
            SettingSpec("acme.region", "Region", default="KE", parse=_region),
            SettingSpec("acme.api_key", "API key", secret=True),
        ]


def test_hook_register_settings(db, pm):
    from core import settings
    from core.models import AuditEvent

    assert pm.add(AcmeSettings(), "acme", "test")

    # Declared keys are readable with their defaults, next to the built-in ones.
    assert settings.get("acme.region") == "KE"
    assert settings.get("acme.api_key") is None
    assert settings.get("company.name") == "My ISP"
    with pytest.raises(ValidationError):
        settings.get("acme.nope")

    # The spec's parse runs on set; bad input is refused and nothing is written.
    assert settings.set_value("acme.region", " tz ") == "TZ"
    assert settings.get("acme.region") == "TZ"
    with pytest.raises(ValidationError) as refused:
        settings.set_value("acme.region", "Tanzania")
    assert refused.value.field == "acme.region"
    assert settings.get("acme.region") == "TZ"
    with pytest.raises(ValidationError):
        settings.set_value("acme.undeclared", "x")

    # A secret is stored as given, read back by the plugin, masked everywhere it is shown.
    with audit.acting_as("tester"):
        settings.set_value("acme.api_key", "sk_live_first")
        settings.set_value("acme.api_key", "sk_live_second")
    assert settings.get("acme.api_key") == "sk_live_second"

    rows = {r["key"]: r for r in settings.listing()}
    assert rows["acme.api_key"]["value"] == audit.MASK
    assert rows["acme.api_key"]["secret"] is True and rows["acme.api_key"]["set"] is True
    assert rows["acme.region"]["value"] == "TZ"
    assert rows["company.name"]["set"] is False

    trail = list(AuditEvent.select().where((AuditEvent.action == "setting.set")
                                           & (AuditEvent.object_id == "acme.api_key"))
                 .order_by(AuditEvent.id))
    assert [e.actor for e in trail] == ["tester", "tester"]
    assert trail[0].before == {"value": None} and trail[0].after == {"value": audit.MASK}
    assert trail[1].before == {"value": audit.MASK} and trail[1].after == {"value": audit.MASK}
    for event in AuditEvent.select():
        assert "sk_live" not in json.dumps([event.before, event.after])


def test_hook_register_settings_duplicate_and_failing_plugins_are_left_out(pm, caplog):
    from core import settings

    class Copycat:
        @hookimpl
        def register_settings(self):
            return [SettingSpec("acme.region", "Copied region", default="XX"),
                    "not a spec",
                    SettingSpec("copycat.colour", "Colour", default="red")]

    class Broken:
        @hookimpl
        def register_settings(self):
            raise RuntimeError("cannot declare")

    pm.add(AcmeSettings(), "acme", "test")
    pm.add(Copycat(), "copycat", "test")  # asked before acme: registered later
    pm.add(Broken(), "broken", "test")
    with caplog.at_level(logging.ERROR):
        specs = settings.declared()
    assert specs["acme.region"].label != "Copied region"  # registered first, acme keeps its key
    assert specs["copycat.colour"].default == "red"
    assert specs["acme.api_key"].secret is True
    assert "company.name" in specs
    assert "plugin 'copycat' failed in register_settings: key 'acme.region' is already provided" in caplog.text
    assert "'broken'" in caplog.text


def test_hook_register_migrations(empty_db, pm, tmp_path, monkeypatch):
    from core import migrations
    from core.db import table_names

    name = f"acme_tables_{tmp_path.name.replace('-', '_')}_{id(empty_db)}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "0001_things.py").write_text(
        "def up(migrator, db):\n    db.execute_sql('CREATE TABLE acme_thing (id INTEGER PRIMARY KEY, name TEXT)')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Acme:
        @hookimpl
        def register_migrations(self):
            return name

    pm.add(Acme(), "acme", "test")
    labels = [m.label for m in migrations.migrate(empty_db)]
    assert "acme:0001_things" in labels and labels.index("acme:0001_things") > labels.index("0004_dunning")
    assert "acme_thing" in table_names(empty_db)
    assert migrations.migrate(empty_db) == []

    # A later release adds a step: only that one runs; a failing step leaves no trace.
    (package / "0002_more.py").write_text(
        "def up(migrator, db):\n    db.execute_sql('ALTER TABLE acme_thing ADD COLUMN size INTEGER')\n")
    (package / "0003_broken.py").write_text(
        "def up(migrator, db):\n    db.execute_sql('CREATE TABLE acme_half (id INTEGER)')\n"
        "    raise RuntimeError('step 3 fails')\n")
    import importlib
    importlib.invalidate_caches()
    assert [m.label for m in migrations.pending(empty_db)] == ["acme:0002_more", "acme:0003_broken"]
    with pytest.raises(RuntimeError, match="step 3 fails"):
        migrations.migrate(empty_db)
    assert "acme_half" not in table_names(empty_db)
    rows = empty_db.execute_sql("SELECT version FROM plugin_migrations WHERE plugin = 'acme' ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == [1, 2]


def test_hook_register_jobs(pm, caplog):
    from core import scheduler

    def tick():
        return "tick"

    class First:
        @hookimpl
        def register_jobs(self):
            return [Job("shared.sync", tick, "interval", {"minutes": 5}, "first"),
                    Job("first.nightly", tick, "cron", {"hour": 2}),
                    Job("first.typo", tick, "interval", {"minuts": 5})]

    class Second:
        @hookimpl
        def register_jobs(self):
            return [Job("shared.sync", tick, "interval", {"minutes": 1}, "second"),
                    Job("second.bad_trigger", tick, "sometimes"),
                    Job("second.not_callable", "tick"),
                    "not a job"]

    class Broken:
        @hookimpl
        def register_jobs(self):
            raise RuntimeError("no jobs today")

    pm.add(First(), "first", "test")
    pm.add(Second(), "second", "test")
    pm.add(Broken(), "broken", "test")
    with caplog.at_level(logging.ERROR):
        jobs = {j.id: j for j in scheduler.collect_jobs()}
    builtin = {j.id for j in scheduler.collect_jobs(build_manager(entry_points=False))}
    assert "event_outbox.dispatch" in builtin
    assert set(jobs) == {"shared.sync", "first.nightly", "first.typo"} | builtin
    assert jobs["shared.sync"].description == "first"  # registered first, kept; the duplicate refused
    assert "already registered" in caplog.text
    assert "unknown trigger 'sometimes'" in caplog.text
    assert "not callable" in caplog.text

    # A schedule APScheduler refuses leaves out that job only; the others are scheduled.
    with caplog.at_level(logging.ERROR):
        sched = scheduler.build_scheduler(list(jobs.values()))
    assert {j.id for j in sched.get_jobs()} == {"shared.sync", "first.nightly"} | builtin
    assert "first.typo not scheduled" in caplog.text
    assert "hour='2'" in str(sched.get_job("first.nightly").trigger)
    assert sched.get_job("shared.sync").trigger.interval == dt.timedelta(minutes=5)


def test_hook_register_jobs_run_job_holds_a_connection(db, pm):
    from core import scheduler
    from core.models import Setting

    class Counter:
        @hookimpl
        def register_jobs(self):
            return [Job("counter.count", lambda: Setting.select().count()),
                    Job("counter.fail", self.fail)]

        def fail(self):
            raise RuntimeError("job exploded")

    pm.add(Counter(), "counter", "test")
    jobs = {j.id: j for j in scheduler.collect_jobs()}
    Setting.create(key="company.name", value="Acme")
    database.close()
    assert scheduler.run_job(jobs["counter.count"]) == 1
    assert database.is_closed()  # the connection the job opened is closed again
    with pytest.raises(RuntimeError, match="job exploded"):
        scheduler.run_job(jobs["counter.fail"])
    assert database.is_closed()


def test_hook_register_routes(pm, tmp_path, caplog):
    from core.web import create_app
    from core.web.auth import login_required, public

    bp = Blueprint("acme", __name__, url_prefix="/plugins/acme")

    @bp.route("/hello")
    @public
    def hello():
        return f"hello {request.args.get('name', 'world')}"

    @bp.route("/undecorated")
    def undecorated():
        return "staff only by default"

    @bp.route("/echo", methods=["POST"])
    @public
    def echo():
        return request.form.get("text", "")

    @bp.route("/private")
    @login_required
    def private():
        return "secret page"

    class Routes:
        @hookimpl
        def register_routes(self):
            return [bp]

    class Clash:
        @hookimpl
        def register_routes(self):
            return [Blueprint("auth", __name__, url_prefix="/plugins/clash")]

    pm.add(Routes(), "acme", "test")
    pm.add(Clash(), "clash", "test")
    with caplog.at_level(logging.ERROR):
        app = create_app({
            "DATABASE_URL": f"sqlite:///{tmp_path / 'routes.db'}", "DATA_DIR": str(tmp_path),
            "SECRET_KEY": SECRET, "PLUGIN_MANAGER": pm, "TESTING": True,
        })
    assert "'clash' failed in register_routes" in caplog.text
    client = app.test_client()

    response = client.get("/plugins/acme/hello?name=ops")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "hello ops"
    # The core's CSRF protection covers plugin routes.
    assert client.post("/plugins/acme/echo", data={"text": "hi"}).status_code == 400
    # A view guarded with login_required sends anonymous visitors to sign in, and so
    # does a plugin view that is not marked public.
    for path in ("/plugins/acme/private", "/plugins/acme/undecorated"):
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"], path
    # The clashing blueprint was refused; the core's own routes still work.
    assert client.get("/plugins/clash/").status_code == 404
    assert client.get("/auth/login").status_code == 200


def test_hook_console_links(db, db_url, pm, tmp_path):
    """The routers and dunning pages link to plugins' pages the signed-in user may open, and no others."""
    from core import users
    from core.web import create_app
    from core.web.auth import staff
    from tests.conftest import csrf_token_from

    bp = Blueprint("acmelinks", __name__, url_prefix="/plugins/acmelinks")

    @bp.route("/")
    def overview():
        return "overview"

    @bp.route("/tools")
    @staff("routers.manage")
    def tools():
        return "tools"

    @bp.route("/item/<int:n>")
    def item(n):
        return str(n)

    class Links:
        @hookimpl
        def register_routes(self):
            return [bp]

        @hookimpl
        def console_links(self):
            return [("Acme overview", "acmelinks.overview"), ("Acme tools", "acmelinks.tools"),
                    ("Needs an id", "acmelinks.item"), ("Nowhere", "acmelinks.missing"), "not a pair"]

    class Broken:
        @hookimpl
        def console_links(self):
            raise RuntimeError("boom")

    pm.add(Links(), "acmelinks", "test")
    pm.add(Broken(), "broken", "test")
    db.close()
    app = create_app({"DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "SECRET_KEY": SECRET,
                      "PLUGIN_MANAGER": pm, "TESTING": True})
    users.create("boss", "boss password 1", role="admin")
    users.create("helper", "helper password 1", role="support")
    for username, password, shown in (("boss", "boss password 1", {"Acme overview", "Acme tools"}),
                                      ("helper", "helper password 1", {"Acme overview"})):
        client = app.test_client()
        token = csrf_token_from(client.get("/auth/login"))
        client.post("/auth/login", data={"username": username, "password": password, "csrf_token": token})
        for path in ("/admin/routers", "/admin/dunning"):
            page = client.get(path).get_data(as_text=True)
            found = {label for label in ("Acme overview", "Acme tools", "Needs an id", "Nowhere") if label in page}
            assert found == shown, (username, path)
            assert 'href="/plugins/acmelinks/"' in page


def test_hook_register_commands(pm, monkeypatch, tmp_path, capsys):
    from core import cli as cli_module

    @click.command("acme-greet")
    @click.argument("name")
    @click.option("--times", type=click.IntRange(1, 3), default=1)
    def greet(name, times):
        """Greet someone."""
        for _ in range(times):
            click.echo(f"hello {name}")

    class Commands:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(greet)

    class Broken:
        @hookimpl
        def register_commands(self, cli):
            raise RuntimeError("no commands")

    @click.command("migrate")
    def hijack():
        click.echo("not the real migrate")

    class Hijacker:
        @hookimpl
        def register_commands(self, cli):
            cli.add_command(hijack)

    pm.add(Commands(), "acme", "test")
    pm.add(Broken(), "broken", "test")

    # On a fresh group, as any caller of the hook would.
    group = click.Group("root")
    results, errors = pm.call_all("register_commands", cli=group)
    assert [e.plugin for e in errors] == ["broken"]
    result = CliRunner().invoke(group, ["acme-greet", "ops", "--times", "2"])
    assert result.exit_code == 0 and result.output == "hello ops\nhello ops\n"
    assert CliRunner().invoke(group, ["acme-greet", "ops", "--times", "9"]).exit_code == 2

    # Through core.cli.main, which builds the manager and calls the hook on the real CLI.
    monkeypatch.setenv("WISPBILL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WISPBILL_SECRET_KEY", SECRET)
    monkeypatch.setattr(cli_module, "build_manager", lambda blocked=(): pm)
    try:
        with pytest.raises(SystemExit) as done:
            cli_module.main(["acme-greet", "world"])
        assert done.value.code == 0
        assert capsys.readouterr().out == "hello world\n"
        assert "acme-greet" in cli_module.cli.commands

        # A plugin may not replace a core command: the real one stays, with a warning.
        real_migrate = cli_module.cli.commands["migrate"]
        pm.add(Hijacker(), "hijacker", "test")
        cli_module.add_plugin_commands(pm)
        assert cli_module.cli.commands["migrate"] is real_migrate
        assert "plugin 'hijacker' may not replace the core command 'migrate'" in capsys.readouterr().err
    finally:
        cli_module.cli.commands.pop("acme-greet", None)


def test_hook_handle_event(db, pm):
    from core import events
    from core.models import Event

    received: list[DomainEvent] = []
    flaky_calls: list[int] = []

    class Recorder:
        @hookimpl
        def handle_event(self, event):
            received.append(event)

    class Flaky:
        @hookimpl
        def handle_event(self, event):
            flaky_calls.append(event.id)
            if len(flaky_calls) == 1:
                raise RuntimeError("mail server down")

    pm.add(Recorder(), "recorder", "test")
    pm.add(Flaky(), "flaky", "test")

    with pytest.raises(RuntimeError):
        events.emit("invoice.issued", {"invoice_id": 1})  # not inside a transaction
    with pytest.raises(ValueError):
        with database.atomic():
            events.emit("Invoice Issued", {})
    with pytest.raises(ZeroDivisionError):
        with database.atomic():
            events.emit("invoice.issued", {"invoice_id": 99})
            1 / 0  # the change fails, so its event never existed
    with database.atomic():
        row = events.emit("invoice.issued", {"invoice_id": 7})
    assert Event.select().count() == 1

    # The flaky handler raises: the event stays pending with the error and the count.
    assert events.dispatch_pending() == 0
    stored = Event.get_by_id(row.id)
    assert stored.dispatched_at is None and stored.attempts == 1
    assert "'flaky'" in stored.last_error and "mail server down" in stored.last_error
    assert [e.id for e in received] == [row.id]

    # It waits before the next try (5 s after the first failure), then is offered again to
    # every plugin; now it is delivered.
    assert stored.next_attempt_at - stored.created_at >= dt.timedelta(seconds=4)
    assert events.dispatch_pending() == 0  # too early: nobody is called
    assert flaky_calls == [row.id]
    Event.update(next_attempt_at=dt.datetime(2000, 1, 1)).where(Event.id == row.id).execute()
    assert events.dispatch_pending() == 1
    stored = Event.get_by_id(row.id)
    assert stored.dispatched_at is not None and stored.attempts == 2 and stored.last_error is None
    assert [e.id for e in received] == [row.id, row.id]  # at least once: handlers must be idempotent
    assert received[0].name == "invoice.issued" and received[0].payload == {"invoice_id": 7}
    assert isinstance(received[0].created_at, dt.datetime)
    assert flaky_calls == [row.id, row.id]

    assert events.dispatch_pending() == 0  # nothing left
    assert len(received) == 2


# --- payment gateways --------------------------------------------------------------

def _request(currency="KES", minor=150000, phone="+254700000001"):
    return PaymentRequest(customer_id=1, amount=Money(minor, currency), reference="INV-1",
                          description="Invoice INV-1", phone=phone)


class Alpha:
    """A phone-push gateway taking KES only, that signs its notifications."""

    key = b"alpha-key"

    def __init__(self):
        self.started = []

    @hookimpl
    def gateway_describe(self):
        return GatewayInfo("alpha", "Alpha Pay", currencies=("KES",), can_refund=True)

    @hookimpl
    def gateway_start_payment(self, gateway, request):
        if gateway != "alpha":
            return None
        if not request.phone:
            raise ValidationError("Alpha Pay needs a phone number", "phone")
        self.started.append(request.reference)
        return PaymentStart("alpha", "A-" + request.reference, message="check your phone")

    @hookimpl
    def gateway_parse_notification(self, gateway, notification):
        if gateway != "alpha":
            return None
        expected = hmac.new(self.key, notification.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, notification.headers.get("X-Signature", "")):
            raise ValidationError("bad signature")
        data = json.loads(notification.body)
        if data["type"] != "payment":
            return []
        return [PaymentNotice("alpha", data["id"], "payment", Money(data["amount"], "KES"),
                              account=data["account"])]

    @hookimpl
    def gateway_refund(self, gateway, payment, amount, reason):
        if gateway != "alpha":
            return None
        if amount.minor > payment.amount_minor:
            raise ValidationError("refund exceeds the payment")
        return RefundResult("alpha", "R-" + payment.reference, amount)


class Beta:
    """A redirect gateway for any currency, without refunds."""

    @hookimpl
    def gateway_describe(self):
        return [GatewayInfo("beta", "Beta Checkout"), GatewayInfo("boom", "Always fails", can_refund=True)]

    @hookimpl
    def gateway_start_payment(self, gateway, request):
        if gateway == "boom":
            raise RuntimeError("upstream 500")
        if gateway != "beta":
            return None
        return PaymentStart("beta", "B-" + request.reference, redirect_url="https://beta.example/pay/1")

    @hookimpl
    def gateway_parse_notification(self, gateway, notification):
        if gateway == "beta":
            return [PaymentNotice("alpha", "spoof", "payment", Money(1, "USD"))]  # wrong gateway
        return None

    @hookimpl
    def gateway_refund(self, gateway, payment, amount, reason):
        if gateway == "boom":
            raise RuntimeError("refund API down")
        return None


def _gateways(pm):
    alpha = Alpha()
    assert pm.add(alpha, "alpha_plugin", "test")
    assert pm.add(Beta(), "beta_plugin", "test")
    return alpha


def test_hook_gateway_describe(pm, caplog):
    from core import gateways

    _gateways(pm)
    builtin = set(gateways.available()) - {"alpha", "beta", "boom"}
    found = gateways.available()
    assert {"alpha", "beta", "boom"} <= set(found)
    assert found["alpha"].currencies == ("KES",) and found["alpha"].can_refund
    assert found["beta"].label == "Beta Checkout"

    class Duplicate:
        @hookimpl
        def gateway_describe(self):
            return GatewayInfo("alpha", "Another Alpha")

    class Wrong:
        @hookimpl
        def gateway_describe(self):
            return {"name": "gamma"}

    pm.add(Duplicate(), "dup", "test")
    pm.add(Wrong(), "wrong", "test")
    with caplog.at_level(logging.ERROR):
        found = gateways.available()
    # The plugin registered first keeps the name; the clash and the wrong
    # answer are reported by plugin name, and every other gateway is still there.
    assert found["alpha"].label != "Another Alpha"
    assert set(found) == {"alpha", "beta", "boom"} | builtin
    assert "already provided" in caplog.text
    assert "plugin 'wrong' failed in gateway_describe" in caplog.text


def test_hook_gateway_start_payment(pm):
    from core import gateways

    alpha = _gateways(pm)
    start = gateways.start_payment("alpha", _request())
    assert start == PaymentStart("alpha", "A-INV-1", message="check your phone")
    start = gateways.start_payment("beta", _request("USD"))
    assert start.gateway == "beta" and start.redirect_url == "https://beta.example/pay/1"

    with pytest.raises(NotFound):
        gateways.start_payment("gamma", _request())
    with pytest.raises(ValidationError) as refused:
        gateways.start_payment("alpha", _request("USD"))
    assert refused.value.field == "currency"
    assert alpha.started == ["INV-1"]  # the refused currency never reached the plugin

    with pytest.raises(ValidationError) as refused:  # the plugin's own refusal passes through
        gateways.start_payment("alpha", _request(phone=None))
    assert refused.value.field == "phone"

    with pytest.raises(PluginError) as failed:
        gateways.start_payment("boom", _request())
    assert failed.value.plugin == "beta_plugin"
    assert isinstance(failed.value.error, RuntimeError) and "upstream 500" in str(failed.value)


def test_hook_gateway_parse_notification(pm):
    from core import gateways

    _gateways(pm)
    body = json.dumps({"type": "payment", "id": "TX9", "amount": 50000, "account": "A000001"}).encode()
    signed = {"X-Signature": hmac.new(Alpha.key, body, hashlib.sha256).hexdigest()}

    first = gateways.parse_notification("alpha", Notification("alpha", body, signed))
    again = gateways.parse_notification("alpha", Notification("alpha", body, signed))
    assert first == again  # a repeated notification gives the same reference
    assert [(n.reference, n.kind, n.amount, n.account) for n in first] == [
        ("TX9", "payment", Money(50000, "KES"), "A000001")]

    with pytest.raises(ValidationError, match="signature"):
        gateways.parse_notification("alpha", Notification("alpha", body, {"X-Signature": "forged"}))

    other = json.dumps({"type": "balance", "id": "E1", "amount": 0, "account": ""}).encode()
    sig = {"X-Signature": hmac.new(Alpha.key, other, hashlib.sha256).hexdigest()}
    assert gateways.parse_notification("alpha", Notification("alpha", other, sig)) == []

    with pytest.raises(PluginError) as refused:  # a notice naming another gateway is refused
        gateways.parse_notification("beta", Notification("beta", b"{}", {}))
    assert refused.value.plugin == "beta_plugin"
    with pytest.raises(NotFound):
        gateways.parse_notification("gamma", Notification("gamma", b"", {}))


def test_hook_gateway_refund(pm):
    from core import gateways
    from core.models import Payment

    _gateways(pm)
    payment = Payment(gateway="alpha", reference="TX9", amount_minor=50000, currency="KES")

    result = gateways.refund("alpha", payment, Money(20000, "KES"), "duplicate charge")
    assert result == RefundResult("alpha", "R-TX9", Money(20000, "KES"))

    with pytest.raises(ValidationError, match="exceeds"):
        gateways.refund("alpha", payment, Money(90000, "KES"))
    with pytest.raises(ValidationError, match="cannot refund"):
        gateways.refund("beta", payment, Money(100, "KES"))
    with pytest.raises(NotFound):
        gateways.refund("gamma", payment, Money(100, "KES"))
    with pytest.raises(PluginError) as failed:
        gateways.refund("boom", payment, Money(100, "KES"))
    assert failed.value.plugin == "beta_plugin" and "refund API down" in str(failed.value)


# --- pricing and tax ---------------------------------------------------------------

def _draft(currency="KES", region="KE", exempt=False, promo=()):
    line = DraftLine("recurring", "Home 10 Mbps", Money(250000, currency), service_id=3, plan_code="home-10")
    return DraftInvoice(customer_id=1, currency=currency, issue_date=dt.date(2026, 3, 1), lines=(line,),
                        tax_region=region, tax_exempt=exempt, promo_codes=promo)


def test_hook_pricing_adjustments(pm, caplog):
    from core import pricing

    class Promo:
        @hookimpl
        def pricing_adjustments(self, invoice):
            if "WELCOME" not in invoice.promo_codes:
                return None
            base = Money.sum((l.amount for l in invoice.lines), invoice.currency)
            return [Adjustment("Welcome 10% off", -base.multiply(Decimal("0.10")))]

    class Surcharge:
        @hookimpl
        def pricing_adjustments(self, invoice):
            return Adjustment("Late fee", Money(5000, invoice.currency), source="late-fees")

    class WrongCurrency:
        @hookimpl
        def pricing_adjustments(self, invoice):
            return [Adjustment("Dollar discount", Money(-100, "USD"))]

    class Broken:
        @hookimpl
        def pricing_adjustments(self, invoice):
            raise RuntimeError("pricing service down")

    pm.add(Promo(), "promo", "test")
    pm.add(Surcharge(), "surcharge", "test")
    pm.add(WrongCurrency(), "wrong", "test")
    pm.add(Broken(), "broken", "test")

    with caplog.at_level(logging.ERROR):
        found = pricing.adjustments(_draft(promo=("WELCOME",)))
    # Plugin order (last registered first); wrong and failing answers are left out.
    assert found == [
        Adjustment("Late fee", Money(5000, "KES"), source="late-fees"),
        Adjustment("Welcome 10% off", Money(-25000, "KES"), source="promo"),
    ]
    assert "'wrong'" in caplog.text and "'broken'" in caplog.text
    assert pricing.adjustments(_draft()) == [Adjustment("Late fee", Money(5000, "KES"), source="late-fees")]


def test_hook_pricing_describe_promo(db, pm):
    from core import promos
    from core.hooktypes import PromoInfo
    from core.models import PromoRedemption
    from tests.factories import make_customer

    class Broken:
        @hookimpl
        def pricing_describe_promo(self, code):
            raise RuntimeError("promo service down")

    class Loyalty:
        @hookimpl
        def pricing_describe_promo(self, code):
            if code == "LOYAL10":
                return PromoInfo("LOYAL10", "10% off", valid_until=dt.date(2026, 6, 30))
            return None

    pm.add(Loyalty(), "loyalty", "test")
    pm.add(Broken(), "broken", "test")  # asked first; its failure is contained
    customer = make_customer()
    row = promos.redeem(customer, " loyal10 ", on=dt.date(2026, 3, 1))
    assert (row.code, row.redeemed_on, row.times_applied) == ("LOYAL10", dt.date(2026, 3, 1), 0)
    with pytest.raises(ValidationError, match="already has promo code 'LOYAL10'"):
        promos.redeem(customer, "LOYAL10", on=dt.date(2026, 3, 2))
    with pytest.raises(PluginError, match="'broken'.*promo service down"):
        promos.redeem(customer, "nope")  # nobody honours it and a plugin could not say: not accepted
    pm.unregister(name="broken")
    with pytest.raises(ValidationError, match="unknown promo code 'NOPE'"):
        promos.redeem(customer, "nope")
    with pytest.raises(ValidationError, match="ended on 2026-06-30"):
        promos.redeem(make_customer(), "LOYAL10", on=dt.date(2026, 7, 1))
    assert PromoRedemption.select().count() == 1


def test_hook_tax_regions(db, pm):
    from core import billing, customers
    from core.hooktypes import TaxRegion
    from core.models import BillingRun, Invoice
    from tests.factories import make_customer, make_plan, make_service

    class Atlantis:
        @hookimpl
        def tax_regions(self):
            return [TaxRegion("AT-LANTIS", "Atlantis", prices_include_tax=True)]

    class Copycat:
        @hookimpl
        def tax_regions(self):
            return [TaxRegion("AT-LANTIS", "Atlantis again", prices_include_tax=False)]

    pm.add(Atlantis(), "atlantis", "test")
    pm.add(Copycat(), "copycat", "test")
    customer = make_customer(tax_region="AT-LANTIS")
    assert customer.tax_region == "AT-LANTIS"
    with pytest.raises(ValidationError, match="no tax definition for region 'NOWHERE'.*AT-LANTIS"):
        customers.add(name="Lost", currency="KES", tax_region="NOWHERE")
    assert customers.search("Lost") == []

    ctx = billing._Context(pm, dt.date(2026, 3, 1))
    assert ctx.regions["AT-LANTIS"].prices_include_tax is True  # the first plugin's entry

    class Failing:
        @hookimpl
        def tax_regions(self):
            raise RuntimeError("regions file unreadable")

    make_service(customer, make_plan())
    pm.add(Failing(), "failing", "test")
    with pytest.raises(billing.BillingError, match="'failing' cannot list its regions: regions file unreadable"):
        billing.run(dt.date(2026, 3, 1))
    assert Invoice.select().count() == 0 and BillingRun.select().count() == 0


def test_hook_tax_lines(pm):
    from core import pricing

    class KenyaVat:
        @hookimpl
        def tax_lines(self, invoice):
            if invoice.tax_region != "KE":
                return None
            if invoice.tax_exempt:
                return []
            base = Money.sum((l.amount for l in invoice.lines), invoice.currency)
            return [TaxLine("VAT", Decimal("0.16"), base, base.multiply(Decimal("0.16")))]

    class Sloppy:
        @hookimpl
        def tax_lines(self, invoice):
            if invoice.tax_region == "XX":
                return [TaxLine("VAT", Decimal("0.1"), Money(100, "USD"), Money(10, "USD"))]
            if invoice.tax_region == "NEG":
                return [TaxLine("VAT", Decimal("0.1"), Money(100, "KES"), Money(-10, "KES"))]
            if invoice.tax_region == "ERR":
                raise RuntimeError("tax service down")
            return None

    pm.add(KenyaVat(), "ke_vat", "test")
    pm.add(Sloppy(), "sloppy", "test")

    lines = pricing.taxes(_draft())
    assert lines == [TaxLine("VAT", Decimal("0.16"), Money(250000, "KES"), Money(40000, "KES"), source="ke_vat")]
    assert pricing.taxes(_draft(exempt=True)) == []  # answered: no tax due
    assert pricing.taxes(_draft(region="UG")) is None  # nobody handles the region

    with pytest.raises(PluginError) as refused:
        pricing.taxes(_draft(region="XX"))
    assert refused.value.plugin == "sloppy" and "not in KES" in str(refused.value)
    with pytest.raises(PluginError, match="negative"):
        pricing.taxes(_draft(region="NEG"))
    with pytest.raises(PluginError) as failed:
        pricing.taxes(_draft(region="ERR"))
    assert failed.value.plugin == "sloppy"


# --- router enforcement ------------------------------------------------------------

def _router(name, kind):
    from core.models import Router

    return Router(name=name, kind=kind, host="192.0.2.1")


class FakeMikrotik:
    def __init__(self):
        self.applied = []

    @hookimpl
    def enforcer_describe(self):
        return EnforcerInfo("fake_mikrotik", "Fake MikroTik")

    @hookimpl
    def enforcer_read_state(self, router):
        if router.kind != "fake_mikrotik":
            return None
        if router.host == "unreachable":
            raise ConnectionError("no route to host")
        return [SubscriberState("pppoe:alice", "active", rate=(10000, 2000))]

    @hookimpl
    def enforcer_apply(self, router, changes):
        if router.kind != "fake_mikrotik":
            return None
        self.applied.append((router.name, changes))
        failed = {c.subscriber.key: "queue full" for c in changes if c.subscriber.key == "pppoe:full"}
        return ApplyResult(applied=tuple(c.subscriber.key for c in changes if c.subscriber.key not in failed),
                           failed=failed)


class FakeRadius:
    def __init__(self):
        self.applied = []

    @hookimpl
    def enforcer_describe(self):
        return EnforcerInfo("fake_radius", "Fake RADIUS")

    @hookimpl
    def enforcer_read_state(self, router):
        if router.kind != "fake_radius":
            return None
        return [SubscriberState("radius:bob", "suspended")]

    @hookimpl
    def enforcer_apply(self, router, changes):
        if router.kind != "fake_radius":
            return None
        self.applied.append((router.name, changes))
        return "done"  # not an ApplyResult


def test_hook_enforcer_describe(pm, caplog):
    from core import enforcers

    pm.add(FakeMikrotik(), "fake_mikrotik", "test")
    pm.add(FakeRadius(), "fake_radius", "test")
    assert set(enforcers.available()) - {"mikrotik", "radius"} == {"fake_mikrotik", "fake_radius"}  # beside the built-in
    assert enforcers.available()["fake_radius"].label == "Fake RADIUS"

    class Again:
        @hookimpl
        def enforcer_describe(self):
            return EnforcerInfo("fake_radius", "Second RADIUS")

    pm.add(Again(), "again", "test")
    with caplog.at_level(logging.ERROR):
        found = enforcers.available()
    assert found["fake_radius"].label == "Fake RADIUS"  # registered first, keeps the kind
    assert set(found) - {"mikrotik", "radius"} == {"fake_mikrotik", "fake_radius"}
    assert "plugin 'again' failed in enforcer_describe: kind 'fake_radius' is already provided" in caplog.text


def test_hook_enforcer_read_state(pm):
    from core import enforcers

    pm.add(FakeMikrotik(), "fake_mikrotik", "test")
    pm.add(FakeRadius(), "fake_radius", "test")
    assert enforcers.read_state(_router("core-1", "fake_mikrotik")) == [
        SubscriberState("pppoe:alice", "active", rate=(10000, 2000))]
    assert enforcers.read_state(_router("aaa", "fake_radius")) == [SubscriberState("radius:bob", "suspended")]
    with pytest.raises(NotFound, match="cisco"):
        enforcers.read_state(_router("edge", "cisco"))
    router = _router("tower-9", "fake_mikrotik")
    router.host = "unreachable"
    with pytest.raises(ConnectionError, match="no route to host"):  # passes through for retry
        enforcers.read_state(router)


def test_hook_enforcer_apply(pm):
    from core import enforcers

    mikrotik, radius = FakeMikrotik(), FakeRadius()
    pm.add(mikrotik, "fake_mikrotik", "test")
    pm.add(radius, "fake_radius", "test")
    changes = [Change("set", SubscriberState("pppoe:alice", "throttled", rate=(1000, 500))),
               Change("set", SubscriberState("pppoe:full", "active")),
               Change("remove", SubscriberState("pppoe:carol", "suspended"))]

    result = enforcers.apply(_router("core-1", "fake_mikrotik"), iter(changes))
    assert result.applied == ("pppoe:alice", "pppoe:carol")
    assert result.failed == {"pppoe:full": "queue full"}
    assert mikrotik.applied == [("core-1", changes)] and radius.applied == []

    with pytest.raises(PluginError) as wrong:
        enforcers.apply(_router("aaa", "fake_radius"), changes)
    assert wrong.value.plugin == "fake_radius"
    with pytest.raises(NotFound):
        enforcers.apply(_router("edge", "cisco"), changes)
    assert len(mikrotik.applied) == 1


class CheckedRouters:
    @hookimpl
    def enforcer_describe(self):
        return EnforcerInfo("fake_mikrotik", "Fake MikroTik")

    @hookimpl
    def enforcer_check(self, router):
        if router.kind != "fake_mikrotik":
            return None
        if router.host == "unreachable":
            raise ConnectionRefusedError("connection refused")
        if router.host == "wrong-answer":
            return "fine"
        if router.username == "intruder":
            raise RuntimeError(f"login refused by {router.name}: invalid user name or password")
        return RouterCheck(identity=f"{router.name}-identity", version="7.18", detail="lab")

    @hookimpl
    def enforcer_setup_script(self, router, context):
        if router.kind != "fake_mikrotik":
            return None
        if router.host == "wrong-answer":
            return ["not", "text"]
        garden = " ".join(context.walled_garden)
        return f"redirect to {context.portal_address}:{context.portal_port} ({context.portal_url}); open {garden}\n"


def test_hook_enforcer_check(pm):
    from core import routers

    pm.add(CheckedRouters(), "checked", "test")
    assert routers.check(_router("tower-1", "fake_mikrotik")) == RouterCheck("tower-1-identity", "7.18", "lab")
    gone = _router("tower-2", "fake_mikrotik")
    gone.host = "unreachable"
    with pytest.raises(ConnectionRefusedError):  # passes through: the CLI says it cannot be reached
        routers.check(gone)
    intruder = _router("tower-3", "fake_mikrotik")
    intruder.username = "intruder"
    with pytest.raises(PluginError, match="login refused by tower-3"):
        routers.check(intruder)
    odd = _router("tower-4", "fake_mikrotik")
    odd.host = "wrong-answer"
    with pytest.raises(PluginError, match="expected RouterCheck"):
        routers.check(odd)
    with pytest.raises(NotFound, match="cisco"):
        routers.check(_router("edge", "cisco"))


def test_hook_enforcer_setup_script(pm, db):
    from core import routers, settings

    class Gateway:
        @hookimpl
        def gateway_describe(self):
            return GatewayInfo("hosted", "Hosted checkout", hosts=("pay.example.com", "js.example.com"))

    pm.add(CheckedRouters(), "checked", "test")
    pm.add(Gateway(), "hosted", "test")
    with pytest.raises(ValidationError, match="web.portal_url"):
        routers.setup_script(_router("tower-1", "fake_mikrotik"))
    with pytest.raises(ValidationError, match="IP address"):
        settings.set_value("web.portal_url", "http://billing.example.net:8081")
    with pytest.raises(ValidationError, match="plain HTTP"):
        settings.set_value("web.portal_url", "https://10.0.0.2:8081")
    settings.set_value("web.portal_url", "http://10.0.0.2:8081/")
    script = routers.setup_script(_router("tower-1", "fake_mikrotik"))
    assert script.startswith("redirect to 10.0.0.2:8081 (http://10.0.0.2:8081/suspended)")
    assert "pay.example.com js.example.com" in script
    odd = _router("tower-4", "fake_mikrotik")
    odd.host = "wrong-answer"
    with pytest.raises(PluginError, match="expected text"):
        routers.setup_script(odd)
    with pytest.raises(NotFound):
        routers.setup_script(_router("edge", "cisco"))


# --- usage -------------------------------------------------------------------------

def test_hook_usage_collect(db, pm):
    from core import catalog, customers, usage
    from core.models import Service, UsageRecord

    customer = customers.add(name="Alice Wanjiku", currency="KES")
    plan = catalog.add(code="home-10", name="Home 10", kind="internet", price="2500", currency="KES")
    service = Service.create(customer=customer, plan=plan, start_date=dt.date(2026, 1, 1), anchor_day=1)
    t0 = dt.datetime(2026, 3, 1, 0, 0)
    hour = dt.timedelta(hours=1)
    asked = []

    class Netflow:
        @hookimpl
        def usage_collect(self, since):
            asked.append(since)
            return [
                UsageSample("netflow", "nf-1", service.id, t0, t0 + hour, 1000, 200),
                UsageSample("netflow", "nf-2", service.id, t0 + hour, t0 + 2 * hour, 3000, 400),
                UsageSample("netflow", "nf-3", service.id + 1000, t0, t0 + hour, 5, 5),  # unknown service
                UsageSample("netflow", "nf-4", service.id, t0, t0 + hour, -1, 0),  # negative counter
            ]

    class Aaa:
        @hookimpl
        def usage_collect(self, since):
            # Same external id as netflow's but another source: a different sample.
            return [UsageSample("aaa", "nf-1", service.id, t0, t0 + hour, 7, 8)]

    class Broken:
        @hookimpl
        def usage_collect(self, since):
            # A source that moved its own cursor and then failed is rolled back alone.
            database.obj.execute_sql("INSERT INTO radius_state (name, value) VALUES ('broken_cursor', 9)")
            raise OSError("collector offline")

    pm.add(Netflow(), "netflow", "test")
    pm.add(Aaa(), "aaa", "test")
    pm.add(Broken(), "broken", "test")

    assert usage.collect() == 3
    assert usage.collect(since=t0) == 0  # overlapping samples are stored once
    assert asked == [None, t0]
    rows = sorted((r.source, r.external_id, r.bytes_in, r.bytes_out) for r in UsageRecord.select())
    assert rows == [("aaa", "nf-1", 7, 8), ("netflow", "nf-1", 1000, 200), ("netflow", "nf-2", 3000, 400)]
    assert database.obj.execute_sql("SELECT COUNT(*) FROM radius_state WHERE name = 'broken_cursor'").fetchone()[0] == 0
    assert all(r.service_id == service.id for r in UsageRecord.select())


# --- notifications -----------------------------------------------------------------

def test_hook_notify(pm, caplog):
    from core import notify

    sent = []

    class Sms:
        @hookimpl
        def notify(self, message):
            if message.channel != "sms":
                return None
            sent.append(("sms", message.to))
            return Delivery("sms_plugin", reference="SMS-1")

    class Email:
        @hookimpl
        def notify(self, message):
            if message.channel == "email":
                sent.append(("email", message.to))
                return Delivery("email_plugin", reference="<1@example>")
            if message.channel == "fax":
                raise RuntimeError("paper jam")
            if message.channel == "pager":
                return "sent"
            return None

    pm.add(Sms(), "sms", "test")
    assert pm.add(Email(), "mailer", "test")  # "email" is the built-in SMTP notifier's name

    assert notify.send(Message("sms", "+254700000001", "", "Your invoice is due")) == Delivery("sms_plugin", "SMS-1")
    assert notify.send(Message("email", "a@example.org", "Invoice", "Due")).notifier == "email_plugin"
    assert sent == [("sms", "+254700000001"), ("email", "a@example.org")]

    with caplog.at_level(logging.INFO, logger="wispbill.notify"):
        delivery = notify.send(Message("log", "ops", "Router down", "core-1 unreachable"))
    assert delivery.notifier == "log_notifier" and delivery.reference
    assert "Router down" in caplog.text

    with pytest.raises(NotFound, match="carrier_pigeon"):
        notify.send(Message("carrier_pigeon", "x", "s", "b"))
    with pytest.raises(PluginError) as failed:
        notify.send(Message("fax", "x", "s", "b"))
    assert failed.value.plugin == "mailer" and "paper jam" in str(failed.value)
    with pytest.raises(PluginError, match="expected Delivery"):
        notify.send(Message("pager", "x", "s", "b"))

    # An installed plugin is asked before the built-in log_notifier.
    class LogOverride:
        @hookimpl
        def notify(self, message):
            return Delivery("override") if message.channel == "log" else None

    pm.add(LogOverride(), "override", "test")
    assert notify.send(Message("log", "ops", "s", "b")).notifier == "override"


_SHARED_BP = Blueprint("shared_plugin", __name__, url_prefix="/plugins/shared")


@_SHARED_BP.route("/open")
def _shared_open():
    return "open"


_shared_open.wispbill_public = True


@_SHARED_BP.route("/staff")
def _shared_staff():
    return "staff"


def test_hook_handle_event_retry_delays_grow_to_an_hour():
    from core import events

    delays = [events.retry_delay(n) for n in (1, 2, 3, 4, 12, 40)]
    assert delays[:4] == [dt.timedelta(seconds=s) for s in (5, 10, 20, 40)]
    assert delays[4] == delays[5] == dt.timedelta(hours=1)


def test_hook_register_routes_module_blueprint_in_every_app(pm, tmp_path):
    """A plugin's module-level blueprint keeps its routes and its guard in each app built."""
    from core.web import create_app

    class Shared:
        @hookimpl
        def register_routes(self):
            return [_SHARED_BP]

    pm.add(Shared(), "shared", "test")
    for n in range(2):
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / f'app{n}.db'}", "DATA_DIR": str(tmp_path),
                          "SECRET_KEY": SECRET, "PLUGIN_MANAGER": pm, "TESTING": True})
        client = app.test_client()
        assert client.get("/plugins/shared/open").get_data(as_text=True) == "open"
        assert client.get("/plugins/shared/staff").status_code == 302
