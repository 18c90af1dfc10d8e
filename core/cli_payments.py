"""The payment commands of ``wispbill``: record, list, refund, import, review; and the gateways.

Payments are named by receipt number (``RCT-2026-000042``), id, or ``gateway:reference``.
"""

from __future__ import annotations

from pathlib import Path

import click

from core import audit, customers, gateways, invoices, payments, receipts, refunds, reviews, validate
from core.cli import Group, _actor, _emit_json, _listing, _out, cli, open_database
from core.hooktypes import Notification
from core.money import Money


@cli.group(cls=Group)
def payments_group():
    """Record payments, refund them, import bank statements, review held money."""


cli.add_command(payments_group, "payments")


@payments_group.command("add")
@click.argument("customer")
@click.option("--amount", required=True, help="Amount received, e.g. 2,500.00 (in the customer's currency).")
@click.option("--method", type=click.Choice(payments.MANUAL_METHODS), default="cash", show_default=True)
@click.option("--reference", help="Cheque number, transfer or mobile money reference (default: generated).")
@click.option("--invoice", help="The invoice this pays first (default: the oldest open ones).")
@click.option("--received-on", help="Date the money was received (default today).")
@click.option("--note")
@click.option("--json", "as_json", is_flag=True)
def payments_add(customer, amount, method, reference, invoice, received_on, note, as_json):
    """Record money CUSTOMER paid by hand; it pays their oldest open invoices."""
    open_database()
    c = customers.find(customer)
    money = validate.money(amount, c.currency, "--amount", allow_zero=False)
    inv = invoices.find(invoice) if invoice else None
    day = validate.date(received_on, "--received-on") if received_on else None
    with audit.acting_as(_actor()):
        payment, created = payments.add_manual(c, money, method=method, reference=reference, invoice=inv,
                                               received_on=day, note=note)
    data = payments.as_dict(payment) | {"created": created}
    verb = "recorded" if created else "already recorded as"
    _out(data, f"{verb} payment {payment.receipt}: {money} from {c.account_number} (reference "
               f"{payment.reference})", as_json)


@payments_group.command("list")
@click.option("--customer")
@click.option("--gateway")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True)
def payments_list(customer, gateway, limit, as_json):
    """List payments, newest first."""
    open_database()
    c = customers.find(customer) if customer else None
    _listing(payments.listing(c, gateway, limit), payments.as_dict,
             lambda p: f"{p.receipt or p.id}\t{p.customer.account_number if p.customer_id else '-'}\t{p.gateway}\t"
                       f"{p.reference}\t{p.status}\t{Money(p.amount_minor, p.currency)}\t"
                       f"{p.received_at:%Y-%m-%d}", as_json)


@payments_group.command("show")
@click.argument("payment")
@click.option("--json", "as_json", is_flag=True)
def payments_show(payment, as_json):
    """Show a payment with what it paid and its refunds."""
    open_database()
    data = payments.as_dict(payments.find(payment))
    if as_json:
        _emit_json(data)
        return
    click.echo(f"{data['receipt']}  {data['account_number']}  {data['gateway']} {data['reference']}  {data['status']}")
    click.echo(f"  received {data['received_at']}  amount {Money.from_dict(data['amount'])}"
               f"  unallocated {Money.from_dict(data['unallocated'])}")
    for a in data["allocations"]:
        click.echo(f"  paid {a['invoice']}: {Money.from_dict(a['amount'])}")
    for r in data["refunds"]:
        click.echo(f"  refund {r['reference']}: {Money.from_dict(r['amount'])} ({r['reason'] or ''})")


@payments_group.command("receipt")
@click.argument("payment")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Default: RECEIPT.pdf; a name ending in .html writes the page instead.")
@click.option("--json", "as_json", is_flag=True)
def payments_receipt(payment, output, as_json):
    """Write a payment's receipt as a PDF (or HTML) file."""
    open_database()
    p = payments.find(payment)
    if p.customer_id is None:
        raise click.UsageError(f"payment {payment} has no customer, so no receipt")
    path = Path(output or receipts.receipt_filename(p))
    try:
        if path.suffix.lower() in (".html", ".htm"):
            path.write_text(receipts.receipt_html(p), encoding="utf-8")
        else:
            path.write_bytes(receipts.receipt_pdf(p))
    except OSError as exc:
        raise click.UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    _out({"receipt": p.receipt, "path": str(path)}, f"wrote {path}", as_json)


@payments_group.command("refund")
@click.argument("payment")
@click.option("--amount", help="How much to refund (default: all that is left).")
@click.option("--reason", required=True)
@click.option("--outside", "outside_reference", metavar="REFERENCE",
              help="The money was returned outside wispbill: record it with this reference.")
@click.option("--json", "as_json", is_flag=True)
def payments_refund(payment, amount, reason, outside_reference, as_json):
    """Refund PAYMENT through its gateway (or record a refund made outside wispbill)."""
    open_database()
    p = payments.find(payment)
    money = validate.money(amount, p.currency, "--amount", allow_zero=False) if amount else None
    with audit.acting_as(_actor()):
        row = refunds.refund(p, money, reason=reason, outside_reference=outside_reference)
    data = {"refund_id": row.id, "reference": row.reference, "payment": p.receipt,
            "amount": Money(row.amount_minor, row.currency).to_dict()}
    _out(data, f"refunded {Money(row.amount_minor, row.currency)} of {p.receipt} (reference {row.reference})",
         as_json)


@payments_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--gateway", default="bank", show_default=True, help="The gateway that reads the file.")
@click.option("--json", "as_json", is_flag=True)
def payments_import(file, gateway, as_json):
    """Import a statement FILE: matched transfers are recorded, the others held for review."""
    open_database()
    path = Path(file)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    notices = gateways.parse_notification(gateway, Notification(gateway, body, {"Content-Type": "text/csv"},
                                                                path=path.name))
    with audit.acting_as(_actor()):
        outcomes = payments.record(notices)
    counts = payments.outcome_counts(outcomes)
    data = {"file": str(path), "rows": len(notices), **counts,
            "held": [{"reference": o.reference, "review_id": o.review_id, "reason": o.reason}
                     for o in outcomes if o.status == "held"]}
    if as_json:
        _emit_json(data)
        return
    click.echo(f"{path.name}: {len(notices)} transfer(s): {counts['recorded']} recorded, "
               f"{counts['duplicate']} already recorded, {counts['held']} held for review")
    for h in data["held"]:
        click.echo(f"held #{h['review_id']}: {h['reason']}")


# --- the review queue --------------------------------------------------------------

@payments_group.group("review", cls=Group)
def review_group():
    """Money that needs a person: unmatched transfers, unexpected amounts."""


@review_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include entries already decided.")
@click.option("--json", "as_json", is_flag=True)
def review_list(show_all, as_json):
    """List held payments, oldest first."""
    open_database()
    _listing(reviews.listing(None if show_all else "open"), reviews.as_dict,
             lambda r: f"#{r.id}\t{r.status}\t{r.gateway}\t{r.reference}\t{Money(r.amount_minor, r.currency)}\t"
                       f"{r.account or '-'}\t{r.reason}", as_json)


@review_group.command("accept")
@click.argument("entry")
@click.option("--customer", help="Who paid (default: the customer the notice suggested).")
@click.option("--invoice", help="The invoice it pays first.")
@click.option("--note", default="")
@click.option("--json", "as_json", is_flag=True)
def review_accept(entry, customer, invoice, note, as_json):
    """Apply held ENTRY (an id from 'review list') to a customer."""
    open_database()
    row = reviews.get(entry)
    c = customers.find(customer) if customer else None
    inv = invoices.find(invoice) if invoice else None
    with audit.acting_as(_actor()):
        row = reviews.accept(row, c, inv, note)
    _out(reviews.as_dict(row), f"entry #{row.id} accepted as payment {row.payment_id} for {row.customer.account_number}",
         as_json)


@review_group.command("reject")
@click.argument("entry")
@click.option("--reason", required=True, help="What became of the money (returned to the payer, ...).")
@click.option("--json", "as_json", is_flag=True)
def review_reject(entry, reason, as_json):
    """Close held ENTRY without applying it."""
    open_database()
    with audit.acting_as(_actor()):
        row = reviews.reject(reviews.get(entry), reason)
    _out(reviews.as_dict(row), f"entry #{row.id} rejected", as_json)


# --- gateways ----------------------------------------------------------------------

@cli.group("gateways", cls=Group)
def gateways_group():
    """The payment gateways the plugins provide."""


@gateways_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def gateways_list(as_json):
    """List payment gateways: what each takes and whether it is set up."""
    open_database()
    rows = [{"name": g.name, "label": g.label, "currencies": list(g.currencies), "can_refund": g.can_refund,
             "can_charge_saved_method": g.can_charge_saved_method, "online": g.interactive,
             "configured": g.configured, "webhooks": g.webhooks, "settings": list(g.settings),
             "missing_settings": gateways.missing_settings(g)}
            for g in sorted(gateways.available().values(), key=lambda g: g.name)]
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        flags = [flag for flag, on in (("online", r["online"]), ("refunds", r["can_refund"]),
                                       ("not set up", not r["configured"])) if on]
        if r["missing_settings"]:
            flags.append("needs " + ", ".join(r["missing_settings"]))
        click.echo(f"{r['name']}\t{r['label']}\t{','.join(r['currencies']) or 'any currency'}\t{', '.join(flags)}")

