"""``wispbill doctor``: every check on real databases, sockets and files (no mocks), on both backends."""

import datetime as dt
import json
import os
import socket
import time

import pytest
from click.testing import CliRunner

import core.cli_doctor  # noqa: F401  (registers ``doctor`` on the CLI)
from core import doctor
from core.clock import utcnow
from core.config import load_config
from core.db import database
from core.events import MAX_ATTEMPTS
from core.models import Event, Router
from core.scheduler import LEASE_NAME

GIB = 1024 ** 3


@pytest.fixture(autouse=True)
def no_radius(monkeypatch):
    for name in ("WISPBILL_RADIUS_HOST", "WISPBILL_RADIUS_SECRET", "WISPBILL_RADIUS_PORT", "WISPBILL_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def statuses(output: str) -> dict[str, str]:
    """``{name: status}`` from the doctor's text output."""
    return {line.split()[1]: line.split()[0] for line in output.splitlines() if line.strip()}


def lines_named(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.split()[1] == name)


def closed_port() -> int:
    """A loopback TCP port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listening():
    """A real listening socket on 127.0.0.1; yields its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def scheduler_running(seconds: float = 60) -> None:
    """The lease as a running scheduler holds it."""
    from core import lease

    with database.connection_context():
        assert lease.acquire(LEASE_NAME, "box:42:cafe", seconds)


def test_migrated_empty_database_is_healthy(cli):
    assert cli("migrate").exit_code == 0
    scheduler_running()
    result = cli("doctor")
    assert result.exit_code == 0, result.output
    found = statuses(result.output)
    assert list(found) == ["database", "scheduler", "routers", "freeradius", "disk", "backups", "clock"]
    assert found["database"] == "ok" and "(latest)" in lines_named(result.output, "database")
    assert found["scheduler"] == "ok" and "box:42:cafe holds the lease" in result.output
    assert "nothing waiting" in result.output
    assert found["routers"] == "skip" and "no routers configured" in result.output
    assert found["freeradius"] == "skip" and "FreeRADIUS is not configured" in result.output
    assert found["disk"] in ("ok", "warn")  # depends on this machine's disk
    assert found["backups"] == "warn" and "no backup yet: run wispbill backup" in result.output
    assert found["clock"] == "ok"
    assert lines_named(result.output, "database").startswith("ok    database    reachable")


def test_clock_is_compared_with_postgresql(cli, db_url):
    cli("migrate")
    line = lines_named(cli("doctor").output, "clock")
    if db_url.startswith("postgresql"):
        assert line.startswith("ok") and "of the database server" in line
    else:
        assert "SQLite is local" in line


def test_unmigrated_database_fails_with_the_fix(cli):
    result = cli("doctor")
    assert result.exit_code == 1
    assert "run wispbill migrate" in lines_named(result.output, "database")
    assert [s for s in statuses(result.output).values()].count("fail") == 1
    assert statuses(result.output)["scheduler"] == "skip"


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_unreachable_database_is_one_fail_line(kind, tmp_path, pm):
    url = (f"postgresql://postgres@127.0.0.1:{closed_port()}/test" if kind == "postgresql"
           else f"sqlite:///{tmp_path / 'missing' / 'wispbill.db'}")
    env = {"WISPBILL_DATABASE_URL": url, "WISPBILL_DATA_DIR": str(tmp_path), "WISPBILL_SECRET_KEY": "x" * 32}
    result = CliRunner().invoke(core.cli_doctor.cli, ["doctor"], env=env, catch_exceptions=False)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    fails = [line for line in result.output.splitlines() if line.startswith("fail")]
    assert len(fails) == 1 and fails[0].split()[1] == "database"
    assert "cannot" in fails[0]
    assert len(statuses(result.output)) == 7  # every check still reported


def test_routers_reachable_and_unreachable(db, cli, listening):
    scheduler_running()
    Router.create(name="tower-north", kind="mikrotik", host="127.0.0.1", port=listening)
    Router.create(name="tower-spare", kind="mikrotik", host="127.0.0.1", port=closed_port(), active=False)
    Router.create(name="tower-noport", kind="mikrotik", host="127.0.0.1")
    result = cli("doctor")
    line = lines_named(result.output, "routers")
    assert line.startswith("ok") and "1 router(s)" in line and "tower-noport" in line, line
    assert result.exit_code == 0

    Router.create(name="tower-south", kind="mikrotik", host="127.0.0.1", port=closed_port())
    result = cli("doctor")
    line = lines_named(result.output, "routers")
    assert line.startswith("fail") and "tower-south" in line and "tower-north" not in line.split("unreachable")[1]
    assert result.exit_code == 1


def test_backup_ages(cli, tmp_path):
    cli("migrate")
    backups = tmp_path / "backups"
    backups.mkdir()
    archive = backups / "wispbill-20260101-000000.tar.gz"
    archive.write_bytes(b"not really a tarball")
    (backups / "other.tar.gz").write_bytes(b"")  # not a wispbill backup: ignored
    result = cli("doctor")
    assert statuses(result.output)["backups"] == "ok" and archive.name in result.output

    now = time.time()
    os.utime(archive, (now - 30 * 3600, now - 30 * 3600))
    assert statuses(cli("doctor").output)["backups"] == "warn"
    os.utime(archive, (now - 80 * 3600, now - 80 * 3600))
    result = cli("doctor")
    assert statuses(result.output)["backups"] == "fail" and result.exit_code == 1

    fresh = backups / "wispbill-20260102-000000.tar.gz"
    fresh.write_bytes(b"")
    assert doctor.check_backups(backups).status == "ok"  # the newest one counts


def test_backup_status_thresholds():
    assert doctor.backup_status(None)[0] == "warn"
    assert doctor.backup_status(dt.timedelta(hours=25))[0] == "ok"
    assert doctor.backup_status(dt.timedelta(hours=27))[0] == "warn"
    assert doctor.backup_status(dt.timedelta(hours=73))[0] == "fail"


def test_no_scheduler_fails_with_what_to_start(db, cli):
    check = doctor.check_scheduler()
    assert check.status == "fail" and "no scheduler has run yet" in check.message
    scheduler_running(0.2)
    time.sleep(0.4)
    check = doctor.check_scheduler()
    assert check.status == "fail" and "lease of box:42:cafe ran out" in check.message
    result = cli("doctor")
    assert result.exit_code == 1 and lines_named(result.output, "scheduler").startswith("fail")


def test_old_undelivered_event_warns(db, cli):
    scheduler_running()
    Event.create(name="invoice.issued", payload={}, created_at=utcnow() - dt.timedelta(minutes=2))
    assert doctor.check_scheduler().status == "ok"
    Event.create(name="payment.received", payload={}, created_at=utcnow() - dt.timedelta(minutes=20))
    result = cli("doctor")
    line = lines_named(result.output, "scheduler")
    assert line.startswith("warn") and "1 event(s)" in line and "20 min" in line, line
    assert result.exit_code == 0


def test_event_waiting_for_its_retry_is_not_overdue(db):
    scheduler_running()
    Event.create(name="invoice.issued", payload={}, created_at=utcnow() - dt.timedelta(hours=1), attempts=3,
                 next_attempt_at=utcnow() + dt.timedelta(minutes=10))
    check = doctor.check_scheduler()
    assert check.status == "ok" and "1 event(s) waiting" in check.message


def test_exhausted_event_fails_naming_it(db):
    scheduler_running()
    event = Event.create(name="invoice.issued", payload={}, attempts=MAX_ATTEMPTS, last_error="boom")
    check = doctor.check_scheduler()
    assert check.status == "fail" and f"#{event.id} invoice.issued" in check.message


def test_disk_thresholds():
    assert doctor.disk_status(50 * GIB, 100 * GIB)[0] == "ok"
    assert doctor.disk_status(4 * GIB, 10 * GIB)[0] == "warn"  # under 5 GiB
    assert doctor.disk_status(8 * GIB, 100 * GIB)[0] == "warn"  # under 10 %
    assert doctor.disk_status(GIB // 2, 2 * GIB)[0] == "fail"  # under 1 GiB
    status, message = doctor.disk_status(40 * GIB, 1000 * GIB)  # under 5 %
    assert status == "fail" and "40.0 GiB free of 1000.0 GiB (4%)" in message
    assert doctor.check_disk(os.getcwd()).status in ("ok", "warn", "fail")


def test_clock_status():
    now = dt.datetime(2026, 5, 1, 12, 0)
    assert doctor.clock_status(now, None)[0] == "ok"
    assert doctor.clock_status(now, 3.0)[0] == "ok"
    assert doctor.clock_status(now, -120.0)[0] == "fail"
    status, message = doctor.clock_status(dt.datetime(1970, 1, 1, 0, 5), None)
    assert status == "fail" and "1970-01-01" in message


def test_freeradius_configuration(tmp_path):
    base = {"WISPBILL_DATA_DIR": str(tmp_path), "WISPBILL_SECRET_KEY": "x" * 32}
    assert doctor.check_freeradius(load_config(base)).status == "skip"
    half = load_config({**base, "WISPBILL_RADIUS_HOST": "127.0.0.1"})
    check = doctor.check_freeradius(half)
    assert check.status == "warn" and "WISPBILL_RADIUS_SECRET" in check.message


def test_a_broken_check_is_one_fail_line():
    @doctor.guarded("thing")
    def broken():
        raise RuntimeError("first line\nsecond line")

    assert broken() == doctor.Check("thing", "fail", "check failed: RuntimeError: first line")


def test_json_output(cli):
    cli("migrate")
    scheduler_running()
    result = cli("doctor", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True
    assert [c["name"] for c in data["checks"]][0] == "database"
    for check in data["checks"]:
        assert set(check) == {"name", "status", "message"} and check["status"] in doctor.STATUSES

    result = CliRunner().invoke(core.cli_doctor.cli, ["doctor", "--json"], env=cli.env)
    assert json.loads(result.output)["ok"] is True
    assert database.is_closed()
