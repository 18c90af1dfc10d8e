"""Console pages for the operator's records: plans, invoices, payments, routers, dunning, plugins, staff."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("console", __name__, url_prefix="/admin")
