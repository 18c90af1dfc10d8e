"""Console pages for the operator's records: plans, invoices, payments, routers, dunning, plugins, staff.

The pages live in ``console_*`` modules that add their views to :data:`bp`; this module
holds the blueprint and what they share.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for

from core.plugins import get_manager
from core.web.auth import can
from core.web.security import access_of

bp = Blueprint("console", __name__, url_prefix="/admin")

PER_PAGE = 50


def page(template: str, http_status: int = 200, **context):
    """Render a console page with ``http_status`` (400 when a form is shown back with its error)."""
    return render_template(template, **context), http_status


def done(message: str, endpoint: str, **values):
    """After a change: say what was done on the next page, and go there (post/redirect/get)."""
    flash(message)
    return redirect(url_for(endpoint, **values), code=303)


def page_number(text) -> int:
    """The page asked for (``?page=``), 1 when missing or not a small whole number."""
    return int(text) if str(text or "").isdigit() and 0 < int(text) < 100_000 else 1


def plugin_links() -> list[tuple[str, str]]:
    """``(label, url)`` of the plugins' own console pages the signed-in user may open."""
    results, _errors = get_manager().call_all("console_links")
    links = []
    for _plugin, answer in results:
        for item in answer if isinstance(answer, list) else []:
            if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                continue
            label, endpoint = item
            view = current_app.view_functions.get(endpoint)
            access = access_of(view) if view is not None else None
            if access is None or (access[0] == "staff" and not can(access[1])):
                continue
            try:
                links.append((label, url_for(endpoint)))
            except Exception:  # noqa: BLE001 - an endpoint that needs arguments cannot be linked
                continue
    return links


# The pages register their views on ``bp`` when imported.
from core.web import console_admin, console_money, console_plans, console_routers  # noqa: E402

PAGES = (console_plans, console_money, console_routers, console_admin)
