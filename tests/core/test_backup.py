"""Backups on both backends: backup then restore gives back the same data; bad archives change nothing."""

import io
import json
import tarfile

import pytest

import core.cli_backup  # noqa: F401  (registers the backup and restore commands)
import plugins.backups
from core import backup, customers, migrations, settings
from core.db import bind, database
from core.models import AuditEvent, Customer, Setting


@pytest.fixture
def with_plugin(pm):
    """The plugin manager with the backups plugin loaded (added here until it is a built-in)."""
    if pm.get_plugin("backups") is None:
        assert pm.add(plugins.backups, "backups", "builtin"), pm.failures
    return pm


@pytest.fixture
def filled(cli, db_url, with_plugin):
    """A migrated database with customers and settings; returns ``cli``."""
    assert cli("migrate").exit_code == 0
    bind(db_url)
    with database.connection_context():
        settings.set_value("company.name", "Hilltop Wireless")
        settings.set_value("backups.keep", "3")
        for name in ("Amina Otieno", "Brian Kamau", "Chen Wei"):
            customers.add(name=name, currency="KES", email=f"{name.split()[0].lower()}@example.com")
    return cli


def snapshot():
    """What must come back: rows of several tables, in order."""
    with database.connection_context():
        return {
            "customers": [(c.id, c.account_number, c.name, c.email, c.currency)
                          for c in Customer.select().order_by(Customer.id)],
            "settings": sorted((s.key, s.value) for s in Setting.select()),
            "audit": AuditEvent.select().count(),
            "version": migrations.current_version(database.obj),
        }


def backup_path(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["path"]


def test_backup_then_restore_gives_back_the_same_data(filled, tmp_path):
    before = snapshot()
    path = backup_path(filled("backup", "--json"))
    with database.connection_context():
        Customer.update(name="Changed").where(Customer.name == "Brian Kamau").execute()
        Customer.delete().where(Customer.name == "Chen Wei").execute()
        customers.add(name="Dora New", currency="KES")
        settings.set_value("company.name", "Someone Else")
    assert snapshot() != before

    refused = filled("restore", path)
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert snapshot()["customers"][-1][2] == "Dora New"  # untouched

    result = filled("restore", path, "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["schema_version"] == migrations.latest_version() == before["version"]
    assert snapshot() == before
    with database.connection_context():
        customers.add(name="After Restore", currency="KES")  # sequences came back too


def test_archive_holds_manifest_with_counts_and_private_modes(filled, tmp_path, db_url):
    (tmp_path / "secret_key").write_text("k" * 40 + "\n")
    result = filled("backup", "--dir", str(tmp_path / "out"))
    assert result.exit_code == 0 and "backup written to" in result.output
    (path,) = (tmp_path / "out").glob("wispbill-*.tar.gz")
    assert path.stat().st_mode & 0o777 == 0o600 and (tmp_path / "out").stat().st_mode & 0o777 == 0o700
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
        assert tar.extractfile("settings/secret_key").read() == b"k" * 40 + b"\n"
    backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    assert manifest["backend"] == backend and manifest["format"] == backup.FORMAT_VERSION
    assert manifest["database"] in names
    assert manifest["schema_version"] == migrations.latest_version()
    with database.connection_context():
        assert manifest["tables"]["customer"] == 3 == Customer.select().count()
        assert manifest["tables"]["setting"] == Setting.select().count()
    assert [p.name for p in (tmp_path / "out").iterdir()] == [path.name]  # no temporary files left


def test_retention_keeps_the_newest_and_only_touches_backups(filled, tmp_path):
    out = tmp_path / "backups"  # the default directory: DATA_DIR/backups
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "wispbill-old.tar.gz").write_text("not ours by name")
    made = [backup_path(filled("backup", "--json")) for _ in range(5)]
    kept = sorted(p.name for p in out.glob("wispbill-*T*Z*.tar.gz"))
    assert kept == sorted(p.rsplit("/", 1)[-1] for p in made[-3:])  # backups.keep = 3
    assert (out / "notes.txt").exists() and (out / "wispbill-old.tar.gz").exists()
    backup_path(filled("backup", "--keep", "1", "--json"))
    assert len(list(out.glob("wispbill-*T*Z*.tar.gz"))) == 1
    newest, age = backup.latest(out)
    assert newest.exists() and age.total_seconds() < 60
    assert filled("backup", "--keep", "0").exit_code == 2


def _rewrite(source, target, manifest_change):
    """Copy an archive, changing its manifest (an archive as another backend or version would write it)."""
    with tarfile.open(source) as tar, tarfile.open(target, "w:gz") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            if member.name == "manifest.json":
                data = json.dumps(manifest_change(json.loads(data))).encode()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data))


def test_bad_archives_are_refused_and_change_nothing(filled, tmp_path):
    good = backup_path(filled("backup", "--json"))
    with database.connection_context():
        customers.add(name="Only After Backup", currency="KES")
    before = snapshot()

    text = tmp_path / "notes.tar.gz"
    text.write_text("hello")
    corrupt = tmp_path / "corrupt.tar.gz"
    data = open(good, "rb").read()
    corrupt.write_bytes(data[: len(data) // 2])
    other = tmp_path / "other.tar.gz"
    _rewrite(good, other, lambda m: {**m, "backend": "postgresql" if m["backend"] == "sqlite" else "sqlite"})
    newer = tmp_path / "newer.tar.gz"
    _rewrite(good, newer, lambda m: {**m, "schema_version": m["schema_version"] + 1})
    cases = {text: "not a wispbill backup", corrupt: "not a wispbill backup", other: "backup but the configured",
             newer: "upgrade wispbill first", tmp_path / "missing.tar.gz": "no such file"}
    for path, message in cases.items():
        result = filled("restore", str(path), "--yes")
        assert result.exit_code == 2, (path, result.output)
        assert message in result.output, result.output
        assert snapshot() == before


def test_a_failing_backup_exits_with_one_line_and_leaves_no_archive(cli, db_url, tmp_path, with_plugin):
    out = tmp_path / "out"
    if db_url.startswith("sqlite"):
        assert cli("migrate").exit_code == 0
        (tmp_path / "a-file").write_text("")
        result = cli("backup", "--dir", str(tmp_path / "a-file" / "backups"))
        assert result.exit_code == 1
        assert result.output.startswith("Error: cannot create the backup directory") and result.output.count("\n") == 1
        assert cli("backup", "--dir", str(tmp_path / "a-file")).exit_code == 2  # a file given as --dir
        return
    bad = cli.env["WISPBILL_DATABASE_URL"].replace("search_path%3D", "search_path%3Dno_such_schema_")
    cli.env["WISPBILL_DATABASE_URL"] = bad
    result = cli("backup", "--dir", str(out))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: pg_dump failed: pg_dump: error: no matching schemas were found"]
    assert list(out.iterdir()) == []


def test_nightly_job_is_registered_at_the_configured_time(filled, with_plugin):
    from core.scheduler import collect_jobs

    bind(filled.env["WISPBILL_DATABASE_URL"])
    with database.connection_context():
        (job,) = [j for j in collect_jobs(with_plugin) if j.id == "backups.nightly"]
        assert (job.trigger, job.schedule) == ("cron", {"hour": 2, "minute": 30})
        settings.set_value("backups.at", "4:05")
        (job,) = [j for j in collect_jobs(with_plugin) if j.id == "backups.nightly"]
        assert job.schedule == {"hour": 4, "minute": 5}
    assert filled("settings", "set", "backups.at", "25:00").exit_code == 2
    assert filled("settings", "set", "backups.keep", "0").exit_code == 2
