"""The ``wispbill templates`` and ``wispbill notifications`` commands: customer messages and what was sent.

Templates are named as in :data:`core.messages.TEMPLATES` (``invoice``, ``receipt``, ...).
"""

from __future__ import annotations

import sys

import click

from core import audit, customers, messages, notifications
from core.cli import Group, _actor, _emit_json, _listing, cli, open_database
from core.db import database
from core.models import NOTIFICATION_STATUSES


def _template_dict(t: messages.Template) -> dict:
    template = messages.info(t.name)
    return {"name": t.name, "subject": t.subject, "body": t.body, "edited": t.edited,
            "updated_at": t.updated_at.isoformat(timespec="seconds") if t.updated_at else None,
            "updated_by": t.updated_by, "sent_when": template.description,
            "variables": {v: messages.VARIABLES[v].description for v in template.variables}}


@cli.group(cls=Group)
def templates_group():
    """Show, edit, reset and preview the templates of customer messages."""


cli.add_command(templates_group, "templates")


@templates_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def templates_list(as_json):
    """List the templates: edited or shipped, and their subject."""
    open_database()
    _listing(messages.listing(), _template_dict,
             lambda t: f"{t.name}\t{'edited' if t.edited else 'default'}\t{t.subject}", as_json)


@templates_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def templates_show(name, as_json):
    """Show template NAME with the variables it can use."""
    open_database()
    data = _template_dict(messages.get(name))
    if as_json:
        _emit_json(data)
        return
    origin = f"edited by {data['updated_by']} at {data['updated_at']}" if data["edited"] else "shipped text"
    click.echo(f"{name} ({origin}), sent when {data['sent_when']}")
    click.echo(f"Subject: {data['subject']}\n")
    click.echo(data["body"].rstrip("\n"))
    click.echo("\nVariables:")
    for var, description in data["variables"].items():
        click.echo(f"  {var}\t{description}")


@templates_group.command("set")
@click.argument("name")
@click.option("--subject", help="The new subject line (Jinja text).")
@click.option("--body-file", type=click.File("r", encoding="utf-8"),
              help="A file holding the new body (Jinja text); '-' reads standard input.")
def templates_set(name, subject, body_file):
    """Change the subject or body of template NAME (checked before it is saved).

    A template that does not parse, uses a variable NAME does not get, or fails with
    sample values is refused and nothing is written.
    """
    if subject is None and body_file is None:
        raise click.UsageError("give --subject, --body-file or both")
    body = None
    if body_file is not None:
        try:
            body = body_file.read()
        except UnicodeDecodeError:
            raise click.BadParameter("the file is not UTF-8 text", param_hint="--body-file") from None
    open_database()
    with audit.acting_as(_actor()):
        messages.save(name, subject=subject, body=body)
    click.echo(f"template {name} saved")


@templates_group.command("reset")
@click.argument("name")
def templates_reset(name):
    """Go back to the shipped text of template NAME."""
    open_database()
    with audit.acting_as(_actor()):
        changed = messages.reset(name)
    click.echo(f"template {name} reset to the shipped text" if changed
               else f"template {name} is the shipped text already; nothing changed")


@templates_group.command("preview")
@click.argument("name")
@click.option("--customer", help="Render for this customer (account number or #id) instead of sample values.")
@click.option("--json", "as_json", is_flag=True)
def templates_preview(name, customer, as_json):
    """Render template NAME with sample values or with a customer's data.

    With --customer: their newest invoice (invoice, due_soon), newest payment (receipt)
    or their account as it is now (the others). Nothing is written.
    """
    open_database()
    messages.info(name)
    if customer is None:
        subject, body = messages.render(name, messages.sample_context(name))
    else:
        who = customers.find(customer)
        with database.atomic() as txn:  # rendering may make a pay link: leave no trace of it
            subject, body = messages.render(name, messages.preview_context(name, who))
            txn.rollback()
    if as_json:
        _emit_json({"name": name, "subject": subject, "body": body})
        return
    click.echo(f"Subject: {subject}\n")
    click.echo(body.rstrip("\n"))


# --- notifications -----------------------------------------------------------------

@cli.group(cls=Group)
def notifications_group():
    """See the messages queued for customers, and send the waiting ones."""


cli.add_command(notifications_group, "notifications")


@notifications_group.command("list")
@click.option("--status", type=click.Choice(NOTIFICATION_STATUSES))
@click.option("--customer", help="Only this customer's (account number or #id).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True)
def notifications_list(status, customer, limit, as_json):
    """List notifications, newest first."""
    open_database()
    who = customers.find(customer) if customer else None
    _listing(notifications.listing(status, who, limit), notifications.as_dict,
             lambda n: f"{n.id}\t{n.created_at:%Y-%m-%d %H:%M}\t{n.status}\t{n.template}\t{n.recipient or '-'}\t"
                       f"{n.subject or ''}\t{n.last_error or ''}", as_json)


@notifications_group.command("send")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--retry-now", is_flag=True, help="Also send those waiting for their next try.")
@click.option("--json", "as_json", is_flag=True)
def notifications_send(limit, retry_now, as_json):
    """Send the waiting notifications now; exit 1 when any could not be delivered."""
    open_database()
    outcome = notifications.deliver_pending(limit=limit, include_waiting=retry_now)
    if as_json:
        _emit_json({"sent": outcome.sent, "retrying": outcome.retrying, "failed": outcome.failed,
                    "errors": [{"id": i, "error": e} for i, e in outcome.errors]})
    else:
        click.echo(str(outcome))
        for row_id, error in outcome.errors:
            click.echo(f"notification {row_id}: {error}", err=True)
    if outcome.errors:
        sys.exit(1)
