"""Schema version 6: indexes for the console's figures (payments by day, invoices by month, open invoices)."""

from pathlib import Path

from core.db import backend_name
from core.migrations import run_sql_file


def up(migrator, db):
    """Apply the SQL for this database's dialect."""
    run_sql_file(db, Path(__file__).with_name(f"0006_web_indexes.{backend_name(db)}.sql"))
