"""``wispbill bench billing``: the printed figures match the database, and bad input exits 2."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from core import bench
from core.bench import AS_OF
from core.db import bind, database
from core.models import BillingRun, Customer, Invoice, InvoiceLine, InvoiceTax, LedgerEntry, Service

SUBSCRIBERS = 300


def _figures(stdout: str) -> dict:
    return dict(line.split(": ", 1) for line in stdout.strip().splitlines())


def _count(figure: str) -> dict:
    """``"300 invoice, 655 invoice_line"`` as ``{"invoice": 300, "invoice_line": 655}``."""
    return {table: int(n) for n, table in (part.split(" ") for part in figure.split(", "))}


def test_bench_billing_prints_figures_that_match_the_database(cli, db_url):
    result = cli("bench", "billing", "--subscribers", str(SUBSCRIBERS), "--database-url", db_url,
                 "--chunk", "120", "--keep")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"invoices/s: \d+", lines[-1]), lines[-1]
    figures = _figures(result.stdout)
    assert figures["subscribers"] == str(SUBSCRIBERS)
    assert figures["invoices"] == str(SUBSCRIBERS)
    assert figures["database"].split()[0] == db_url.split(":")[0]
    assert figures["chunk"].startswith("120 ")
    assert re.fullmatch(r"[\d.]+ s, 0 invoices", figures["second run"])
    assert re.fullmatch(r"\d+ MB \(\d+ MB before the run\)", figures["peak memory"])
    assert re.fullmatch(r"[\d.]+x", figures["ratio to floor"])
    inserted, updated = _count(figures["rows inserted"]), _count(figures["rows updated"])

    db = bind(figures["kept"])
    try:
        assert Customer.select().count() == SUBSCRIBERS
        assert Invoice.select().count() == SUBSCRIBERS == inserted["invoice"]
        assert Invoice.select(Invoice.customer).distinct().count() == SUBSCRIBERS
        assert InvoiceLine.select().count() == inserted["invoice_line"]
        assert InvoiceTax.select().count() == inserted["invoice_tax"]
        assert LedgerEntry.select().where(LedgerEntry.kind == "invoice").count() == inserted["ledger_entry"]
        assert Service.select().count() == int(figures["services"]) == updated["service"]
        assert Service.select().where(Service.next_bill_date <= AS_OF).count() == 0
        runs = list(BillingRun.select().order_by(BillingRun.id))
        assert [(r.status, r.invoices) for r in runs] == [("finished", SUBSCRIBERS), ("finished", 0)]
        # the mix: bundles, promos, three tax regions
        kinds = {line.kind for line in InvoiceLine.select(InvoiceLine.kind).distinct()}
        assert {"recurring", "discount", "setup"} <= kinds
        regions = {c.tax_region for c in Customer.select(Customer.tax_region).distinct()}
        assert regions == {code for code, _currency, _share in bench.REGIONS}
    finally:
        if db_url.startswith("postgresql"):
            schema = db.execute_sql("SELECT current_schema()").fetchone()[0]
            assert schema.startswith("bench_")
            db.execute_sql(f"DROP SCHEMA {schema} CASCADE")
        db.close()


def test_bench_billing_json_and_clean_up(cli, db_url, tmp_path):
    def bench_schemas():
        if not db_url.startswith("postgresql"):
            return set()
        return {r[0] for r in database.execute_sql(
            "SELECT nspname FROM pg_namespace WHERE left(nspname, 6) = 'bench_'").fetchall()}

    bind(db_url)
    before = bench_schemas()
    result = cli("bench", "billing", "--subscribers", "40", "--database-url", db_url, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["subscribers"] == data["invoices"] == data["rows_inserted"]["invoice"] == 40
    assert data["second_run_invoices"] == 0
    assert data["kept"] is None
    assert data["invoices_per_second"] == pytest.approx(40 / data["billing_seconds"], rel=0.05)
    assert data["ratio_to_floor"] == pytest.approx(data["billing_seconds"] / data["floor_seconds"], rel=0.05)
    assert 0 < data["baseline_memory_mb"] <= data["peak_memory_mb"] < 512
    # nothing left behind: no database file, no floor copy, no schema
    bind(db_url)
    assert bench_schemas() == before
    if db_url.startswith("sqlite"):
        assert list(Path(tmp_path).glob("wispbill*")) == []
    database.close()


def test_bench_billing_default_is_a_temporary_sqlite_file(pm, tmp_path, monkeypatch):
    import tempfile

    from core.cli import cli

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    result = CliRunner().invoke(cli, ["bench", "billing", "--subscribers", "5"])
    database.close()
    assert result.exit_code == 0, result.output
    assert _figures(result.stdout)["database"].startswith("sqlite")
    assert not list(tmp_path.glob("wispbill-bench-*"))


@pytest.mark.parametrize("args, message", [
    (["--subscribers", "0"], "'--subscribers': 0 is not in the range"),
    (["--subscribers", "many"], "'--subscribers': 'many' is not a valid integer"),
    ([], "Missing option '--subscribers'"),
    (["--subscribers", "10", "--chunk", "0"], "'--chunk': 0 is not in the range"),
    (["--subscribers", "10", "--database-url", "mysql://u@localhost/db"], "unsupported scheme 'mysql'"),
    (["--subscribers", "10", "--database-url", "not a url"], "--database-url: unsupported scheme"),
    (["--subscribers", "10", "--database-url", "postgresql://localhost:port/db"], "is not a database URL"),
    (["--subscribers", "10", "--database-url", "sqlite:///:memory:"], "the bench needs a file"),
    (["--subscribers", "10", "--database-url", "sqlite:///no/such/dir/x.db"], "directory no/such/dir does not exist"),
], ids=["zero", "not-a-number", "missing", "chunk-zero", "mysql", "not-a-url", "bad-port", "memory", "no-dir"])
def test_bad_input_exits_2_with_one_clear_line(pm, args, message):
    from core.cli import cli

    result = CliRunner().invoke(cli, ["bench", "billing", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_existing_sqlite_file_is_refused_and_left_alone(pm, tmp_path):
    from core.cli import cli

    path = tmp_path / "precious.db"
    path.write_bytes(b"keep me")
    result = CliRunner().invoke(cli, ["bench", "billing", "--subscribers", "10", "--database-url",
                                      f"sqlite:///{path}"])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert path.read_bytes() == b"keep me"


def test_an_unreachable_server_exits_1(pm):
    from core.cli import cli

    result = CliRunner().invoke(cli, ["bench", "billing", "--subscribers", "10", "--database-url",
                                      "postgresql://postgres@127.0.0.1:1/test"])
    assert result.exit_code == 1
    assert "cannot reach" in result.output


def test_search_path_replaces_the_schema_and_keeps_other_options():
    url = "postgresql://u@h:5432/db?sslmode=disable&options=-c%20search_path%3Dt_1%20-c%20statement_timeout%3D0"
    made = bench._with_search_path(url, "bench_x")
    assert made.startswith("postgresql://u@h:5432/db?sslmode=disable&options=")
    assert "search_path%3Dbench_x" in made and "t_1" not in made and "statement_timeout%3D0" in made
    assert bench._with_search_path("postgresql://u@h/db", "s").endswith("?options=-c%20search_path%3Ds")


def test_profile_writes_the_stats_of_the_run(pm, tmp_path):
    import pstats

    from core.cli import cli

    stats = tmp_path / "run.prof"
    result = CliRunner().invoke(cli, ["bench", "billing", "--subscribers", "20", "--database-url",
                                      f"sqlite:///{tmp_path / 'b.db'}", "--profile", str(stats)])
    database.close()
    assert result.exit_code == 0, result.output
    functions = {f"{Path(file).name}:{name}" for file, _line, name in pstats.Stats(str(stats)).stats}
    assert "billing.py:run" in functions


def test_help():
    from core.cli import cli

    result = CliRunner().invoke(cli, ["bench", "billing", "--help"])
    assert result.exit_code == 0
    assert "--subscribers" in result.output and "--database-url" in result.output
