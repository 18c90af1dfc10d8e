"""Schema version 4: dunning, the scheduler lease, notifications and router enforcement fields."""

from pathlib import Path

from core.db import backend_name
from core.migrations import run_sql_file


def up(migrator, db):
    """Apply the SQL for this database's dialect."""
    run_sql_file(db, Path(__file__).with_name(f"0004_dunning.{backend_name(db)}.sql"))
