"""The wispbill command: happy paths, --json, and bad input (exit 2, nothing written)."""

import json
import os
import subprocess
import sys

import pytest

from core.models import AuditEvent, Customer, Plan, User

COMMANDS = [
    [], ["init"], ["migrate"], ["serve"], ["scheduler"], ["plugins"], ["customers"], ["customers", "add"],
    ["customers", "list"], ["plans"], ["plans", "add"], ["plans", "list"], ["settings", "list"],
    ["settings", "set"], ["users", "add"], ["customers", "show"], ["customers", "promo"], ["services", "add"],
    ["services", "list"], ["services", "change"], ["services", "cancel"], ["charges", "add"], ["bill"],
    ["invoices", "list"], ["invoices", "show"], ["invoices", "pdf"], ["credit-notes", "add"], ["ledger"],
    ["backup"], ["restore"], ["doctor"], ["bench", "billing"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "wispbill")
def test_every_command_has_help(args):
    from click.testing import CliRunner

    from core.cli import cli

    result = CliRunner().invoke(cli, args + ["--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output and "--help" in result.output


def test_init_creates_admin_and_prints_generated_password_once(cli, db_url):
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert "admin login: admin" in result.output
    password = result.output.split("admin password: ")[1].split()[0]
    from core import users

    assert users.authenticate("admin", password) is not None
    again = cli("init")
    assert again.exit_code == 0
    assert "admin password" not in again.output
    assert User.select().count() == 1


def test_init_with_given_password_and_demo(cli):
    result = cli("init", "--admin-password", "a good long password", "--demo", "--currency", "KES")
    assert result.exit_code == 0, result.output
    assert "admin password" not in result.output
    assert Plan.select().count() >= 5 and Customer.select().where(Customer.currency == "KES").count() >= 5
    from core.models import Invoice, Service

    # every demo customer has services and an invoice; running init --demo again adds nothing
    assert Service.select(Service.customer).distinct().count() == 5
    assert Invoice.select(Invoice.customer).distinct().count() == 5
    from core.models import Payment

    # one demo customer paid in full and one in part, at the office
    assert Payment.select().count() == 2 and Invoice.select().where(Invoice.status == "paid").count() >= 1
    counts = (Service.select().count(), Invoice.select().count(), Payment.select().count())
    from core import demo
    from core.db import database

    with database.connection_context():
        assert demo.load("KES") == (0, 0)
        assert demo.portal_login() is None  # the demo customer's portal password was made once
    assert (Service.select().count(), Invoice.select().count(), Payment.select().count()) == counts
    # the demo customer can sign in to the portal with what init printed
    email = result.output.split("portal login: ")[1].split()[0]
    password = result.output.split("portal password: ")[1].split()[0]
    from core import portal_accounts

    with database.connection_context():
        assert portal_accounts.authenticate(email, password).name == demo.DEMO_PORTAL_CUSTOMER


def test_migrate_is_safe_to_rerun(cli):
    first = cli("migrate")
    assert first.exit_code == 0 and "applied 0001_initial" in first.output
    second = cli("migrate")
    assert second.exit_code == 0 and "applied" not in second.output
    check = cli("migrate", "--check")
    assert check.exit_code == 0 and "up to date" in check.output


def test_commands_refuse_an_unmigrated_database(cli):
    result = cli("customers", "list")
    assert result.exit_code == 1
    assert "run 'wispbill migrate'" in result.output


def test_customers_add_and_list_json(cli):
    cli("migrate")
    added = cli("customers", "add", "--name", "Grace Mwangi", "--currency", "kes", "--email", "g@example.org", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["currency"] == "KES"
    listed = cli("customers", "list", "--json")
    rows = json.loads(listed.output)
    assert [r["name"] for r in rows] == ["Grace Mwangi"]
    assert AuditEvent.get(AuditEvent.action == "customer.create").actor.startswith("cli")
    found = cli("customers", "list", "--search", "grace")
    assert "Grace Mwangi" in found.output
    assert cli("customers", "list", "--search", "nobody").output == ""


def test_plans_add_and_list_json(cli):
    cli("migrate")
    added = cli("plans", "add", "--code", "home-10", "--name", "Home 10", "--kind", "internet",
                "--price", "2,500.00", "--currency", "KES", "--download-kbps", "10000", "--upload-kbps", "2000")
    assert added.exit_code == 0, added.output
    rows = json.loads(cli("plans", "list", "--json").output)
    assert rows[0]["price"] == {"minor": 250000, "currency": "KES"}
    assert rows[0]["download_kbps"] == 10000


@pytest.mark.parametrize("args, message", [
    (["customers", "add", "--name", "X", "--currency", "ZZZ"], "unknown currency 'ZZZ'"),
    (["customers", "add", "--name", "X", "--currency", "KES", "--email", "nope"], "not an e-mail"),
    (["customers", "add", "--currency", "KES"], "Missing option '--name'"),
    (["customers", "list", "--limit", "0"], "--limit"),
    (["plans", "add", "--code", "a", "--name", "A", "--kind", "internet", "--price", "1.005", "--currency", "USD"],
     "at most 2 decimal places"),
    (["plans", "add", "--code", "a", "--name", "A", "--kind", "boat", "--price", "1", "--currency", "USD"],
     "Invalid value for '--kind'"),
    (["settings", "set", "billing.terms_days", "many"], "whole number"),
    (["settings", "set", "no.such.key", "1"], "unknown setting"),
    (["serve", "--port", "70000"], "--port"),
])
def test_bad_arguments_exit_2_and_write_nothing(cli, args, message):
    cli("migrate")
    before = AuditEvent.select().count()
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert AuditEvent.select().count() == before
    assert Customer.select().count() == 0 and Plan.select().count() == 0


def test_settings_set_and_list(cli):
    cli("migrate")
    assert cli("settings", "set", "company.name", "Kijiji Net").exit_code == 0
    rows = {r["key"]: r["value"] for r in json.loads(cli("settings", "list", "--json").output)}
    assert rows["company.name"] == "Kijiji Net"


def _run_wispbill(args, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WISPBILL_")}
    env.update({"WISPBILL_DATA_DIR": str(tmp_path), **env_extra})
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_unreachable_database_is_one_line_not_a_traceback(tmp_path):
    result = _run_wispbill(["migrate"], {"WISPBILL_DATABASE_URL": "postgresql://wb:secret@127.0.0.1:9/none"}, tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: cannot reach postgresql://wb:***@127.0.0.1:9/none")
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_missing_sqlite_directory_is_one_line(tmp_path):
    result = _run_wispbill(["migrate"], {"WISPBILL_DATABASE_URL": f"sqlite:///{tmp_path}/no/such/dir/x.db"}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot open sqlite:///{tmp_path}/no/such/dir/x.db: directory {tmp_path}/no/such/dir does not exist"]


def test_bad_config_value_exits_2(tmp_path):
    result = _run_wispbill(["plugins"], {"WISPBILL_DATABASE_URL": "mysql://x/y"}, tmp_path)
    assert result.returncode == 2
    assert "unsupported scheme 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--admin-password", "short"], "at least 10 characters"),
    (["--demo", "--currency", "XYZ"], "unknown currency 'XYZ'"),
])
def test_init_bad_arguments_touch_nothing(cli, empty_db, args, message):
    from core.db import table_names

    result = cli("init", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert table_names(empty_db) == []


def test_init_bad_admin_user_touches_nothing(cli, empty_db):
    from core.db import table_names

    result = cli("init", "--admin-user", "bad name!")
    assert result.exit_code == 2
    assert "--admin-user may hold letters" in result.output
    assert table_names(empty_db) == []


def test_init_creates_a_missing_data_dir(db_url, tmp_path, pm):
    from click.testing import CliRunner

    from core.cli import cli

    data_dir = tmp_path / "new" / "data"
    env = {"WISPBILL_DATABASE_URL": db_url, "WISPBILL_DATA_DIR": str(data_dir), "WISPBILL_SECRET_KEY": "k" * 32}
    result = CliRunner().invoke(cli, ["init", "--admin-password", "a good long password"], env=env)
    assert result.exit_code == 0, result.output
    assert data_dir.is_dir()


@pytest.mark.parametrize("args, code, message", [
    (["plans", "add", "--code", "a", "--name", "A", "--kind", "internet", "--price", "9" * 25, "--currency", "USD"],
     2, "too large"),
    (["plans", "add", "--code", "a", "--name", "A", "--kind", "internet", "--price", "1", "--currency", "USD",
      "--data-cap-mb", "9" * 19], 2, "too large"),
    (["serve", "--host", "no such host.invalid"], 2, "--host"),
    (["serve", "--portal-port", "8081", "--portal-host", "no such host.invalid"], 2, "--portal-host"),
    (["serve", "--portal-host", "0.0.0.0"], 2, "goes with --portal-port"),
])
def test_out_of_range_input_is_refused_cleanly(cli, args, code, message):
    cli("migrate")
    result = cli(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert Plan.select().count() == 0


def test_serve_reports_a_port_in_use(cli):
    import socket

    cli("migrate")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", "--port", str(port))
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
