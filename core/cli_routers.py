"""The router commands of ``wispbill``: add, list, test, reconcile, the setup script, pending changes;
and ``services network`` to bind a service to its router."""

from __future__ import annotations

import json
import os

import click

from core import audit, cli_billing, enforcement, routers, services, validate
from core.cli import Group, _actor, _emit_json, cli, open_database
from core.errors import ValidationError
from core.models import ACCESS_KINDS


@cli.group(cls=Group)
def routers_group():
    """Routers kept in step with billing: add, list, test, reconcile, setup script."""


cli.add_command(routers_group, "routers")


def _parse_options(pairs) -> dict:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValidationError(f"--option takes NAME=VALUE, not {pair!r}", "option")
        options[name.strip()] = value
    return options


@routers_group.command("add")
@click.argument("name")
@click.option("--kind", required=True, help="The enforcer that drives it (see 'wispbill plugins').")
@click.option("--host", required=True, help="Address or host name of its API.")
@click.option("--port", help="API port (default: the enforcer's).")
@click.option("--username")
@click.option("--password-env", metavar="VAR",
              help="Read the password from this environment variable (default: ask, or none with --no-password).")
@click.option("--no-password", is_flag=True, help="The router needs no password.")
@click.option("--tls", is_flag=True, help="Connect with TLS.")
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE", help="An enforcer option (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def routers_add(name, kind, host, port, username, password_env, no_password, tls, options, as_json):
    """Add router NAME, driven by the enforcer of KIND."""
    open_database()
    parsed = _parse_options(options)
    if password_env:
        secret = os.environ.get(password_env)
        if secret is None:
            raise ValidationError(f"environment variable {password_env} is not set", "password-env")
    elif no_password:
        secret = None
    else:
        secret = click.prompt("router password", hide_input=True, default="", show_default=False) or None
    with audit.acting_as(_actor()):
        router = routers.add(name=name, kind=kind, host=host, port=port, username=username, secret=secret,
                             use_tls=tls, options=parsed)
    if as_json:
        _emit_json(routers.as_dict(router))
    else:
        click.echo(f"added router {router.name} ({router.kind} at {router.host}"
                   f"{':' + str(router.port) if router.port else ''})")


@routers_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def routers_list(as_json):
    """Every router with its services, pending changes and last error."""
    open_database()
    tally = routers.counts()
    rows = [routers.as_dict(r, tally.get(r.id)) for r in routers.listing()]
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        state = "ok" if not r["last_error"] else f"error: {r['last_error']}"
        click.echo(f"{r['name']}\t{r['kind']}\t{r['host']}:{r['port'] or '-'}\t{r['services']} services\t"
                   f"{r['pending']} pending\t{state}")


@routers_group.command("test")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def routers_test(name, as_json):
    """Connect to router NAME and show what it says it is."""
    open_database()
    router = routers.find(name)
    try:
        found = routers.check(router)
    except OSError as exc:
        raise click.ClickException(f"router {router.name} at {router.host} cannot be reached: {exc}") from None
    if as_json:
        _emit_json({"router": router.name, "identity": found.identity, "version": found.version,
                    "detail": found.detail})
    else:
        click.echo(f"{router.name}: {found.identity}" + (f", version {found.version}" if found.version else "")
                   + (f" ({found.detail})" if found.detail else ""))


@routers_group.command("reconcile")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Every active router.")
@click.option("--dry-run", is_flag=True, help="Count the changes without making them.")
@click.option("--json", "as_json", is_flag=True)
def routers_reconcile(name, every, dry_run, as_json):
    """Make router NAME (or --all) hold exactly what billing wants; print what changed."""
    open_database()
    if bool(name) == bool(every):
        raise click.UsageError("name one router, or give --all")
    targets = routers.listing() if every else [routers.find(name)]
    targets = [r for r in targets if r.active or not every]
    with audit.acting_as(_actor()):
        results = [enforcement.reconcile(r, dry_run=dry_run) for r in targets]
    if as_json:
        _emit_json([r.__dict__ for r in results])
    else:
        for r in results:
            if r.error:
                click.echo(f"{r.router}: not reconciled: {r.error}")
                continue
            verb = "would change" if dry_run else "changed"
            click.echo(f"{r.router}: {r.desired} wanted, {r.read} held, {verb} {r.changes}"
                       + (f", {len(r.failed)} failed" if r.failed else "") + f" in {r.seconds:.2f} s")
            for key, why in sorted(r.failed.items())[:20]:
                click.echo(f"  {key}: {why}")
    if any(r.error or r.failed for r in results):
        raise SystemExit(1)


@routers_group.command("script")
@click.argument("name")
def routers_script(name):
    """Print the commands to paste once into router NAME (the "please pay" redirect, walled garden)."""
    open_database()
    click.echo(routers.setup_script(routers.find(name)), nl=False)


@routers_group.command("pending")
@click.option("--json", "as_json", is_flag=True)
def routers_pending(as_json):
    """Changes not yet on their routers, with attempts and the last error."""
    open_database()
    rows = []
    for e in enforcement.pending():
        rows.append({"service_id": e.service_id, "router_id": e.router_id, "desired_state": e.desired_state,
                     "applied_state": e.applied_state, "attempts": e.attempts,
                     "next_attempt_at": e.next_attempt_at.isoformat() if e.next_attempt_at else None,
                     "last_error": e.last_error})
    if as_json:
        _emit_json(rows)
        return
    names = {r.id: r.name for r in routers.listing()}
    for r in rows:
        click.echo(f"service {r['service_id']}\t{names.get(r['router_id'], '-')}\t{r['applied_state'] or '-'} -> "
                   f"{r['desired_state']}\t{r['attempts']} attempts\t{r['last_error'] or ''}")


@cli_billing.services_group.command("network")
@click.argument("service_id")
@click.option("--router", help="The router this service is enforced on.")
@click.option("--unbind", is_flag=True, help="Take the service off its router.")
@click.option("--access", type=click.Choice(ACCESS_KINDS))
@click.option("--username")
@click.option("--password-env", metavar="VAR", help="Read the PPP/hotspot password from this environment variable.")
@click.option("--ip-address")
@click.option("--mac-address")
@click.option("--json", "as_json", is_flag=True)
def services_network(service_id, router, unbind, access, username, password_env, ip_address, mac_address, as_json):
    """Say how service SERVICE_ID reaches the network: router, access kind, credentials, address."""
    open_database()
    sid = validate.as_id(service_id)
    if sid is None:
        raise ValidationError(f"{service_id!r} is not a service id", "service_id")
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise ValidationError(f"environment variable {password_env} is not set", "password-env")
    if unbind and router:
        raise click.UsageError("give --router or --unbind, not both")
    with audit.acting_as(_actor()):
        service = routers.bind_service(services.get(sid), router=router, unbind=unbind, access=access,
                                       username=username, password=password, ip_address=ip_address,
                                       mac_address=mac_address)
    data = {"service_id": service.id, "router": service.router.name if service.router_id else None,
            "access": service.access, "username": service.username, "ip_address": service.ip_address,
            "mac_address": service.mac_address}
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(f"service {service.id}: " + ", ".join(f"{k}={v}" for k, v in data.items()
                                                          if k != "service_id" and v is not None))
