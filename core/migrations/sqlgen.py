"""Print the DDL that the current models would create, for writing a new migration.

    python -m core.migrations.sqlgen sqlite|postgresql [Model ...]

A migration keeps the SQL it was written with (a snapshot); the models move on. The test
``tests/core/test_migrations.py`` checks that the migrated schema still matches the
models (columns, nullability, primary keys and the unique keys the domain relies on), so
a model change without a migration fails the suite.
"""

from __future__ import annotations

import sys

import peewee

from core import models


def ddl(dialect: str, names=None) -> str:
    """The CREATE TABLE and CREATE INDEX statements for the models, in dependency order."""
    db = peewee.SqliteDatabase(":memory:") if dialect == "sqlite" else peewee.PostgresqlDatabase("x")
    wanted = [m for m in models.ALL_MODELS if not names or m.__name__ in names]
    out = []
    with db.bind_ctx(models.ALL_MODELS):
        for model in peewee.sort_models(wanted):
            ctx = db.get_sql_context()
            sql, params = ctx.sql(model._schema._create_table(safe=False)).query()
            assert not params
            out.append(sql + ";")
            for index in model._schema._create_indexes(safe=False):
                ctx = db.get_sql_context()
                isql, iparams = ctx.sql(index).query()
                if iparams:
                    isql = isql % tuple(repr(p) for p in iparams)
                out.append(isql + ";")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("sqlite", "postgresql"):
        sys.exit("usage: python -m core.migrations.sqlgen sqlite|postgresql [Model ...]")
    sys.stdout.write(ddl(sys.argv[1], sys.argv[2:]))
