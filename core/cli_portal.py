"""``wispbill`` commands for customers' portal sign-in.

``wispbill customers portal-password ACCOUNT`` sets the customer's portal password
(asked for twice, or read from standard input with ``--password-stdin``); with
``--send-reset`` it e-mails the customer a link to choose one instead, which is also how
a customer is invited to the portal.
"""

from __future__ import annotations

import sys

import click

from core import audit, customers, portal_accounts, settings
from core.cli import _actor, _out, customers_group, open_database


@customers_group.command("portal-password")
@click.argument("account")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (first line).")
@click.option("--send-reset", is_flag=True, help="E-mail the customer a link to choose a password instead.")
@click.option("--json", "as_json", is_flag=True)
def customers_portal_password(account, password_stdin, send_reset, as_json):
    """Set ACCOUNT's portal password, or e-mail them a link to set one (--send-reset)."""
    if password_stdin and send_reset:
        raise click.UsageError("--password-stdin and --send-reset do not go together")
    open_database()
    customer = customers.find(account)
    if send_reset:
        base = settings.get_or("web.base_url", "", None) or ""
        with audit.acting_as(_actor()):
            reset = portal_accounts.send_reset(customer, base)
        _out({"customer": customer.account_number, "email": customer.email,
              "expires_at": reset.expires_at.isoformat(timespec="seconds")},
             f"a password link for {customer.account_number} is queued for {customer.email} "
             f"(it works until {reset.expires_at:%Y-%m-%d %H:%M} UTC)", as_json)
        return
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Portal password", hide_input=True, confirmation_prompt=True)
    with audit.acting_as(_actor()):
        portal_accounts.set_password(customer, password)
    _out({"customer": customer.account_number, "portal_password": "set"},
         f"portal password set for {customer.account_number}; they sign in with "
         f"{' or '.join(x for x in (customer.email, customer.phone) if x) or '(no e-mail or phone on the account!)'}",
         as_json)
