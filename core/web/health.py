"""``/healthz``: JSON saying whether the database answers and its schema is current."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from core import __version__, migrations
from core.db import backend_name, database

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    expected = migrations.latest_version()
    db = {"backend": backend_name(), "ok": False, "schema_version": None, "expected_schema_version": expected}
    if g.get("db_error"):
        db["error"] = g.db_error
    else:
        try:
            database.execute_sql("SELECT 1")
            db["schema_version"] = migrations.current_version(database.obj)
            db["ok"] = True
        except Exception as exc:
            db["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    if db["ok"] and db["schema_version"] != expected:
        db["ok"] = False
        db["error"] = f"schema version {db['schema_version']}, expected {expected}: run 'wispbill migrate'"
    body = {"status": "ok" if db["ok"] else "error", "version": __version__, "database": db}
    return jsonify(body), 200 if db["ok"] else 503
