"""``wispbill tokens``: staff API tokens (create, list, revoke)."""

from __future__ import annotations

import click

from core import api_tokens, audit, permissions
from core.cli import Group, _actor, _emit_json, cli, open_database
from core.errors import NotFound
from core.models import User


@cli.group(cls=Group)
def tokens_group():
    """Staff tokens for the JSON API under /api/v1."""


cli.add_command(tokens_group, "tokens")


@tokens_group.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What the token is for (shown on the token list).")
@click.option("--scope", "scopes", multiple=True, required=True, metavar="SCOPE",
              help=f"A scope (repeatable): {', '.join(permissions.SCOPES)}.")
@click.option("--expires", "expires_days", metavar="DAYS", help="Expire after this many days (default: never).")
def tokens_create(username, name, scopes, expires_days):
    """Make an API token for staff user USERNAME and print it once."""
    open_database()
    user = User.get_or_none(User.username == username.strip())
    if user is None:
        raise NotFound(f"no staff user {username!r}")
    with audit.acting_as(_actor()):
        row, text = api_tokens.create(user, name=name, scopes=list(scopes), expires_days=expires_days)
    click.echo(f"token {row.id} for {user.username} ({', '.join(row.scopes)})"
               + (f", expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else ""))
    click.echo(text)
    click.echo("This is the only time the token is shown; keep it somewhere safe.", err=True)


@tokens_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def tokens_list(as_json):
    """Every token: id, owner, prefix, status, scopes, name."""
    open_database()
    rows = [api_tokens.as_dict(r) for r in api_tokens.listing()]
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['id']}\t{r['user']}\t{r['prefix']}…\t{r['status']}\t{' '.join(r['scopes'])}\t{r['name']}")


@tokens_group.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id):
    """Revoke token TOKEN_ID at once."""
    open_database()
    with audit.acting_as(_actor()):
        row = api_tokens.revoke(token_id)
    click.echo(f"revoked token {row.id} ({row.prefix}…) of {row.user.username}")
