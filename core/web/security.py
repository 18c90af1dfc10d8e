"""Security headers on every response, and the deny-by-default rule for routes.

Every view says who may reach it (:func:`core.web.auth.staff`, :func:`core.web.auth.public`,
:func:`core.web.portal_auth.customer_required`, :func:`core.web.api.auth.api_call`); a view
that does not is answered 403, so a route added without a guard is closed, not open.

The Content-Security-Policy allows scripts, styles, fonts and images from this site only:
no inline script, no ``eval``. A page that must carry an inline stylesheet (an invoice, so
that a saved copy stands alone) adds the stylesheet's hash with :func:`allow_inline_style`.
"""

from __future__ import annotations

import base64
import hashlib
import logging

from flask import abort, current_app, g, request

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'{styles}; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'")


def allow_inline_style(css: str) -> None:
    """Let this response's page carry the inline stylesheet ``css``."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    g.setdefault("csp_styles", []).append(f"'sha256-{digest}'")


def access_of(view) -> tuple | None:
    """Who may reach ``view``: ``("public",)``, ``("staff", permission)``, ``("customer",)``,
    ``("api", scope)``, or ``None`` when it says nothing."""
    return getattr(view, "wispbill_access", None)


def deny_undeclared():
    """A before-request hook: 403 for a view that declares no access rule."""
    if request.endpoint is None or request.endpoint == "static":
        return None
    view = current_app.view_functions.get(request.endpoint)
    if view is not None and access_of(view) is None:
        log.error("refused %s: the view %s declares no access rule", request.path, request.endpoint)
        abort(403, "This page is not open to anyone.")
    return None


def add_headers(response):
    """An after-request hook: CSP and the other headers every response carries."""
    styles = "".join(" " + h for h in g.get("csp_styles", ()))
    response.headers.setdefault("Content-Security-Policy", CSP.format(styles=styles))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static" and "Cache-Control" not in response.headers and (
            g.get("user") is not None or g.get("customer") is not None):
        response.headers["Cache-Control"] = "private, no-store"  # signed-in pages stay off shared caches
    return response


def register(app) -> None:
    """Install the hooks on ``app``."""
    app.before_request(deny_undeclared)
    app.after_request(add_headers)
