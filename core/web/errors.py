"""Error pages: HTML for people, JSON for API and machine paths; never a traceback."""

from __future__ import annotations

import logging

import peewee
from flask import jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from core.errors import DatabaseUnavailable, NotFound, ValidationError

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    413: "Request too large", 500: "Something went wrong", 503: "Service unavailable",
}


def _wants_json() -> bool:
    if request.path.startswith(("/api/", "/hooks/", "/healthz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def render_error(status: int, message: str):
    """An error response in the form the client asked for."""
    title = TITLES.get(status, "Error")
    if _wants_json():
        return jsonify({"error": title, "message": message, "status": status}), status
    return render_template("errors/error.html", status=status, title=title, message=message), status


def register(app) -> None:
    """Install the error handlers on ``app``."""

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return render_error(400, f"The form's security token is missing or invalid ({exc.description}). "
                                 "Reload the page and try again.")

    @app.errorhandler(ValidationError)
    def validation_error(exc):
        return render_error(400, str(exc))

    @app.errorhandler(NotFound)
    def not_found(exc):
        return render_error(404, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc):
        return render_error(exc.code or 500, exc.description or TITLES.get(exc.code, "Error"))

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    @app.errorhandler(DatabaseUnavailable)
    def db_error(exc):
        log.error("database unavailable: %s", exc)
        return render_error(503, "The database is not answering. Try again in a moment.")

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(500, "An unexpected error happened; it has been logged.")
