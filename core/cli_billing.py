"""The billing commands of ``wispbill``: services, charges, the run, invoices, credit notes, the ledger.

Every command takes ``--json``. Customers are named by account number (or ``#id``),
invoices and credit notes by number (``INV-2026-000123``) or id.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from core import audit, billing, charges, credit_notes, customers, invoices, ledger, promos, services, validate
from core.cli import Group, _actor, _emit_json, _listing, _money, _out, cli, customers_group, open_database
from core.clock import today
from core.models import BILLING_MODES
from core.money import Money


# --- customers show / promo ----------------------------------------------------------

@customers_group.command("show")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
def customers_show(customer, as_json):
    """Show a customer with their services, recent invoices, promo codes and balance."""
    open_database()
    c = customers.find(customer)
    data = customers.as_dict(c)
    data["balance"] = ledger.balance(c).to_dict()
    data["services"] = [services.as_dict(s) for s in services.listing(c)]
    data["invoices"] = [invoices.as_dict(i) for i in invoices.listing(c, limit=20)]
    data["promos"] = [promos.as_dict(p) for p in c.promos]
    if as_json:
        _emit_json(data)
        return
    click.echo(f"{c.account_number}  {c.name}  ({c.currency}, {c.state})")
    click.echo(f"balance: {_money(data['balance'])}")
    for s in data["services"]:
        click.echo(f"service {s['id']}: {s['plan']} v{s['plan_version']} {s['status']} {s['billing_mode']} "
                   f"next bill {s['next_bill_date'] or '-'}")
    for i in data["invoices"]:
        click.echo(f"invoice {i['number']}: {i['status']} total {_money(i['total'])} due {_money(i['due'])}")


@customers_group.command("promo")
@click.argument("customer")
@click.argument("code")
@click.option("--on", help="Date the code applies from (default today).")
@click.option("--json", "as_json", is_flag=True)
def customers_promo(customer, code, on, as_json):
    """Attach promo CODE to CUSTOMER (the pricing plugins say what it is worth)."""
    open_database()
    c = customers.find(customer)
    with audit.acting_as(_actor()):
        row = promos.redeem(c, code, on=on)
    _out(promos.as_dict(row), f"promo code {row.code} attached to {c.account_number}", as_json)


# --- services ----------------------------------------------------------------------

@cli.group(cls=Group)
def services_group():
    """Subscribe customers to plans, change plans, cancel."""


cli.add_command(services_group, "services")


@services_group.command("add")
@click.argument("customer")
@click.argument("plan")
@click.option("--start", "start_date", help="First day of service (default today).")
@click.option("--anchor-day", help="Day of the month monthly periods start (default: the start day).")
@click.option("--billing", "billing_mode", type=click.Choice(BILLING_MODES), default="postpaid", show_default=True)
@click.option("--price", "price_override", help="A price for this service instead of the plan's.")
@click.option("--username")
@click.option("--password")
@click.option("--ip-address")
@click.option("--json", "as_json", is_flag=True)
def services_add(customer, plan, as_json, **options):
    """Subscribe CUSTOMER to PLAN (a plan code, or code@version)."""
    open_database()
    c = customers.find(customer)
    with audit.acting_as(_actor()):
        s = services.add(customer=c, plan=plan, **options)
    _out(services.as_dict(s), f"created service {s.id}: {c.account_number} on {s.plan.code} "
                              f"from {s.start_date}, next bill {s.next_bill_date}", as_json)


@services_group.command("list")
@click.option("--customer", help="Only this customer's services.")
@click.option("--json", "as_json", is_flag=True)
def services_list(customer, as_json):
    """List services, newest first."""
    open_database()
    c = customers.find(customer) if customer else None
    _listing(services.listing(c), services.as_dict,
             lambda s: f"{s.id}\t{s.customer.account_number}\t{s.plan.code}\tv{s.plan.version}\t{s.status}\t"
                       f"{s.billing_mode}\t{s.next_bill_date or '-'}", as_json)


def _change_report(result) -> dict:
    return {"effective": result["effective"].isoformat(), "upgrade": result["upgrade"],
            "credit_notes": [credit_notes.as_dict(n) for n in result["credit_notes"]],
            "charges": [charges.as_dict(ch) for ch in result["charges"]]}


@services_group.command("change")
@click.argument("service_id")
@click.argument("plan")
@click.option("--on", help="Day the change takes effect (default today).")
@click.option("--now", is_flag=True, help="Make a downgrade take effect at once rather than at renewal.")
@click.option("--at-renewal", is_flag=True, help="Change when the current period ends, even for an upgrade.")
@click.option("--json", "as_json", is_flag=True)
def services_change(service_id, plan, on, now, at_renewal, as_json):
    """Move service SERVICE_ID to PLAN; upgrades take effect at once, downgrades at renewal."""
    open_database()
    with audit.acting_as(_actor()):
        result = services.change_plan(services.get(service_id), plan, on=on, now=now, at_renewal=at_renewal)
    data = _change_report(result)
    text = f"service {service_id} moves to {plan} on {data['effective']}"
    for n in data["credit_notes"]:
        text += f"\ncredit note {n['number']}: {_money(n['total'])}"
    for ch in data["charges"]:
        text += f"\ncharge: {ch['description']}: {_money(ch['amount'])}"
    _out(data, text, as_json)


@services_group.command("cancel")
@click.argument("service_id")
@click.option("--on", help="Last day + 1: the first day without service (default today).")
@click.option("--at-period-end", is_flag=True, help="End when the current period ends.")
@click.option("--reason", default="")
@click.option("--json", "as_json", is_flag=True)
def services_cancel(service_id, on, at_period_end, reason, as_json):
    """End service SERVICE_ID; days already billed after the end are credited."""
    open_database()
    with audit.acting_as(_actor()):
        result = services.cancel(services.get(service_id), on=on, at_period_end=at_period_end, reason=reason)
    data = {"end_date": result["end_date"].isoformat(),
            "credit_notes": [credit_notes.as_dict(n) for n in result["credit_notes"]]}
    _out(data, f"service {service_id} ends on {data['end_date']}", as_json)


# --- charges -----------------------------------------------------------------------

@cli.group(cls=Group)
def charges_group():
    """One-off charges for the next invoice."""


cli.add_command(charges_group, "charges")


@charges_group.command("add")
@click.argument("customer")
@click.option("--description", required=True)
@click.option("--amount", required=True, help="Unit price in the customer's currency, e.g. 2,500.00.")
@click.option("--quantity", default="1", show_default=True)
@click.option("--tax-category", default="standard", show_default=True)
@click.option("--date", "charge_date", help="Bill on the first run on or after this date (default today).")
@click.option("--service", "service_id", help="The service the charge is for.")
@click.option("--json", "as_json", is_flag=True)
def charges_add(customer, service_id, as_json, **options):
    """Add a one-off charge to CUSTOMER's next invoice."""
    open_database()
    c = customers.find(customer)
    service = services.get(service_id) if service_id else None
    with audit.acting_as(_actor()):
        ch = charges.add(customer=c, service=service, **options)
    _out(charges.as_dict(ch), f"charge {ch.id}: {ch.description} {Money(ch.amount_minor, ch.currency)}", as_json)


# --- the billing run ---------------------------------------------------------------

@cli.command("bill")
@click.option("--as-of", help="Bill what is due on this date (default today).")
@click.option("--json", "as_json", is_flag=True)
def bill(as_of, as_json):
    """Bill every service and charge due as of a date: one invoice per customer."""
    open_database()
    day = validate.date(as_of, "--as-of", today())
    with audit.acting_as(_actor()):
        result = billing.run(day)
    data = result.as_dict()
    if as_json:
        _emit_json(data)
    else:
        click.echo(f"billed as of {day}: {result.invoices} invoice(s) in {result.seconds:.2f} s")
        for account, reason in sorted(result.failures.items()):
            click.echo(f"not billed: {account}: {reason}", err=True)
    if result.failures:
        sys.exit(1)


# --- invoices ----------------------------------------------------------------------

@cli.group(cls=Group)
def invoices_group():
    """List, show and print invoices."""


cli.add_command(invoices_group, "invoices")


@invoices_group.command("list")
@click.option("--customer")
@click.option("--status", type=click.Choice(("draft", "issued", "paid", "void")))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True)
def invoices_list(customer, status, limit, as_json):
    """List invoices, newest first."""
    open_database()
    c = customers.find(customer) if customer else None
    _listing(invoices.listing(c, status, limit), invoices.as_dict,
             lambda i: f"{i.display_number or i.id}\t{i.customer.account_number}\t{i.status}\t"
                       f"{i.issue_date or '-'}\t{Money(i.total_minor, i.currency)}", as_json)


@invoices_group.command("show")
@click.argument("invoice")
@click.option("--json", "as_json", is_flag=True)
def invoices_show(invoice, as_json):
    """Show an invoice with its lines and taxes."""
    from core import paylinks

    open_database()
    inv = invoices.find(invoice)
    data = invoices.as_dict(inv, lines=True)
    data["pay_url"] = paylinks.url_for(inv) if inv.number is not None else None
    if as_json:
        _emit_json(data)
        return
    click.echo(f"{data['number']}  {data['status']}  issued {data['issue_date']}  due {data['due_date']}")
    for line in data["lines"]:
        click.echo(f"  {line['position']:>3}  {line['description']}  {_money(line['amount'])}")
    for tax in data["taxes"]:
        click.echo(f"       {tax['name']} {tax['rate']} on {_money(tax['taxable'])}: {_money(tax['tax'])}")
    click.echo(f"  subtotal {_money(data['subtotal'])}  tax {_money(data['tax'])}  total {_money(data['total'])}"
               f"  due {_money(data['due'])}")
    if data["pay_url"]:
        click.echo(f"  pay link: {data['pay_url']}")


@invoices_group.command("pdf")
@click.argument("invoice")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Default: NUMBER.pdf")
@click.option("--json", "as_json", is_flag=True)
def invoices_pdf(invoice, output, as_json):
    """Write an invoice as a PDF file."""
    from core import documents

    open_database()
    inv = invoices.find(invoice)
    path = Path(output or f"{inv.display_number or inv.id}.pdf")
    try:
        path.write_bytes(documents.invoice_pdf(inv))
    except OSError as exc:
        raise click.UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    _out({"invoice": inv.display_number, "path": str(path)}, f"wrote {path}", as_json)


# --- credit notes ------------------------------------------------------------------

@cli.group(cls=Group)
def credit_notes_group():
    """Correct issued invoices."""


cli.add_command(credit_notes_group, "credit-notes")


@credit_notes_group.command("add")
@click.argument("invoice")
@click.option("--reason", required=True)
@click.option("--amount", help="Credit this much (tax included), spread over the lines.")
@click.option("--line", "line_parts", multiple=True, metavar="POSITION[=AMOUNT]",
              help="Credit one line (all that is left of it, or AMOUNT before tax); repeatable.")
@click.option("--void", is_flag=True, help="Void the whole invoice (only when nothing is paid on it).")
@click.option("--json", "as_json", is_flag=True)
def credit_notes_add(invoice, reason, amount, line_parts, void, as_json):
    """Issue a credit note for INVOICE: whole (default), by lines, or an amount."""
    open_database()
    inv = invoices.find(invoice)
    by_position = {line.position: line for line in inv.lines}
    parts = []
    for spec in line_parts:
        position, _, value = spec.partition("=")
        pos = validate.integer(position, "--line", minimum=1)
        if pos not in by_position:
            raise click.UsageError(f"invoice {inv.display_number} has no line {pos}")
        parts.append(credit_notes.Part(by_position[pos].id,
                                       validate.money(value, inv.currency, "--line") if value else None))
    money = validate.money(amount, inv.currency, "--amount") if amount else None
    with audit.acting_as(_actor()):
        note = credit_notes.issue(inv, reason=reason, parts=parts or None, amount=money, void=void)
    data = credit_notes.as_dict(note)
    _out(data, f"credit note {data['number']} for {inv.display_number}: {_money(data['total'])}", as_json)


# --- ledger ------------------------------------------------------------------------

@cli.command("ledger")
@click.argument("customer")
@click.option("--json", "as_json", is_flag=True)
def ledger_cmd(customer, as_json):
    """Show CUSTOMER's ledger with the running balance."""
    open_database()
    c = customers.find(customer)
    rows = ledger.entries(c)
    if as_json:
        _emit_json({"customer": c.account_number, "balance": ledger.balance(c).to_dict(), "entries": rows})
        return
    for r in rows:
        click.echo(f"{r['at']}\t{r['kind']}\t{_money(r['amount'])}\t{_money(r['balance'])}\t{r['description']}")
    click.echo(f"balance: {ledger.balance(c)}")

