"""Migrations from an empty database, re-runs, and agreement between models and schema."""

import peewee
import pytest

from core import migrations
from core.db import bind, table_names
from core.models import ALL_MODELS
from tests.conftest import run_concurrently


def test_migrate_from_empty_creates_every_table(empty_db):
    assert migrations.current_version(empty_db) == 0
    applied = migrations.migrate(empty_db)
    expected = migrations.available() + migrations.plugin_available()
    assert [m.label for m in applied] == [m.label for m in expected]
    assert "radius:0001_tables" in [m.label for m in applied]
    tables = set(table_names(empty_db))
    assert {"radcheck", "radreply", "radusergroup", "radgroupreply", "nas", "radacct"} <= tables
    for model in ALL_MODELS:
        assert model._meta.table_name in tables
    assert migrations.current_version(empty_db) == migrations.latest_version()


def test_migrate_again_applies_nothing(db):
    before = db.execute_sql("SELECT count(*) FROM schema_migrations").fetchone()[0]
    plugins_before = db.execute_sql("SELECT count(*) FROM plugin_migrations").fetchone()[0]
    assert migrations.migrate(db) == []
    assert migrations.pending(db) == []
    assert db.execute_sql("SELECT count(*) FROM schema_migrations").fetchone()[0] == before
    assert db.execute_sql("SELECT count(*) FROM plugin_migrations").fetchone()[0] == plugins_before >= 1


def _schema(db):
    if isinstance(db, peewee.PostgresqlDatabase):
        return db.execute_sql("SELECT current_schema()").fetchone()[0]
    return None


_SAME_TYPE = {"AUTO": "INTEGER", "SERIAL": "INTEGER", "INT": "INTEGER", "BIGAUTO": "BIGINT",
              "CHARACTER VARYING": "VARCHAR", "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP", "BOOL": "BOOLEAN"}


def _type_family(name: str) -> str:
    name = name.upper().split("(")[0].strip()
    return _SAME_TYPE.get(name, name)


def test_models_match_migrated_schema(db):
    """A model change without a migration fails here: columns, types, nullability, primary keys."""
    field_types = db.field_types
    for model in ALL_MODELS:
        expected = {f.column_name: (_type_family(field_types.get(f.field_type, f.field_type)), f.null,
                                    bool(f.primary_key)) for f in model._meta.sorted_fields}
        actual = {c.name: (_type_family(c.data_type), c.null, c.primary_key)
                  for c in db.get_columns(model._meta.table_name, schema=_schema(db))}
        assert actual == expected, model.__name__


def test_unique_indexes_exist(db):
    schema = _schema(db)
    unique = {
        (idx.table, tuple(idx.columns))
        for model in ALL_MODELS
        for idx in db.get_indexes(model._meta.table_name, schema=schema)
        if idx.unique
    }
    assert ("payment", ("gateway", "reference")) in unique
    assert ("invoice", ("series", "number")) in unique
    assert ("credit_note", ("series", "number")) in unique
    assert ("plan", ("code", "version")) in unique


def test_failed_migration_rolls_back_and_is_not_recorded(empty_db, monkeypatch):
    migrations.migrate(empty_db)

    def broken_up(migrator, db):
        db.execute_sql("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
        raise RuntimeError("boom")

    extra = migrations.Migration(9999, "broken", broken_up)
    real = migrations.available()
    monkeypatch.setattr(migrations, "available", lambda: real + [extra])
    with pytest.raises(RuntimeError, match="boom"):
        migrations.migrate(empty_db)
    assert "half_done" not in table_names(empty_db)
    assert 9999 not in migrations.applied_versions(empty_db)


def test_concurrent_migrate_applies_each_step_once(db_url):
    """Two connections racing to migrate an empty database apply each step once."""
    results = run_concurrently(db_url, migrations.migrate, workers=2)
    applied = sorted(m.label for r in results for m in r)
    assert applied == sorted(m.label for m in migrations.available() + migrations.plugin_available())
    db = bind(db_url)
    assert migrations.current_version(db) == migrations.latest_version()
    db.close()
