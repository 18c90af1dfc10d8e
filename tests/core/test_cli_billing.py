"""The billing commands end to end through the CLI, with --json, and their refusals."""

from __future__ import annotations

import json

import pytest
from pypdf import PdfReader

from core.models import CreditNote, Invoice, Service


def ok(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def billed(cli):
    cli("migrate")
    ok(cli("plans", "add", "--code", "home", "--name", "Home 10", "--kind", "internet", "--price", "3000",
           "--currency", "KES", "--json"))
    ok(cli("plans", "add", "--code", "fast", "--name", "Fast 20", "--kind", "internet", "--price", "4500",
           "--currency", "KES", "--json"))
    customer = ok(cli("customers", "add", "--name", "Wanjiru Kamau", "--currency", "KES", "--json"))
    return customer["account_number"]


def test_subscribe_bill_show_credit_and_ledger(cli, billed, tmp_path):
    account = billed
    service = ok(cli("services", "add", account, "home", "--start", "2026-01-15", "--anchor-day", "1",
                     "--billing", "prepaid", "--json"))
    assert (service["next_bill_date"], service["price"]) == ("2026-01-15", {"minor": 300000, "currency": "KES"})
    run = ok(cli("bill", "--as-of", "2026-01-15", "--json"))
    assert (run["invoices"], run["failures"]) == (1, {})
    assert ok(cli("bill", "--as-of", "2026-01-15", "--json"))["invoices"] == 0

    listed = ok(cli("invoices", "list", "--customer", account, "--json"))
    number = listed[0]["number"]
    assert number == "INV-2026-000001"
    shown = ok(cli("invoices", "show", number, "--json"))
    # 17 of 31 days of 3,000.00
    assert [(line["kind"], line["amount"]["minor"]) for line in shown["lines"]] == [("proration", 164516)]
    text = cli("invoices", "show", number)
    assert "KES 1,645.16" in text.output
    # the pay link is made once and kept: shown again, it is the same address
    assert shown["pay_url"].startswith("/pay/") and f"pay link: {shown['pay_url']}" in text.output
    assert cli("settings", "set", "web.base_url", "https://billing.example.net/").exit_code == 0
    assert ok(cli("invoices", "show", number, "--json"))["pay_url"] == \
        "https://billing.example.net" + shown["pay_url"]

    pdf = ok(cli("invoices", "pdf", number, "-o", str(tmp_path / "inv.pdf"), "--json"))
    unwritable = cli("invoices", "pdf", number, "-o", str(tmp_path / "missing" / "inv.pdf"))
    assert unwritable.exit_code == 2 and "cannot write" in unwritable.output
    page = PdfReader(pdf["path"]).pages[0].extract_text()
    assert "INV-2026-000001" in page and "1,645.16" in page

    changed = ok(cli("services", "change", str(service["id"]), "fast", "--on", "2026-01-25", "--json"))
    # Days 25-31 of January (offsets 24 to 31 of 31): F(31) - F(24).
    # Home back: 300000 - round(300000 * 24 / 31) = 300000 - 232258 = 67742
    # Fast on:   450000 - round(450000 * 24 / 31) = 450000 - 348387 = 101613
    assert changed["upgrade"] is True and changed["effective"] == "2026-01-25"
    assert [n["total"]["minor"] for n in changed["credit_notes"]] == [67742]
    assert [c["amount"]["minor"] for c in changed["charges"]] == [101613]

    note = ok(cli("credit-notes", "add", number, "--reason", "Outage", "--amount", "100", "--json"))
    assert note["total"] == {"minor": 10000, "currency": "KES"}
    ledger = ok(cli("ledger", account, "--json"))
    assert [e["kind"] for e in ledger["entries"]] == ["invoice", "credit_note", "credit_note"]
    assert ledger["balance"]["minor"] == 164516 - 67742 - 10000

    charge = ok(cli("charges", "add", account, "--description", "Router", "--amount", "2,500", "--json"))
    assert charge["amount"]["minor"] == 250000
    shown = ok(cli("customers", "show", account, "--json"))
    assert shown["services"][0]["plan"] == "fast" and shown["balance"] == ledger["balance"]

    cancelled = ok(cli("services", "cancel", str(service["id"]), "--on", "2026-01-26", "--at-period-end", "--json"))
    assert cancelled["end_date"] == "2026-02-01"
    services = ok(cli("services", "list", "--customer", account, "--json"))
    assert services[0]["end_date"] == "2026-02-01"


@pytest.mark.parametrize("args, message", [
    (["services", "add", "A999999", "home"], "no customer 'A999999'"),
    (["services", "add", "{account}", "nope"], "no plan 'nope'"),
    (["services", "add", "{account}", "home", "--start", "soon"], "start_date must be a date"),
    (["bill", "--as-of", "2026-13-01"], "--as-of must be a date"),
    (["invoices", "show", "INV-2026-000999"], "no invoice 'INV-2026-000999'"),
    (["credit-notes", "add", "INV-2026-000999", "--reason", "x"], "no invoice"),
    (["charges", "add", "{account}", "--description", "x", "--amount", "-3"], "amount"),
    (["customers", "promo", "{account}", "NOPE"], "unknown promo code 'NOPE'"),
    (["services", "change", "999", "fast"], "no service 999"),
    (["invoices", "pdf", "1", "-o", "/nonexistent/dir/x.pdf"], "no invoice '1'"),
])
def test_bad_arguments_exit_2_and_write_nothing(cli, billed, args, message):
    args = [a.replace("{account}", billed) for a in args]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert Service.select().count() == 0 and Invoice.select().count() == 0 and CreditNote.select().count() == 0


def test_bill_exits_1_and_names_customers_it_could_not_bill(cli, billed):
    ok(cli("plans", "add", "--code", "usd", "--name", "Dollar", "--kind", "internet", "--price", "30",
           "--currency", "USD", "--json"))
    service = ok(cli("services", "add", billed, "home", "--start", "2026-03-01", "--billing", "prepaid", "--json"))
    from core.db import database
    from core.models import Plan

    database.connect(reuse_if_open=True)
    Service.update(plan=Plan.get(Plan.code == "usd").id).where(Service.id == service["id"]).execute()
    database.close()
    result = cli("bill", "--as-of", "2026-03-01")
    assert result.exit_code == 1
    assert f"not billed: {billed}: service {service['id']} is priced in USD, the customer in KES" in result.output
