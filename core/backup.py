"""Backups: one ``wispbill-YYYYMMDDTHHMMSSZ.tar.gz`` archive holds the database and the settings.

The archive carries ``manifest.json`` (what the backup is and how many rows each table
had), a consistent snapshot of the database (``database.sqlite3`` made with SQLite's
online backup API, or ``database.pgdump`` from ``pg_dump --format=custom``) and the
settings kept outside the database (``settings/secret_key`` from the data directory and
``settings/<name>.toml``, the instance configuration file). :func:`create` writes it and
applies retention, :func:`restore` brings it back, :func:`latest` tells how old the newest
one is. See ``docs/backups.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlparse, urlunparse

import peewee

from core import __version__, migrations
from core.config import Config, load_config, redact
from core.db import bind, database, make_database, table_names
from core.errors import ValidationError, WispbillError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_KEEP = 14
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
SECRET_MEMBER = "settings/secret_key"
_ARCHIVE = re.compile(r"^wispbill-(\d{8}T\d{6}Z)(?:-(\d+))?\.tar\.gz$")
_SEARCH_PATH = re.compile(r"(?:^|\s)-c\s*search_path\s*=\s*(\S+)")


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` did: the backup's manifest and the schema version before and after migrating."""

    manifest: dict
    restored_version: int
    schema_version: int
    secret_key_restored: bool


# --- helpers -----------------------------------------------------------------------

def _first_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0] if lines else "no error output"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sqlite_path(url: str) -> Path:
    db = make_database(url)
    if db.database == ":memory:":
        raise ValidationError("an in-memory SQLite database cannot be backed up or restored")
    return Path(db.database)


def _pg_target(url: str) -> tuple[str, dict, str | None]:
    """A libpq URI for ``url`` without password or ``options``, the environment, and the schema.

    The password goes to ``PGPASSWORD`` so that it never shows in a process listing;
    a ``search_path`` in ``options`` names the one schema to dump or restore.
    """
    parsed = urlparse(url)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    schema = None
    for key, value in query:
        if key == "options":
            match = _SEARCH_PATH.search(value)
            if match:
                schema = match.group(1).split(",")[0].strip().strip('"') or None
    netloc = parsed.hostname or ""
    if parsed.hostname and ":" in parsed.hostname:
        netloc = f"[{parsed.hostname}]"
    if parsed.port:
        netloc += f":{parsed.port}"
    if parsed.username:
        netloc = f"{parsed.username}@{netloc}"
    kept = urlencode([(k, v) for k, v in query if k != "options"])
    uri = urlunparse(("postgresql", netloc, parsed.path, "", kept, ""))
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = unquote(parsed.password)
    return uri, env, schema


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise WispbillError(f"{name} not found on PATH: install the PostgreSQL client tools "
                            "(same major version as the server or newer)")
    return path


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    log.debug("running %s", shlex.join(args))
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise WispbillError(f"{Path(args[0]).name} failed: {_first_line(result.stderr)}")
    return result


def _count_rows(db: peewee.Database) -> dict[str, int]:
    return {name: db.execute_sql(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in table_names(db)}


def backup_dir(config: Config | None = None) -> Path:
    """Where backups go: the ``backups.dir`` setting, else ``<data_dir>/backups``."""
    from core import settings

    config = config or load_config()
    try:
        configured = settings.get_or("backups.dir", "")
    except peewee.PeeweeException:  # no settings table yet
        configured = ""
    return Path(configured).expanduser() if configured else config.data_dir / "backups"


def _keep_setting() -> int:
    from core import settings

    try:
        return int(settings.get_or("backups.keep", DEFAULT_KEEP))
    except peewee.PeeweeException:
        return DEFAULT_KEEP


# --- snapshots ---------------------------------------------------------------------

def _snapshot_sqlite(url: str, target: Path) -> tuple[dict[str, int], int]:
    """Copy the live SQLite database to ``target`` with the online backup API; row counts and schema version."""
    source_path = _sqlite_path(url)
    if not source_path.exists():
        raise WispbillError(f"database file {source_path} does not exist")
    source = sqlite3.connect(str(source_path), timeout=10)
    dest = sqlite3.connect(str(target))
    try:
        source.backup(dest)
    finally:
        source.close()
    try:
        names = [r[0] for r in dest.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1")]
        counts = {n: dest.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}
        version = 0
        if migrations.HISTORY_TABLE in counts:
            version = dest.execute(f"SELECT MAX(version) FROM {migrations.HISTORY_TABLE}").fetchone()[0] or 0
        return counts, version
    finally:
        dest.close()


def _snapshot_postgresql(url: str, target: Path) -> tuple[dict[str, int], int, str | None]:
    """``pg_dump`` the database (or the schema of its ``search_path``) into ``target``.

    Row counts and dump come from one exported snapshot, so they agree even while the
    app keeps writing.
    """
    uri, env, schema = _pg_target(url)
    pg_dump = _tool("pg_dump")
    db = make_database(url)
    try:
        db.connect()
        with db.atomic():
            db.execute_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = db.execute_sql("SELECT pg_export_snapshot()").fetchone()[0]
            counts = _count_rows(db)
            version = migrations.current_version(db)
            args = [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                    f"--file={target}", f"--dbname={uri}"]
            if schema:
                args.append(f"--schema={schema}")
            _run(args, env)
    finally:
        if not db.is_closed():
            db.close()
    return counts, version, schema


# --- create ------------------------------------------------------------------------

def _archives(directory: Path) -> list[Path]:
    """Backup archives in ``directory``, oldest first."""
    found = []
    for path in directory.iterdir() if directory.is_dir() else ():
        match = _ARCHIVE.match(path.name)
        if match and path.is_file():
            found.append(((match.group(1), int(match.group(2) or 0)), path))
    return [p for _key, p in sorted(found)]


def prune(directory: Path, keep: int, spare: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` archives in ``directory`` (never ``spare``); return the deleted paths."""
    if keep < 1:
        raise ValidationError("keep must be at least 1", "keep")
    doomed = [p for p in _archives(directory)[:-keep] if p != spare]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tar.gettarinfo(str(path), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    with open(path, "rb") as fh:
        tar.addfile(info, fh)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(mtime)
    tar.addfile(info, io.BytesIO(data))


def create(directory=None, keep: int | None = None, config: Config | None = None) -> Path:
    """Write one backup archive and apply retention; return the archive's path.

    ``directory`` defaults to :func:`backup_dir`, ``keep`` to the ``backups.keep``
    setting (14). The archive is written under a temporary name and linked into place
    when complete, so a failed backup leaves nothing behind.
    """
    config = config or load_config()
    keep = _keep_setting() if keep is None else keep
    if not isinstance(keep, int) or keep < 1:
        raise ValidationError("keep must be a whole number of at least 1", "keep")
    directory = Path(directory).expanduser() if directory else backup_dir(config)
    if not directory.exists():
        try:
            directory.mkdir(mode=0o700, parents=True)
            directory.chmod(0o700)
        except OSError as exc:
            raise WispbillError(f"cannot create the backup directory {directory}: {exc.strerror or exc}") from None
    if not directory.is_dir():
        raise ValidationError(f"{directory} is not a directory", "directory")

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    backend = config.backend
    with tempfile.TemporaryDirectory(prefix=".wispbill-backup-", dir=directory) as work:
        work = Path(work)
        schema = None
        if backend == "sqlite":
            member, snapshot = SQLITE_MEMBER, work / SQLITE_MEMBER
            counts, version = _snapshot_sqlite(config.database_url, snapshot)
        else:
            member, snapshot = PG_MEMBER, work / PG_MEMBER
            counts, version, schema = _snapshot_postgresql(config.database_url, snapshot)
        files = {member: snapshot}
        secret = config.data_dir / "secret_key"
        if secret.is_file():
            files[SECRET_MEMBER] = secret
        config_file = os.environ.get("WISPBILL_CONFIG")
        if config_file and Path(config_file).is_file():
            files[f"settings/{Path(config_file).name}"] = Path(config_file)
        manifest = {
            "format": FORMAT_VERSION,
            "wispbill_version": __version__,
            "schema_version": version,
            "backend": backend,
            "schema": schema,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "database": member,
            "sha256": {name: _sha256(path) for name, path in files.items()},
            "tables": counts,
            "config_file": str(config_file) if config_file and Path(config_file).is_file() else None,
        }
        fd, tmp = tempfile.mkstemp(prefix=".wispbill-", suffix=".tar.gz.part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                    _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode(),
                               now.timestamp())
                    for name, path in files.items():
                        _add_file(tar, name, path)
                raw.flush()
                os.fsync(raw.fileno())
            final = _link_into_place(Path(tmp), directory, stamp)
        finally:
            os.unlink(tmp)
    deleted = prune(directory, keep, spare=final)
    log.info("backup written to %s (%d bytes); %d old backup(s) deleted", final, final.stat().st_size, len(deleted))
    return final


def _link_into_place(tmp: Path, directory: Path, stamp: str) -> Path:
    """Hard-link the finished archive to its final name (never overwriting one); return it.

    A second backup in the same second gets ``-1``, ``-2``... after the newest already there,
    so names keep sorting in the order the backups were made.
    """
    taken = [_ARCHIVE.match(p.name) for p in _archives(directory)]
    first = max((int(m.group(2) or 0) + 1 for m in taken if m.group(1) == stamp), default=0)
    for seq in range(first, first + 1000):
        final = directory / (f"wispbill-{stamp}.tar.gz" if seq == 0 else f"wispbill-{stamp}-{seq}.tar.gz")
        try:
            os.link(tmp, final)
            return final
        except FileExistsError:
            continue
    raise WispbillError(f"too many backups named wispbill-{stamp}*.tar.gz in {directory}")


def latest(directory=None) -> tuple[Path, dt.timedelta] | None:
    """The newest archive in ``directory`` (default :func:`backup_dir`) and its age, or ``None``."""
    directory = Path(directory).expanduser() if directory else backup_dir()
    archives = _archives(directory)
    if not archives:
        return None
    newest = archives[-1]
    stamp = dt.datetime.strptime(_ARCHIVE.match(newest.name).group(1), "%Y%m%dT%H%M%SZ")
    return newest, dt.datetime.now(dt.timezone.utc) - stamp.replace(tzinfo=dt.timezone.utc)


# --- restore -----------------------------------------------------------------------

def read_archive(path, work: Path) -> dict:
    """Check the archive at ``path`` and unpack its known members into ``work``; return the manifest.

    Raises :class:`ValidationError` for anything that is not a complete wispbill backup
    this code can restore.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: no such file", "file")
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if MANIFEST not in members or not members[MANIFEST].isfile():
                raise ValidationError(f"{path} is not a wispbill backup (no {MANIFEST})", "file")
            manifest = json.loads(tar.extractfile(members[MANIFEST]).read().decode())
            if not isinstance(manifest, dict) or "format" not in manifest:
                raise ValidationError(f"{path} is not a wispbill backup (bad {MANIFEST})", "file")
            if manifest["format"] != FORMAT_VERSION:
                raise ValidationError(f"{path}: backup format {manifest['format']!r} is not known to this "
                                      f"version of wispbill (it reads format {FORMAT_VERSION})", "file")
            sums = manifest.get("sha256") or {}
            if manifest.get("database") not in (SQLITE_MEMBER, PG_MEMBER) or manifest["database"] not in sums:
                raise ValidationError(f"{path} is not a wispbill backup (no database in {MANIFEST})", "file")
            for name, expected in sums.items():
                member = members.get(name)
                if member is None or not member.isfile() or not re.fullmatch(r"[\w./-]+", name) or ".." in name:
                    raise ValidationError(f"{path}: {name} is missing from the archive", "file")
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if _sha256(target) != expected:
                    raise ValidationError(f"{path}: {name} is damaged (checksum mismatch)", "file")
    except (tarfile.TarError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{path} is not a wispbill backup or is damaged ({_first_line(str(exc))})",
                              "file") from None
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror or exc}", "file") from None
    return manifest


def check_manifest(manifest: dict, config: Config, path="backup") -> None:
    """Refuse a backup of the other backend, another schema, or a newer schema than this code knows."""
    backend = manifest.get("backend")
    if backend != config.backend:
        raise ValidationError(f"{path} is a {backend} backup but the configured database "
                              f"({redact(config.database_url)}) is {config.backend}", "file")
    if backend == "postgresql":
        schema = _pg_target(config.database_url)[2]
        if manifest.get("schema") != schema:
            raise ValidationError(f"{path} holds schema {manifest.get('schema') or '(whole database)'} but the "
                                  f"configured database uses {schema or '(whole database)'}", "file")
    latest_version = migrations.latest_version()
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > latest_version:
        raise ValidationError(f"{path} has schema version {version}, newer than this code's {latest_version}: "
                              "upgrade wispbill first", "file")


def restore(path, yes: bool = False, config: Config | None = None) -> Restored:
    """Replace the configured database with the backup at ``path``, then migrate it to this code's schema.

    Refuses (``ValidationError``) unless ``yes`` is true: restoring overwrites every row.
    The archive is checked completely before the database is touched.
    """
    config = config or load_config()
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="wispbill-restore-") as work:
        work = Path(work)
        manifest = read_archive(path, work)
        check_manifest(manifest, config, path)
        if not yes:
            raise ValidationError(f"restoring {path.name} replaces all data in {redact(config.database_url)}; "
                                  "confirm with --yes", "yes")
        if database.obj is not None and not database.is_closed():
            database.close()
        if config.backend == "sqlite":
            _restore_sqlite(work / SQLITE_MEMBER, config.database_url)
        else:
            _restore_postgresql(work / PG_MEMBER, config.database_url)
        secret_restored = _restore_secret(work / SECRET_MEMBER, config)
    db = bind(config.database_url)
    try:
        migrations.migrate(db)
        version = migrations.current_version(db)
    finally:
        if not db.is_closed():
            db.close()
    log.info("restored %s (schema %s, now %s)", path, manifest["schema_version"], version)
    return Restored(manifest, manifest["schema_version"], version, secret_restored)


def _restore_sqlite(snapshot: Path, url: str) -> None:
    conn = sqlite3.connect(str(snapshot))
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise ValidationError(f"the database in the backup is damaged: {exc}", "file") from None
    finally:
        conn.close()
    if result != "ok":
        raise ValidationError(f"the database in the backup is damaged: {result}", "file")
    target = _sqlite_path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o600
    if target.exists():
        # Fold the write-ahead log into the old file, so that no stale log can be applied to the new one.
        live = sqlite3.connect(str(target), timeout=10)
        try:
            live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            live.close()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.restore-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as dst, open(snapshot, "rb") as src:
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, mode)
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _restore_postgresql(dump: Path, url: str) -> None:
    """Replace the wispbill tables with the dump's in one transaction.

    The tables of the target schema are dropped first, so that tables a newer schema
    added do not survive next to an older backup; then the dump's SQL (from
    ``pg_restore --clean --if-exists --no-owner``) runs in the same transaction through
    ``psql``. Any error rolls the whole restore back.
    """
    pg_restore, psql = _tool("pg_restore"), _tool("psql")
    uri, env, _schema = _pg_target(url)
    env["PGOPTIONS"] = "-c client_min_messages=warning"  # errors, not notices, head stderr
    _run([pg_restore, "--list", str(dump)], env)  # a damaged dump fails here, before anything is dropped
    script = dump.with_suffix(".sql")
    _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges", f"--file={script}", str(dump)], env)
    db = make_database(url)
    try:
        tables = [r[0] for r in db.execute_sql(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname = current_schema() ORDER BY 1").fetchall()]
    finally:
        db.close()
    args = [psql, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction", f"--dbname={uri}"]
    if tables:
        args.append(f"--command=DROP TABLE IF EXISTS {', '.join(tables)} CASCADE")
    _run(args + [f"--file={script}"], env)


def _restore_secret(path: Path, config: Config) -> bool:
    """Put the backup's secret key back in the data directory when it differs; True if it did."""
    if not path.is_file():
        return False
    target = config.data_dir / "secret_key"
    key = path.read_bytes()
    if target.is_file() and target.read_bytes() == key:
        return False
    config.data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".secret_key.", dir=config.data_dir)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    os.replace(tmp, target)
    return True
