"""The JSON API under ``/api/v1``: staff tokens with scopes, described at ``/api/v1/openapi.json``.

Each resource has its module; :mod:`core.web.api.auth` is the guard and
:mod:`core.web.api.openapi` builds the document from the routes.
"""

from __future__ import annotations

import importlib

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Importing a view module registers its routes on ``bp``.
MODULES = ("common", "openapi", "customers", "plans", "services", "invoices", "payments", "routers")
for _name in MODULES:
    importlib.import_module(f"{__name__}.{_name}")
