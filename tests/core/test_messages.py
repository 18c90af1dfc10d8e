"""Message templates: the shipped texts, operators' edits (checked, audited, reset) and their variables."""

from __future__ import annotations

import datetime as dt

import pytest

from core import audit, messages, settings
from core.db import database
from core.errors import NotFound, ValidationError
from core.models import AuditEvent, MessageTemplate, PayLink
from tests.factories import make_customer, make_issued_invoice, make_payment

NAMES = ("invoice", "receipt", "reminder", "throttled", "suspended", "restored", "terminated", "due_soon")


def test_every_template_the_system_sends_exists():
    assert set(NAMES) <= set(messages.TEMPLATES)
    for info in messages.TEMPLATES.values():
        assert {"company_name", "customer_name", "account_number"} <= set(info.variables)
        assert all(v in messages.VARIABLES for v in info.variables), info.name


@pytest.mark.parametrize("name", NAMES)
def test_shipped_text_renders_with_its_sample_values(name):
    subject, body = messages.shipped(name)
    assert subject and "\n" not in subject and body.strip()
    rendered_subject, rendered_body = messages.check(name, subject, body)
    assert "{{" not in rendered_subject + rendered_body and "{%" not in rendered_body
    assert "Amina Wanjiku" in rendered_body and "Example Networks" in rendered_body
    assert "\n\n\n" not in rendered_body and rendered_body.endswith("\n") and not rendered_body.startswith("\n")


def test_shipped_texts_use_their_key_variables():
    def sample(name):
        return messages.render_text(*messages.shipped(name), messages.sample_context(name))

    subject, body = sample("invoice")
    assert subject == "Invoice INV-2026-000123 from Example Networks"
    assert "KES 2,500.00" in body and "2026-03-15" in body and "https://billing.example.net/pay/sample-token" in body
    subject, body = sample("receipt")
    assert "RCT-2026-000042" in subject and "QK7TX31ABC" in body and "You still owe KES 500.00." in body
    assert "2026-03-15 (12 days ago)" in sample("reminder")[1]
    assert "3 days" in sample("due_soon")[1]
    assert "suspended" in sample("suspended")[0]


def test_unknown_template_is_not_found(db):
    with pytest.raises(NotFound, match="no message template 'welcome'.*invoice"):
        messages.get("welcome")
    with pytest.raises(NotFound):
        messages.save("welcome", subject="Hi")


# --- editing -------------------------------------------------------------------------

def test_an_edit_is_used_audited_and_reset(db):
    with audit.acting_as("cli:ops"):
        saved = messages.save("receipt", subject="Thanks, {{ customer_name }}: {{ amount }} received")
    assert saved.edited and saved.updated_by == "cli:ops"
    assert saved.body == messages.shipped("receipt")[1]  # the body was left as it was
    context = messages.sample_context("receipt")
    assert messages.render("receipt", context)[0] == "Thanks, Amina Wanjiku: KES 2,500.00 received"

    first = AuditEvent.get(AuditEvent.action == "template.set")
    assert (first.actor, first.object_type, first.object_id) == ("cli:ops", "message_template", "receipt")
    assert first.before is None and first.after["subject"].startswith("Thanks,")

    messages.save("receipt", body="Receipt {{ receipt_number }}\n")
    second = AuditEvent.select().where(AuditEvent.action == "template.set").order_by(AuditEvent.id.desc()).get()
    assert second.before["subject"].startswith("Thanks,") and second.after["body"] == "Receipt {{ receipt_number }}\n"
    assert [t.name for t in messages.listing() if t.edited] == ["receipt"]

    assert messages.reset("receipt") is True
    assert MessageTemplate.select().count() == 0
    assert messages.get("receipt") == messages.Template("receipt", *messages.shipped("receipt"), edited=False)
    reset = AuditEvent.get(AuditEvent.action == "template.reset")
    assert reset.before["body"] == "Receipt {{ receipt_number }}\n" and reset.after is None
    assert messages.reset("receipt") is False  # nothing to reset: nothing written
    assert AuditEvent.select().where(AuditEvent.action == "template.reset").count() == 1


@pytest.mark.parametrize("subject, body, message", [
    ("Invoice {{ invoice_number", None, r"subject: syntax error on line 1"),
    (None, "Dear {{ customer_name }},\n{% if pay_url %}\nPay here\n", r"body: syntax error on line 3"),
    (None, "Dear {{ customer_name }}, you owe {{ secret_balance }}", r"unknown variable\(s\) secret_balance"),
    # found even in a branch the sample values do not take
    (None, "{% if not pay_url %}{{ internal_notes }}{% endif %}", r"unknown variable\(s\) internal_notes"),
    (None, "{{ receipt_number }}", r"unknown variable\(s\) receipt_number; the invoice template can use"),
    (None, "{{ customer_name.__class__.__mro__ }}", r"body: cannot be rendered: .*unsafe"),
    (None, "{{ customer_name | shout }}", r"No filter named 'shout'"),
    (None, "{{ amount_due + 1 }}", r"body: cannot be rendered"),
    ("{{ '' }}", None, r"subject: is empty once rendered"),
    ("Two\nlines", None, r"subject must be one line"),
    (None, "   ", r"body is required"),
    (None, "x" * 20_001, r"longer than 20,000"),
])
def test_a_broken_edit_is_refused_and_nothing_is_written(db, subject, body, message):
    with pytest.raises(ValidationError, match=message):
        messages.save("invoice", subject=subject, body=body)
    assert MessageTemplate.select().count() == 0
    assert AuditEvent.select().count() == 0
    assert not messages.get("invoice").edited


def test_a_refused_edit_leaves_an_earlier_edit_in_place(db):
    messages.save("reminder", subject="Overdue: {{ overdue_amount }}")
    with pytest.raises(ValidationError):
        messages.save("reminder", subject="Overdue: {{ overdue_amount }")
    assert messages.get("reminder").subject == "Overdue: {{ overdue_amount }}"
    assert AuditEvent.select().count() == 1


def test_render_names_the_template_when_the_context_lacks_a_variable(db):
    with pytest.raises(ValidationError, match="message template 'invoice' cannot be rendered: 'invoice_number'"):
        messages.render("invoice", {"company_name": "X", "customer_name": "Y", "account_number": "A1"})


def test_rendering_closes_up_empty_sections_and_keeps_the_subject_on_one_line():
    subject, body = messages.render_text("  Hello\n{{ customer_name }} ", "\n\nA\n\n\n\n{% if 0 %}x{% endif %}\nB  \n\n",
                                         {"customer_name": "Amina"})
    assert subject == "Hello Amina"
    assert body == "A\n\nB\n"


# --- variables from the database ------------------------------------------------------

def test_invoice_variables_with_and_without_a_public_address(db):
    settings.set_value("company.name", "Kijiji Net")
    customer = make_customer(name="Juma Otieno", email="juma@example.org")
    invoice = make_issued_invoice(customer, 250_000, due_date=dt.date(2026, 3, 15))
    context = messages.invoice_context(invoice, today=dt.date(2026, 3, 12))
    assert context | {"pay_url": None} == {
        "company_name": "Kijiji Net", "customer_name": "Juma Otieno", "account_number": customer.account_number,
        "invoice_number": invoice.display_number, "invoice_total": "KES 2,500.00", "amount_due": "KES 2,500.00",
        "issue_date": "2026-03-01", "due_date": "2026-03-15", "period": "", "is_paid": False,
        "days_until_due": 3, "pay_url": None}
    assert context["pay_url"] == ""  # no web.base_url: a relative link is no use in a message
    assert PayLink.select().count() == 0

    settings.set_value("web.base_url", "https://billing.example.net/")
    url = messages.invoice_context(invoice)["pay_url"]
    assert url.startswith("https://billing.example.net/pay/") and url.endswith(PayLink.get().token)


def test_receipt_and_account_variables(db):
    customer = make_customer(email="amina@example.org")
    make_issued_invoice(customer, 300_000, due_date=dt.date(2026, 3, 1))
    make_issued_invoice(customer, 100_000, due_date=dt.date(2026, 4, 1))
    payment = make_payment(customer, amount_minor=50_000, method="mobile_money", reference="QK7")
    context = messages.payment_context(payment)
    assert (context["amount"], context["payment_method"], context["payment_reference"]) == (
        "KES 500.00", "Mobile money", "QK7")
    assert context["balance_due"] == "KES 4,000.00" and context["account_credit"] == ""  # no ledger entry made

    account = messages.account_context(customer, today=dt.date(2026, 3, 13))
    assert (account["overdue_amount"], account["days_overdue"], account["oldest_due_date"]) == (
        "KES 3,000.00", 12, "2026-03-01")
    assert account["state"] == "active"
    # An event's payload wins over what the database says now.
    facts = {"to_state": "suspended", "overdue_minor": 123_400, "currency": "KES", "days_overdue": 20,
             "oldest_due_date": None}
    account = messages.account_context(customer, facts, today=dt.date(2026, 3, 13))
    assert (account["state"], account["overdue_amount"], account["days_overdue"], account["oldest_due_date"]) == (
        "suspended", "KES 1,234.00", 20, "")


def test_preview_for_a_customer_needs_something_to_show(db):
    customer = make_customer()
    with pytest.raises(ValidationError, match="has no issued invoice"):
        messages.preview_context("invoice", customer)
    with pytest.raises(ValidationError, match="has no payment"):
        messages.preview_context("receipt", customer)
    assert messages.preview_context("suspended", customer)["overdue_amount"] == "KES 0.00"
    invoice = make_issued_invoice(customer, 10_000)
    assert messages.preview_context("due_soon", customer)["invoice_number"] == invoice.display_number
    assert not database.in_transaction()


# --- the templates commands -----------------------------------------------------------

@pytest.mark.parametrize("args", [["templates"], ["templates", "list"], ["templates", "show"], ["templates", "set"],
                                  ["templates", "reset"], ["templates", "preview"]], ids=" ".join)
def test_template_commands_have_help(args):
    from click.testing import CliRunner

    from core.cli import cli

    result = CliRunner().invoke(cli, args + ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and "--help" in result.output


def test_templates_list_show_set_reset(db, cli, tmp_path):
    import getpass
    import json

    db.close()
    listed = json.loads(cli("templates", "list", "--json").output)
    assert [t["name"] for t in listed][:3] == ["invoice", "due_soon", "receipt"]
    assert not any(t["edited"] for t in listed) and "pay_url" in listed[0]["variables"]
    shown = cli("templates", "show", "invoice")
    assert shown.exit_code == 0
    assert "invoice (shipped text), sent when an invoice was issued" in shown.output
    assert "Subject: Invoice {{ invoice_number }} from {{ company_name }}" in shown.output
    assert "  pay_url\tthe invoice's pay link" in shown.output

    body = tmp_path / "body.txt"
    body.write_text("Jambo {{ customer_name }}, invoice {{ invoice_number }}: {{ amount_due }}\n", encoding="utf-8")
    saved = cli("templates", "set", "invoice", "--subject", "Ankara {{ invoice_number }}", "--body-file", str(body))
    assert saved.exit_code == 0 and saved.output == "template invoice saved\n"
    data = json.loads(cli("templates", "show", "invoice", "--json").output)
    assert data["edited"] and data["subject"] == "Ankara {{ invoice_number }}" and data["body"].startswith("Jambo")
    assert AuditEvent.get(AuditEvent.action == "template.set").actor == f"cli:{getpass.getuser()}"
    assert "invoice\tedited\tAnkara {{ invoice_number }}" in cli("templates", "list").output
    preview = cli("templates", "preview", "invoice")
    assert preview.output == "Subject: Ankara INV-2026-000123\n\nJambo Amina Wanjiku, invoice INV-2026-000123: " \
                             "KES 2,500.00\n"

    reset = cli("templates", "reset", "invoice")
    assert reset.exit_code == 0 and reset.output == "template invoice reset to the shipped text\n"
    assert "nothing changed" in cli("templates", "reset", "invoice").output
    assert AuditEvent.select().where(AuditEvent.action == "template.reset").count() == 1


def test_bad_template_commands_exit_2_and_write_nothing(db, cli, tmp_path):
    db.close()
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("Caf\xe9 {{ customer_name }}".encode("latin-1"))
    broken = tmp_path / "broken.txt"
    broken.write_text("Dear {{ customer_name }\n", encoding="utf-8")
    for args, message in (
        (("templates", "show", "welcome"), "no message template 'welcome'"),
        (("templates", "set", "invoice"), "give --subject, --body-file or both"),
        (("templates", "set", "welcome", "--subject", "x"), "no message template 'welcome'"),
        (("templates", "set", "invoice", "--subject", "{{ invoice_number"), "subject: syntax error on line 1"),
        (("templates", "set", "invoice", "--subject", "{{ password }}"), "unknown variable(s) password"),
        (("templates", "set", "invoice", "--body-file", str(broken)), "body: syntax error on line 1"),
        (("templates", "set", "invoice", "--body-file", str(latin)), "not UTF-8"),
        (("templates", "set", "invoice", "--body-file", str(tmp_path / "missing.txt")), "missing.txt"),
        (("templates", "reset", "welcome"), "no message template"),
        (("templates", "preview", "welcome"), "no message template"),
        (("templates", "preview", "invoice", "--customer", "A999999"), "no customer 'A999999'"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    assert MessageTemplate.select().count() == 0 and AuditEvent.select().count() == 0


def test_preview_for_a_customer_leaves_no_trace(db, cli):
    settings.set_value("web.base_url", "https://billing.example.net")
    customer = make_customer(name="Juma Otieno")
    nothing = cli("templates", "preview", "invoice", "--customer", customer.account_number)
    assert nothing.exit_code == 2 and "has no issued invoice" in nothing.output
    invoice = make_issued_invoice(customer, 120_000)
    audits = AuditEvent.select().count()
    db.close()
    result = cli("templates", "preview", "invoice", "--customer", customer.account_number, "--json")
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.output)
    assert data["subject"] == f"Invoice {invoice.display_number} from My ISP"
    assert "Dear Juma Otieno," in data["body"] and "https://billing.example.net/pay/" in data["body"]
    assert PayLink.select().count() == 0 and AuditEvent.select().count() == audits
