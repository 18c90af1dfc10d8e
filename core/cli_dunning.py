"""The dunning commands of ``wispbill``: policies, assignments, promises to pay, exemptions, the run.

Customers are named by account number (or ``#id``), plans by code. Every command takes
``--json``. Bad input exits with code 2 and writes nothing.
"""

from __future__ import annotations

import sys

import click

from core import audit, customers, dunning, dunning_policies, validate
from core.cli import Group, _actor, _emit_json, _money, _out, cli, open_database
from core.clock import today
from core.models import Customer
from core.money import Money


def _evaluation_text(evaluation: dunning.Evaluation) -> str:
    if evaluation.changed:
        line = f"{evaluation.account_number}: {evaluation.from_state} -> {evaluation.to_state} ({evaluation.reason})"
    else:
        line = f"{evaluation.account_number}: stays {evaluation.to_state}"
    for svc in evaluation.services:
        line += f"\n  service {svc['service_id']}: paid through {svc['to_paid_through']}" + (
            f" ({svc['event']})" if svc["event"] else "")
    return line


@cli.group(cls=Group)
def dunning_group():
    """Account states for overdue customers: policies, promises to pay, exemptions, the daily run."""


cli.add_command(dunning_group, "dunning")


# --- policies ----------------------------------------------------------------------

@dunning_group.group("policies", cls=Group)
def policies_group():
    """List, add and change dunning policies."""


_DAYS_HELP = "days past the due date of the oldest overdue invoice, or 'never'"


def _policy_options(command):
    for option in reversed((
        click.option("--remind-after", metavar="DAYS|never", help=f"Remind after: {_DAYS_HELP}."),
        click.option("--throttle-after", metavar="DAYS|never", help=f"Throttle after: {_DAYS_HELP}."),
        click.option("--suspend-after", metavar="DAYS|never", help=f"Suspend after: {_DAYS_HELP}."),
        click.option("--terminate-after", metavar="DAYS|never", help=f"Terminate after: {_DAYS_HELP}."),
        click.option("--minimum", metavar="AMOUNT",
                     help="Do nothing while less than this is overdue (in the billing.currency currency)."),
        click.option("--throttle-rate", metavar="DOWN/UP",
                     help="Speed of a throttled subscriber in kbit/s, e.g. 512/256."),
        click.option("--json", "as_json", is_flag=True),
    )):
        command = option(command)
    return command


@policies_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def policies_list(as_json):
    """List the policies, 'default' first."""
    open_database()
    rows = dunning_policies.listing()
    if as_json:
        _emit_json([dunning_policies.as_dict(p) for p in rows])
        return
    for policy in rows:
        click.echo(dunning_policies.describe(policy))


@policies_group.command("add")
@click.argument("name")
@_policy_options
def policies_add(name, as_json, **options):
    """Add policy NAME; a step not given is never taken."""
    open_database()
    with audit.acting_as(_actor()):
        policy = dunning_policies.add(name, **options)
    _out(dunning_policies.as_dict(policy), f"added policy {dunning_policies.describe(policy)}", as_json)


@policies_group.command("set")
@click.argument("name")
@_policy_options
def policies_set(name, as_json, **options):
    """Change the given values of policy NAME; accounts follow at their next evaluation."""
    open_database()
    with audit.acting_as(_actor()):
        policy = dunning_policies.change(name, **options)
    _out(dunning_policies.as_dict(policy), f"changed policy {dunning_policies.describe(policy)}", as_json)


# --- assigning, promises, exemptions, reactivation ---------------------------------

@dunning_group.command("assign")
@click.option("--customer", "account", metavar="CUSTOMER", help="Give this customer a policy of their own.")
@click.option("--plan", "plan_code", metavar="CODE", help="Give every version of this plan a policy.")
@click.option("--policy", "policy_name", required=True, metavar="NAME|none", help="The policy, or 'none' to remove.")
@click.option("--json", "as_json", is_flag=True)
def dunning_assign(account, plan_code, policy_name, as_json):
    """Assign a policy to a customer (re-evaluated at once) or to a plan (from the next run)."""
    if bool(account) == bool(plan_code):
        raise click.UsageError("give exactly one of --customer and --plan")
    open_database()
    with audit.acting_as(_actor()):
        if account:
            c = customers.find(account)
            evaluation = dunning.assign(c, policy_name)
            data = {"customer": c.account_number, "policy": _policy_of(c), "evaluation": evaluation.as_dict()}
            _out(data, f"customer {c.account_number}: policy {data['policy'] or 'none (plan or default)'}\n"
                       f"{_evaluation_text(evaluation)}", as_json)
        else:
            versions = dunning_policies.assign_plan(plan_code, policy_name)
            name = versions[0].dunning_policy.name if versions[0].dunning_policy_id else None
            data = {"plan": plan_code, "versions": [v.version for v in versions], "policy": name}
            _out(data, f"plan {plan_code} ({len(versions)} version(s)): policy {name or 'none (default)'}; "
                       "customers follow at the next dunning run", as_json)


def _policy_of(customer) -> str | None:
    row = Customer.get_by_id(customer.id)
    return row.dunning_policy.name if row.dunning_policy_id else None


@dunning_group.command("extend")
@click.argument("customer")
@click.option("--until", metavar="DATE", help="Last day of the promise (today or later).")
@click.option("--note", help="What was agreed, for the audit trail.")
@click.option("--force", is_flag=True, help=f"Allow a date more than {dunning.PROMISE_MAX_DAYS} days away.")
@click.option("--clear", is_flag=True, help="Withdraw the customer's promise instead.")
@click.option("--json", "as_json", is_flag=True)
def dunning_extend(customer, until, note, force, clear, as_json):
    """Record CUSTOMER's promise to pay: no dunning until that date, and back online now."""
    if bool(until) == clear:
        raise click.UsageError("give either --until DATE or --clear")
    open_database()
    c = customers.find(customer)
    with audit.acting_as(_actor()):
        if clear:
            evaluation = dunning.clear_promise(c)
            _out(evaluation.as_dict() | {"promise_until": None},
                 f"promise to pay withdrawn for {c.account_number}\n{_evaluation_text(evaluation)}", as_json)
            return
        day = validate.date(until, "--until")
        evaluation = dunning.extend(c, day, note=note, force=force)
    _out(evaluation.as_dict() | {"promise_until": day.isoformat()},
         f"promise to pay until {day.isoformat()} recorded for {c.account_number}\n{_evaluation_text(evaluation)}",
         as_json)


@dunning_group.command("exempt")
@click.argument("customer")
@click.option("--off", is_flag=True, help="End the exemption.")
@click.option("--json", "as_json", is_flag=True)
def dunning_exempt(customer, off, as_json):
    """Exempt CUSTOMER from dunning (never reminded, throttled or suspended), or end it with --off."""
    open_database()
    c = customers.find(customer)
    with audit.acting_as(_actor()):
        evaluation = dunning.set_exempt(c, not off)
    word = "no longer exempt" if off else "exempt from dunning"
    _out(evaluation.as_dict() | {"exempt": not off}, f"{c.account_number} is {word}\n{_evaluation_text(evaluation)}",
         as_json)


@dunning_group.command("reactivate")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
def dunning_reactivate(customer, as_json):
    """Bring a terminated CUSTOMER back, into the state what they owe gives them now."""
    open_database()
    c = customers.find(customer)
    with audit.acting_as(_actor()):
        evaluation = dunning.reactivate(c)
    _out(evaluation.as_dict(), _evaluation_text(evaluation), as_json)


# --- looking and running -----------------------------------------------------------

@dunning_group.command("status")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
def dunning_status(customer, as_json):
    """CUSTOMER's account state, policy, what is overdue, and what happens next and when."""
    open_database()
    data = dunning.status(customers.find(customer))
    if as_json:
        _emit_json(data)
        return
    since = f" since {data['since']}" if data["since"] else ""
    click.echo(f"{data['account_number']}: {data['state']}{since}")
    if data["due_state"] != data["state"]:
        click.echo(f"  due to become {data['due_state']} at the next evaluation ({data['reason']})")
    policy = data["policy"]
    click.echo(f"  policy: {policy['name']} ({policy['source']}), minimum {_money(policy['minimum'])}")
    oldest = f", oldest due {data['oldest_due_date']} ({data['days_overdue']} days)" if data["oldest_due_date"] else ""
    click.echo(f"  overdue: {_money(data['overdue'])}{oldest}")
    if data["exempt"]:
        click.echo("  exempt from dunning")
    if data["promise_until"]:
        click.echo(f"  promise to pay until {data['promise_until']}"
                   + ("" if data["promise_active"] else " (lapsed)"))
    nxt = data["next"]
    click.echo(f"  next: {nxt['state']} on {nxt['on']} if nothing is paid" if nxt else "  next: nothing")
    for svc in data["prepaid"]:
        click.echo(f"  prepaid service {svc['service_id']}: paid through {svc['paid_through'] or '-'}"
                   + (" (expired)" if svc["expired"] else ""))


@dunning_group.command("run")
@click.option("--date", "day", metavar="DATE", help="Evaluate as of this date (default today).")
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True)
def dunning_run(day, dry_run, as_json):
    """Move every account whose state changes on a date, and expire or renew prepaid services."""
    open_database()
    on = validate.date(day, "--date", today())
    with audit.acting_as(_actor()):
        result = dunning.run(on, dry_run=dry_run)
    if as_json:
        _emit_json(result.as_dict())
    else:
        verb = "would change" if dry_run else "changed"
        for t in result.transitions:
            owed = Money(t["overdue_minor"], t["currency"]) if t["currency"] else ""
            click.echo(f"{t['account_number']}\t{t['from_state']} -> {t['to_state']}\t{t['reason']}\t{owed}\t"
                       f"{t['days_overdue']} days")
        for svc in result.services:
            click.echo(f"{svc['account_number']}\tservice {svc['service_id']}\tpaid through "
                       f"{svc['from_paid_through'] or '-'} -> {svc['to_paid_through']}\t{svc['event'] or ''}")
        click.echo(f"dunning as of {on}: {verb} {len(result.transitions)} account(s), "
                   f"{len(result.services)} prepaid service(s)")
        for account, reason in sorted(result.failures.items()):
            click.echo(f"not evaluated: {account}: {reason}", err=True)
    if result.failures:
        sys.exit(1)
