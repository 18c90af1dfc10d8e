"""``/healthz``: JSON saying whether the database answers and its schema is current."""

from __future__ import annotations

import logging

from flask import Blueprint, g, jsonify

from core import __version__, migrations
from core.web.auth import public
from core.db import backend_name, database

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.route("/healthz")
@public
def healthz():
    """Database reachability and schema version; 200 when usable, 503 otherwise.

    The page is public (load balancers and monitors call it), so driver errors, which
    name hosts and users, go to the log and the answer says only what is wrong.
    """
    expected = migrations.latest_version()
    db = {"backend": backend_name(), "ok": False, "schema_version": None, "expected_schema_version": expected}
    if g.get("db_error"):
        log.error("healthz: database unreachable: %s", g.db_error)
        db["error"] = "database unreachable"
    else:
        try:
            database.execute_sql("SELECT 1")
            db["schema_version"] = migrations.current_version(database.obj)
            db["ok"] = True
        except Exception as exc:
            log.error("healthz: database query failed: %s", exc)
            db["error"] = "database query failed"
    if db["ok"] and db["schema_version"] != expected:
        db["ok"] = False
        db["error"] = f"schema version {db['schema_version']}, expected {expected}: run 'wispbill migrate'"
    body = {"status": "ok" if db["ok"] else "error", "version": __version__, "database": db}
    return jsonify(body), 200 if db["ok"] else 503
