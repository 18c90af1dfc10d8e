"""RADIUS version 1: the rlm_sql tables FreeRADIUS reads and writes, the session-action queue and usage state."""

from pathlib import Path

from core.db import backend_name
from core.migrations import run_sql_file


def up(migrator, db):
    """Apply the SQL for this database's dialect."""
    run_sql_file(db, Path(__file__).with_name(f"0001_tables.{backend_name(db)}.sql"))
