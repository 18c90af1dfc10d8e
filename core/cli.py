"""The ``wispbill`` command: set-up, serving, scheduling and enough to run the system from a shell.

Bad arguments exit with code 2 and a one-line reason; an unreachable database or an
out-of-date schema exits with code 1 and one line saying so. List commands take
``--json``. Plugins add commands through the ``register_commands`` hook.
"""

from __future__ import annotations

import getpass
import json
import signal
import socket
import sys

import click

from core import __version__, audit, catalog, customers, migrations, users, validate
from core.config import configure_logging, load_config
from core.db import bind, check_connection, database, redact
from core.errors import ConfigError, NotFound, ValidationError, WispbillError
from core.models import PLAN_KINDS, PLAN_PERIODS, USER_ROLES, User
from core.money import Money
from core.plugins import build_manager, get_manager, set_manager


class Group(click.Group):
    """A click group that turns the core's errors into one clear line and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ValidationError, NotFound) as exc:
            raise click.UsageError(str(exc), ctx) from None
        except ConfigError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = 2
            raise error from None
        except WispbillError as exc:
            raise click.ClickException(str(exc)) from None


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _out(data, text: str, as_json: bool) -> None:
    """Print ``data`` as JSON with ``--json``, else the line ``text``."""
    if as_json:
        _emit_json(data)
    else:
        click.echo(text)


def _money(value: dict) -> str:
    """A money dict of a ``--json`` answer (``{"minor": ..., "currency": ...}``) as people read it."""
    return str(Money.from_dict(value))


def open_database(require_current: bool = True):
    """Bind and check the configured database; with ``require_current``, refuse an old schema."""
    config = load_config()
    configure_logging(config)
    bind(config.database_url)
    check_connection(config.database_url)
    if require_current:
        current, latest = migrations.current_version(database.obj), migrations.latest_version()
        if current < latest:
            raise click.ClickException(
                f"database schema is at version {current}, this code needs {latest}: run 'wispbill migrate'")
        waiting = migrations.pending(database.obj)
        if waiting:
            raise click.ClickException(f"plugin tables are not up to date ({', '.join(m.label for m in waiting)}): "
                                       "run 'wispbill migrate'")
    return config


def _create(create, as_dict, describe, options: dict, as_json: bool) -> None:
    """Run a core ``create(**options)`` as the CLI user and report the new object."""
    open_database()
    with audit.acting_as(_actor()):
        obj = create(**options)
    click.echo(json.dumps(as_dict(obj), indent=2, sort_keys=True, default=str) if as_json else describe(obj))


def _listing(rows, as_dict, line, as_json: bool) -> None:
    """Print rows as JSON or as one tab-separated line each."""
    if as_json:
        _emit_json([as_dict(r) for r in rows])
        return
    for r in rows:
        click.echo(line(r))


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wispbill")
def cli():
    """wispbill: billing for community ISPs and WISPs."""


@cli.command()
@click.option("--check", is_flag=True, help="Only report; exit 1 if migrations are pending.")
def migrate(check):
    """Apply the schema migrations that are missing (safe to re-run)."""
    open_database(require_current=False)
    if check:
        waiting = migrations.pending(database.obj)
        if waiting:
            raise click.ClickException(f"{len(waiting)} migration(s) pending: "
                                       + ", ".join(m.label for m in waiting))
        click.echo(f"schema up to date (version {migrations.current_version(database.obj)})")
        return
    applied = migrations.migrate(database.obj)
    for m in applied:
        click.echo(f"applied {m.label}")
    click.echo(f"schema at version {migrations.current_version(database.obj)}")


@cli.command()
@click.option("--admin-user", default="admin", show_default=True, help="Username of the first admin.")
@click.option("--admin-password", help="Password of the first admin (default: generate one and print it once).")
@click.option("--demo", is_flag=True, help="Also load demo plans and customers.")
@click.option("--currency", default="USD", show_default=True, help="Currency of the demo data.")
@click.option("--demo-router", metavar="KIND@HOST:PORT",
              help="With --demo: add a router 'lab' of this enforcer kind and bind the demo subscribers to it.")
def init(admin_user, admin_password, demo, currency, demo_router):
    """Create the database, migrate it and create the first admin."""
    users.check_username(admin_user, "--admin-user")
    lab = None
    if demo_router:
        if not demo:
            raise click.UsageError("--demo-router goes with --demo")
        kind, _, where = demo_router.partition("@")
        host, _, port_text = where.rpartition(":")
        port = validate.as_id(port_text)
        if not kind or not host or port is None or port > 65535:
            raise click.BadParameter(f"expected KIND@HOST:PORT, not {demo_router!r}", param_hint="--demo-router")
        lab = (kind, host, port)
    if admin_password is not None:
        users.check_password(admin_password, "--admin-password")
    if demo:
        validate.currency(currency, "--currency")
    config = load_config()
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create the data directory {config.data_dir}: {exc.strerror}") from None
    open_database(require_current=False)
    applied = migrations.migrate(database.obj)
    click.echo(f"database {redact(config.database_url)}: schema at version "
               f"{migrations.current_version(database.obj)} ({len(applied)} migration(s) applied)")
    with audit.acting_as(_actor()):
        if User.select().exists():
            if admin_password:
                raise click.UsageError("staff users already exist; --admin-password applies to a new database only")
            click.echo("staff users already exist; no admin created")
        else:
            password = admin_password or users.generate_password()
            users.create(admin_user, password, role="admin")
            click.echo(f"admin login: {admin_user}")
            if not admin_password:
                click.echo(f"admin password: {password}  (shown once; change it after signing in)")
        if demo:
            from core import demo as demo_data

            plans, people = demo_data.load(currency)
            click.echo(f"demo data: {plans} plan(s), {people} customer(s) added")
            made = demo_data.portal_login()
            if made:
                click.echo(f"portal login: {made[0]}")
                click.echo(f"portal password: {made[1]}  (the demo customer's, for /portal/; shown once)")
            if lab:
                bound = demo_data.add_router(*lab)
                click.echo(f"demo router: lab ({lab[0]} at {lab[1]}:{lab[2]}), {bound} service(s) bound")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option("--portal-port", type=click.IntRange(1, 65535),
              help="Also listen here for suspended subscribers' web traffic (routers redirect it to this port).")
@click.option("--portal-host", help="The address the portal port listens on (default: --host), e.g. 0.0.0.0 "
                                    "while the app itself listens on loopback behind a proxy.")
def serve(host, port, threads, portal_port, portal_host):
    """Serve the web app with a production WSGI server (waitress)."""
    import waitress

    from core.web import create_app

    if portal_host and not portal_port:
        raise click.BadParameter("goes with --portal-port", param_hint="--portal-host")
    for name, value in (("--host", host), ("--portal-host", portal_host)):
        if value is None:
            continue
        try:
            socket.getaddrinfo(value, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise click.BadParameter(f"{value!r} is not an address or a name this machine can resolve",
                                     param_hint=name) from None
    if portal_port == port:
        raise click.BadParameter("must differ from --port", param_hint="--portal-port")
    open_database()
    app = create_app({"PORTAL_PORT": portal_port} if portal_port else None)

    def shown(name):
        return '[' + name + ']' if ':' in name else name
    listen = f"{shown(host)}:{port}" + (f" {shown(portal_host or host)}:{portal_port}" if portal_port else "")
    try:
        server = waitress.create_server(app, listen=listen, threads=threads, ident="wispbill")
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    click.echo(f"serving on http://{shown(host)}:{port}"
               + (f" (portal on {shown(portal_host or host)}:{portal_port})" if portal_port else ""))
    server.run()


@cli.command()
@click.option("--list", "list_jobs", is_flag=True, help="List the registered jobs with their schedules and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --list: print JSON.")
def scheduler(list_jobs, as_json):
    """Run the scheduled jobs of the core and the plugins, one scheduler at a time.

    While another instance holds the scheduler lease this one waits, and takes over
    when that one stops or dies. SIGTERM or Ctrl-C lets running jobs finish, releases
    the lease and exits.
    """
    from core import scheduler as sched

    config = open_database()
    plan = sched.planned()
    if list_jobs:
        rows = [{"id": p.job.id, "trigger": p.job.trigger, "schedule": p.job.schedule, "when": p.when,
                 "overridden": p.overridden, "enabled": p.enabled, "description": p.job.description}
                for p in plan]
        if as_json:
            _emit_json(rows)
        else:
            for r in rows:
                where = f" ({sched.SCHEDULES_SETTING})" if r["overridden"] else ""
                click.echo(f"{r['id']}\t{r['when']}{where}\t{r['description']}")
            if not rows:
                click.echo("no jobs registered")
        return
    lease_seconds, renew_seconds = sched.lease_timing(config.extra)
    database.close()
    runner = sched.Runner(lease_seconds=lease_seconds, renew_seconds=renew_seconds, announce=click.echo)
    # systemd stops services with SIGTERM: let running jobs finish, release the lease, leave.
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    click.echo(f"scheduler starting with {sum(p.enabled for p in plan)} job(s) as {runner.holder}")
    runner.run()
    click.echo("scheduler stopped")


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_cmd(as_json):
    """List loaded plugins, where they came from and the hooks they implement."""
    pm = get_manager()
    loaded = [vars(p) for p in pm.report()]
    failed = [vars(f) for f in pm.failures]
    if as_json:
        _emit_json({"plugins": loaded, "failed": failed})
        return
    for p in loaded:
        click.echo(f"{p['name']} {p['version']} [{p['source']}]")
        click.echo(f"    hooks: {', '.join(p['hooks']) or '(none)'}")
    for f in failed:
        click.echo(f"FAILED {f['name']} [{f['source']}]: {f['error']}")


# --- customers ---------------------------------------------------------------------

@cli.group(cls=Group)
def customers_group():
    """Add and list customers."""


cli.add_command(customers_group, "customers")


@customers_group.command("add")
@click.option("--name", required=True)
@click.option("--currency", help="ISO 4217 code, e.g. KES, USD (default: the billing.currency setting).")
@click.option("--email")
@click.option("--phone")
@click.option("--address")
@click.option("--terms-days", help="Days between invoice and due date (default: the billing.terms_days setting).")
@click.option("--account-number", help="Default: the next number of the account series.")
@click.option("--tax-region")
@click.option("--tax-exempt", is_flag=True)
@click.option("--tax-exemption-ref")
@click.option("--json", "as_json", is_flag=True)
def customers_add(as_json, **options):
    """Create a customer."""
    _create(customers.add, customers.as_dict, lambda c: f"created customer {c.account_number} ({c.name})",
            options, as_json)


@customers_group.command("list")
@click.option("--search", "query", help="Match name, account number, e-mail or phone.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True)
def customers_list(query, limit, as_json):
    """List customers by name."""
    open_database()
    _listing(customers.search(query, limit=limit), customers.as_dict,
             lambda c: f"{c.account_number}\t{c.name}\t{c.currency}\t{c.state}\t{c.email or ''}", as_json)


# --- plans -------------------------------------------------------------------------

@cli.group(cls=Group)
def plans_group():
    """Add and list plans."""


cli.add_command(plans_group, "plans")


@plans_group.command("add")
@click.option("--code", required=True, help="Short identifier, e.g. home-10.")
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(PLAN_KINDS))
@click.option("--price", required=True, help="Price per period, e.g. 2,500.00.")
@click.option("--currency", help="Default: the billing.currency setting.")
@click.option("--period", default="monthly", show_default=True, type=click.Choice(PLAN_PERIODS))
@click.option("--period-days", help="Length of a 'days' pass.")
@click.option("--setup-fee", default="0", show_default=True)
@click.option("--tax-category", default="standard", show_default=True)
@click.option("--download-kbps")
@click.option("--upload-kbps")
@click.option("--data-cap-mb")
@click.option("--fup-download-kbps")
@click.option("--fup-upload-kbps")
@click.option("--overage-per-gb")
@click.option("--json", "as_json", is_flag=True)
def plans_add(as_json, **options):
    """Create a plan (or the next version of an existing code)."""
    _create(catalog.add, catalog.as_dict, lambda p: f"created plan {p.code} v{p.version} ({p.name})",
            options, as_json)


@plans_group.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include retired plans.")
@click.option("--json", "as_json", is_flag=True)
def plans_list(include_inactive, as_json):
    """List the newest version of each plan."""
    open_database()
    _listing(catalog.listing(include_inactive), catalog.as_dict,
             lambda p: f"{p.code}\tv{p.version}\t{p.kind}\t{p.period}\t{Money(p.price_minor, p.currency)}\t{p.name}",
             as_json)


# --- settings ----------------------------------------------------------------------

@cli.group(cls=Group)
def settings_group():
    """Show and change the settings that the core and plugins declare."""


cli.add_command(settings_group, "settings")


@settings_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def settings_list(as_json):
    """List every declared setting with its value (secrets masked)."""
    from core import settings

    open_database()
    rows = settings.listing()
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['key']}\t{r['value']}\t{r['label']}")


@settings_group.command("set")
@click.argument("key")
@click.argument("value")
def settings_set(key, value):
    """Set KEY to VALUE (checked by the setting's declaration)."""
    from core import settings

    open_database()
    with audit.acting_as(_actor()):
        settings.set_value(key, value)
    click.echo(f"{key} set")


@cli.group(cls=Group)
def users_group():
    """Manage staff users."""


cli.add_command(users_group, "users")


@users_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(USER_ROLES), default="admin")
@click.password_option()
def users_add(username, role, password):
    """Create a staff user."""
    open_database()
    with audit.acting_as(_actor()):
        users.create(username, password, role)
    click.echo(f"created user {username} ({role})")


import core.cli_backup  # noqa: E402,F401  (registers backup and restore on ``cli``)
import core.cli_bench  # noqa: E402,F401  (registers the bench commands on ``cli``)
import core.cli_doctor  # noqa: E402,F401  (registers doctor on ``cli``)
from core import cli_billing  # noqa: E402,F401  (registers the billing commands on ``cli``)
from core import cli_dunning  # noqa: E402,F401  (registers the dunning commands on ``cli``)
from core import cli_payments  # noqa: E402,F401  (registers the payment commands on ``cli``)
from core import cli_portal  # noqa: E402,F401  (registers the portal sign-in commands on ``cli``)
from core import cli_routers  # noqa: E402,F401  (registers the router commands on ``cli``)
from core import cli_templates  # noqa: E402,F401  (registers the templates and notifications commands)
from core import cli_tokens  # noqa: E402,F401  (registers the API token commands on ``cli``)


def add_plugin_commands(pm, group=None) -> None:
    """Let plugins add commands to ``group`` (the root CLI); a core command cannot be replaced."""
    group = group or cli
    core_commands = dict(group.commands)
    before = dict(group.commands)
    for plugin, _value, _error in pm.call_each("register_commands", cli=group):
        for name, command in list(group.commands.items()):
            if name in before and command is not before[name]:
                group.commands[name] = before[name]
                kind = "core command" if name in core_commands else "command"
                click.echo(f"warning: plugin {plugin!r} may not replace the {kind} {name!r}; ignored", err=True)
        before = dict(group.commands)


def main(argv=None):
    """Entry point of the console script: load plugins, let them add commands, run."""
    try:
        config = load_config()
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    pm = build_manager(blocked=config.disable_plugins)
    set_manager(pm)
    add_plugin_commands(pm)
    return cli.main(args=argv, prog_name="wispbill")


if __name__ == "__main__":
    main()
