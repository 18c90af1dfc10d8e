"""Schema version 1: every table of the domain, with its keys, checks and indexes."""

from pathlib import Path

from core.db import backend_name
from core.migrations import run_sql_file


def up(migrator, db):
    """Create the tables from the snapshot SQL for this database's dialect."""
    run_sql_file(db, Path(__file__).with_name(f"0001_initial.{backend_name(db)}.sql"))
