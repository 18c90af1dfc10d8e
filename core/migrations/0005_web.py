"""Schema version 5: the web (portal sign-in, password resets, login failures, API tokens, customer requests)."""

from pathlib import Path

from core.db import backend_name
from core.migrations import run_sql_file


def up(migrator, db):
    """Apply the SQL for this database's dialect."""
    run_sql_file(db, Path(__file__).with_name(f"0005_web.{backend_name(db)}.sql"))
