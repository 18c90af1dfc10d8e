"""Staff pages for what customers ask in the portal: messages and plan-change requests."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("requests", __name__, url_prefix="/admin/requests")
