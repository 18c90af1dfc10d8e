"""Fixtures shared by the whole suite.

Every database test runs twice: on a fresh SQLite file and on a fresh PostgreSQL schema
(``WISPBILL_TEST_POSTGRES_URL``, default the local ``test`` database). When PostgreSQL
cannot be reached its runs are skipped with the reason; with ``WISPBILL_NO_SKIP=1`` (as in
CI) any skipped test fails the run.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
import uuid

import pytest
from click.testing import CliRunner

from core import migrations
from core.db import bind, database, make_database
from core.plugins import build_manager, set_manager

pytest_plugins = ["tests.web.browser"]  # the browser and page fixtures

POSTGRES_URL = os.environ.get("WISPBILL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "test-secret-key-that-is-long-enough"
ADMIN_PASSWORD = "correct horse battery"

_pg_problem: str | None = None
_pg_checked = False


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used for tests, or ``None`` when it can."""
    global _pg_checked, _pg_problem
    if not _pg_checked:
        _pg_checked = True
        try:
            db = make_database(POSTGRES_URL)
            db.connect()
            db.close()
        except Exception as exc:  # any driver or network failure means: skip with the reason
            _pg_problem = f"PostgreSQL not reachable at {POSTGRES_URL}: {str(exc).splitlines()[0]}"
    return _pg_problem


def _pg_url(schema: str) -> str:
    return f"{POSTGRES_URL}?options=" + urllib.parse.quote(f"-c search_path={schema}")


@contextlib.contextmanager
def postgres_schema():
    """The URL of a new, empty PostgreSQL schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_database(POSTGRES_URL)
    admin.execute_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_url(schema)
    finally:
        admin.execute_sql(f"DROP SCHEMA {schema} CASCADE")
        _tidy_catalog(admin)
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A URL to an empty database of each backend; the PostgreSQL schema is dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wispbill.db'}"
        return
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_database(POSTGRES_URL)
    admin.execute_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_url(schema)
    finally:
        if database.obj is not None and not database.is_closed():
            database.close()
        if not _spares.give_back(admin, schema):
            admin.execute_sql(f"DROP SCHEMA {schema} CASCADE")
            _tidy_catalog(admin)
        admin.close()


class _SpareSchemas:
    """Migrated PostgreSQL schemas, emptied and kept for the next test that needs one.

    Creating the schema a migration makes costs a few hundred milliseconds of DDL on
    PostgreSQL, for every test. A test's schema that still has exactly the migrated
    shape is emptied instead (every row deleted, the rows the migrations insert put
    back, sequences reset) and renamed aside; the next test's ``db`` takes it by renaming
    it to its own name. A schema whose shape a test changed is dropped as before.
    """

    def __init__(self):
        self.free: list[str] = []
        self.shape = None
        self.seeds: dict[str, tuple[list[str], list[tuple]]] = {}
        self.sequences: dict[str, tuple[int, bool]] = {}

    @staticmethod
    def _shape(admin, schema: str):
        p = admin.param
        tables = tuple(sorted(r[0] for r in admin.execute_sql(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = {p}", (schema,)).fetchall()))
        columns = admin.execute_sql(
            f"SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = {p}", (schema,)).fetchone()[0]
        indexes = admin.execute_sql(f"SELECT COUNT(*) FROM pg_indexes WHERE schemaname = {p}", (schema,)).fetchone()[0]
        return tables, columns, indexes

    def learn(self, schema: str) -> None:
        """Remember a freshly migrated schema's shape, rows and sequences."""
        if self.shape is not None:
            return
        admin = make_database(POSTGRES_URL)
        try:
            shape = self._shape(admin, schema)
            for table in shape[0]:
                cursor = admin.execute_sql(f'SELECT * FROM {schema}."{table}"')
                rows = [tuple(r) for r in cursor.fetchall()]
                if rows:
                    self.seeds[table] = ([d[0] for d in cursor.description], rows)
            for (name,) in admin.execute_sql(f"SELECT sequence_name FROM information_schema.sequences "
                                             f"WHERE sequence_schema = {admin.param}", (schema,)).fetchall():
                self.sequences[name] = tuple(admin.execute_sql(
                    f'SELECT last_value, is_called FROM {schema}."{name}"').fetchone())
            self.shape = shape
        finally:
            admin.close()

    def take(self, schema: str) -> bool:
        """Put a spare migrated schema in place of the new, empty ``schema``; False when there is none."""
        if not self.free:
            return False
        spare = self.free.pop()
        admin = make_database(POSTGRES_URL)
        try:
            with admin.atomic():
                admin.execute_sql(f"DROP SCHEMA {schema}")
                admin.execute_sql(f"ALTER SCHEMA {spare} RENAME TO {schema}")
        finally:
            admin.close()
        return True

    def give_back(self, admin, schema: str) -> bool:
        """Empty ``schema`` and keep it for reuse, if it still has the migrated shape."""
        if self.shape is None or self._shape(admin, schema) != self.shape:
            return False
        with admin.atomic():
            admin.execute_sql("SET LOCAL session_replication_role = replica")  # no foreign-key order to follow
            admin.execute_sql(";\n".join(f'DELETE FROM {schema}."{t}"' for t in self.shape[0]))
            for table, (columns, rows) in self.seeds.items():
                names = ", ".join(f'"{c}"' for c in columns)
                marks = ", ".join([admin.param] * len(columns))
                admin.cursor().executemany(f'INSERT INTO {schema}."{table}" ({names}) VALUES ({marks})', rows)
            if self.sequences:
                admin.execute_sql("SELECT " + ", ".join(
                    f"setval('{schema}.\"{name}\"', {int(value)}, {bool(called)})"
                    for name, (value, called) in self.sequences.items()))
            spare = f"t_spare_{uuid.uuid4().hex[:10]}"
            admin.execute_sql(f"ALTER SCHEMA {schema} RENAME TO {spare}")
        self.free.append(spare)
        return True

    def drop_all(self) -> None:
        """Drop the spares (at the end of the run)."""
        if not self.free:
            return
        admin = make_database(POSTGRES_URL)
        try:
            for spare in self.free:
                admin.execute_sql(f"DROP SCHEMA IF EXISTS {spare} CASCADE")
        finally:
            self.free.clear()
            admin.close()


_spares = _SpareSchemas()


_CATALOG = ("pg_attribute", "pg_class", "pg_depend", "pg_index", "pg_type", "pg_constraint", "pg_attrdef",
            "pg_sequence")
_dropped = 0


def _tidy_catalog(admin, every: int = 100) -> None:
    """Every ``every`` schemas dropped, vacuum the catalog: where autovacuum is off, the
    dead rows of dropped schemas would otherwise slow every later CREATE of the run."""
    global _dropped
    _dropped += 1
    if _dropped % every == 0:
        admin.execute_sql("VACUUM " + ", ".join(f"pg_catalog.{name}" for name in _CATALOG))


@pytest.fixture
def empty_db(db_url):
    """The shared database proxy bound to an empty database (no schema yet)."""
    db = bind(db_url)
    db.connect()
    yield db
    if not db.is_closed():
        db.close()


@pytest.fixture
def db(empty_db, db_url):
    """The shared database proxy bound to a fully migrated, empty database."""
    schema = _pg_schema(db_url)
    if schema and _spares.take(schema):
        return empty_db
    migrations.migrate(empty_db)
    if schema:
        _spares.learn(schema)
    return empty_db


def _pg_schema(url: str) -> str | None:
    if not url.startswith("postgresql"):
        return None
    options = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("options", [""])[0]
    return options.split("search_path=", 1)[1].split()[0] if "search_path=" in options else None


@pytest.fixture
def pm():
    """A plugin manager with the built-in plugins only (no installed entry points)."""
    manager = build_manager(entry_points=False)
    set_manager(manager)
    yield manager
    set_manager(None)


@pytest.fixture
def app(db, db_url, pm, tmp_path):
    """The web app on a migrated database, with CSRF protection on as in production."""
    from core.web import create_app

    db.close()
    application = create_app({
        "DATABASE_URL": db_url, "DATA_DIR": str(tmp_path), "SECRET_KEY": SECRET,
        "PLUGIN_MANAGER": pm, "TESTING": True,
    })
    yield application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_user(db):
    from core import users

    return users.create("admin", ADMIN_PASSWORD, role="admin")


def csrf_token_from(response) -> str:
    """The CSRF token embedded in a rendered page."""
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def logged_in(client, admin_user):
    """A test client signed in as the admin."""
    token = csrf_token_from(client.get("/auth/login"))
    response = client.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    return client


@pytest.fixture
def cli(db_url, tmp_path, pm, monkeypatch):
    """Run ``wispbill`` in-process: ``cli("customers", "list")`` returns a click Result."""
    from core.cli import cli as command

    env = {"WISPBILL_DATABASE_URL": db_url, "WISPBILL_DATA_DIR": str(tmp_path), "WISPBILL_SECRET_KEY": SECRET}

    def run(*args):
        result = CliRunner().invoke(command, list(args), env=env, catch_exceptions=False)
        if not database.is_closed():
            database.close()
        return result

    run.env = env
    return run


# --- no skips in CI ----------------------------------------------------------------

def pytest_sessionfinish(session, exitstatus):
    if postgres_problem() is None:
        _spares.drop_all()
    if os.environ.get("WISPBILL_NO_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"WISPBILL_NO_SKIP=1: {len(skipped)} test(s) were skipped; failing the run", red=True)
        session.exitstatus = 1


def run_concurrently(db_url: str, work, workers: int) -> list:
    """Run ``work(conn)`` in ``workers`` threads, each with its own connection to ``db_url``.

    Returns the results in completion order; any exception in a worker is re-raised.
    """
    import threading

    results, errors = [], []

    def run():
        conn = make_database(db_url)
        try:
            results.append(work(conn))
        except Exception as exc:  # re-raised in the calling thread below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return results


@pytest.fixture(autouse=True, scope="session")
def _quick_password_hashing():
    """argon2id with small costs in the test process: the same code and checks, in a fraction of the time.

    Servers the tests start as processes (``live_server``) keep the real costs.
    """
    from argon2 import PasswordHasher

    from core import passwords

    real = passwords.hasher
    passwords.hasher = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)
    passwords._dummy = None
    yield
    passwords.hasher = real
    passwords._dummy = None
