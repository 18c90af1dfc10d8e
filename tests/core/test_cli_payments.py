"""The payment commands: record, list, show, receipt, refund, import, review, gateways."""

from __future__ import annotations

import json

from pypdf import PdfReader

from core.models import AuditEvent, CreditNote, Invoice, Payment, PaymentReview, Refund
from tests.factories import make_customer, make_issued_invoice


def _setup(db):
    from core import settings

    c = make_customer(name="Juma Otieno")
    inv = make_issued_invoice(c, 200_000)
    settings.set_value("bank.currency", "kes")
    db.close()
    return c, inv


def test_payments_add_list_show_and_receipt(db, cli, tmp_path):
    c, inv = _setup(db)
    result = cli("payments", "add", c.account_number, "--amount", "1,500.00", "--method", "cheque",
                 "--reference", "CHQ-77", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["created"] and data["amount"]["minor"] == 150_000 and data["allocations"][0]["invoice"] == \
        inv.display_number
    again = cli("payments", "add", c.account_number, "--amount", "1,500.00", "--method", "cheque",
                "--reference", "CHQ-77")
    assert again.exit_code == 0 and "already recorded as" in again.output
    listed = cli("payments", "list", "--customer", c.account_number)
    assert listed.exit_code == 0 and listed.output.count("CHQ-77") == 1
    receipt = data["receipt"]
    shown = cli("payments", "show", receipt)
    assert shown.exit_code == 0 and f"paid {inv.display_number}: KES 1,500.00" in shown.output
    assert cli("payments", "show", "manual:CHQ-77").exit_code == 0

    pdf = tmp_path / "r.pdf"
    assert cli("payments", "receipt", receipt, "-o", str(pdf)).exit_code == 0
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert receipt in text and "CHQ-77" in text and "Cheque" in text and "1,500.00" in text
    html = tmp_path / "r.html"
    assert cli("payments", "receipt", receipt, "-o", str(html)).exit_code == 0
    assert "Juma Otieno" in html.read_text() and receipt in html.read_text()


def test_bad_payment_input_exits_2_and_writes_nothing(db, cli):
    c, inv = _setup(db)
    for args, message in (
        (("payments", "add", "NOPE", "--amount", "10"), "no customer"),
        (("payments", "add", c.account_number, "--amount", "-5"), "more than zero"),
        (("payments", "add", c.account_number, "--amount", "0"), "more than zero"),
        (("payments", "add", c.account_number, "--amount", "1.005"), "decimal"),
        (("payments", "add", c.account_number, "--amount", "10", "--method", "barter"), "barter"),
        (("payments", "add", c.account_number, "--amount", "10", "--invoice", "INV-1999-000001"), "no invoice"),
        (("payments", "add", c.account_number, "--amount", "10", "--received-on", "31/02"), "received-on"),
        (("payments", "refund", "RCT-2026-999999", "--reason", "x"), "no payment"),
        (("payments", "review", "accept", "42"), "no review entry"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert Payment.select().count() == 0
    assert AuditEvent.select().where(AuditEvent.action.startswith("payment")).count() == 0


def test_refund_from_the_cli(db, cli):
    c, inv = _setup(db)
    data = json.loads(cli("payments", "add", c.account_number, "--amount", "2,000.00", "--json").output)
    over = cli("payments", "refund", data["receipt"], "--amount", "2,500.00", "--reason", "x")
    assert over.exit_code == 2 and "left to refund" in over.output
    result = cli("payments", "refund", data["receipt"], "--amount", "500.00", "--reason", "outage", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["amount"]["minor"] == 50_000
    assert Refund.get().reason == "outage" and CreditNote.get().total_minor == 50_000
    assert Payment.get().status == "partially_refunded" and Invoice.get().status == "paid"


def test_import_a_bank_statement_and_review_what_is_left(db, cli, tmp_path):
    c, inv = _setup(db)
    statement = tmp_path / "march.csv"
    statement.write_text(
        "date,amount,reference,payer,id\n"
        f"2026-03-02,\"1,000.00\",{c.account_number},J OTIENO,B-1\n"
        f"2026-03-03,500.00,PAYMENT FOR {inv.display_number} THANKS,J OTIENO,B-2\n"
        "2026-03-03,-300.00,BANK CHARGES,,B-3\n"
        "2026-03-04,250.00,school fees,UNKNOWN,B-4\n", encoding="utf-8")
    result = cli("payments", "import", str(statement), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["rows"], data["recorded"], data["held"][0]["reason"]) == (3, 2, "no customer matches account 'school fees'")
    assert Invoice.get_by_id(inv.id).settled_minor == 150_000
    again = cli("payments", "import", str(statement))
    assert again.exit_code == 0 and "0 recorded, 3 already recorded" in again.output

    listed = cli("payments", "review", "list")
    assert "school fees" in listed.output
    review_id = PaymentReview.get().id
    accepted = cli("payments", "review", "accept", str(review_id), "--customer", c.account_number,
                   "--note", "school fees paid to the wrong account")
    assert accepted.exit_code == 0, accepted.output
    assert Invoice.get_by_id(inv.id).settled_minor == 175_000
    twice = cli("payments", "review", "reject", str(review_id), "--reason", "no")
    assert twice.exit_code == 2 and "already accepted" in twice.output


def test_a_malformed_statement_records_nothing(db, cli, tmp_path):
    c, _inv = _setup(db)
    for text, message in (
        (f"date,amount,reference\n2026-03-02,100.00,{c.account_number}\n2026-03-03,ten,{c.account_number}\n",
         "line 3: amount"),
        (f"date,amount,reference\n03/02/2026,100.00,{c.account_number}\n", "does not match %Y-%m-%d"),
        ("when,how much\n2026-03-02,1\n", "no column 'date'"),
        ("", "is empty"),
    ):
        path = tmp_path / "bad.csv"
        path.write_text(text, encoding="utf-8")
        result = cli("payments", "import", str(path))
        assert result.exit_code == 2 and message in result.output, (text, result.output)
    path.write_bytes(b"date,amount,reference\n2026-03-02,1.00,\xff\xfe\n")
    assert "not UTF-8" in cli("payments", "import", str(path)).output
    assert Payment.select().count() == 0 and PaymentReview.select().count() == 0


def test_bank_statement_settings(db, cli, tmp_path):
    c, _inv = _setup(db)
    for key, value in (("bank.date_format", "%d/%m/%Y"), ("bank.delimiter", ";"), ("bank.id_column", ""),
                       ("bank.reference_column", "Narrative"), ("bank.amount_column", "Credit")):
        assert cli("settings", "set", key, value).exit_code == 0
    assert cli("settings", "set", "bank.date_format", "%Y").exit_code == 2
    assert cli("settings", "set", "bank.delimiter", ";;").exit_code == 2
    path = tmp_path / "s.csv"
    path.write_text(f"Date;Narrative;Debit;Credit\n02/03/2026;{c.account_number.lower()};;100.00\n"
                    f"02/03/2026;{c.account_number.lower()};;100.00\n03/03/2026;fee;5.00;\n", encoding="utf-8")
    data = json.loads(cli("payments", "import", str(path), "--json").output)
    # two identical rows are two transfers; without a bank id each is told apart by its position
    assert (data["rows"], data["recorded"]) == (2, 2)
    assert json.loads(cli("payments", "import", str(path), "--json").output)["duplicate"] == 2


def test_gateways_list(db, cli):
    db.close()
    result = cli("gateways", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert {"manual", "bank", "stripe", "mpesa"} <= set(rows)
    assert rows["manual"]["can_refund"] and not rows["manual"]["online"]
    assert not rows["bank"]["webhooks"]
    text = cli("gateways", "list").output
    assert "manual" in text and "refunds" in text
