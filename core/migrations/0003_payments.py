"""Schema version 3: payments (receipts, started payments, the review queue, pay links)."""

from pathlib import Path

from core.db import backend_name
from core.migrations import run_sql_file


def up(migrator, db):
    """Apply the SQL for this database's dialect."""
    run_sql_file(db, Path(__file__).with_name(f"0003_payments.{backend_name(db)}.sql"))
