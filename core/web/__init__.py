"""The web app: a Flask app factory with the core's blueprints and the plugins' routes.

Configuration comes from :func:`core.config.load_config` (defaults, the TOML file, the
environment), then ``test_config``. Each request holds one database connection.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from flask import Blueprint, Flask, current_app, g, redirect, request, url_for
from markupsafe import Markup, escape
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from werkzeug.middleware.proxy_fix import ProxyFix

from core import __version__, audit, sessions, settings
from core.config import configure_logging, load_config
from core.db import bind, database
from core.errors import PluginError
from core.money import Money
from core.plugins import build_manager, set_manager
from core.web import dispatch, errors, security
from core.web.auth import can, public

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates"

# Each module holds a blueprint ``bp``, registered in this order.
BLUEPRINTS = ("health", "auth", "admin", "console", "documents", "pay", "hooks", "suspended", "portal",
              "requests", "tokens", "api")
# Gateways sign their notifications and API clients send a bearer token: neither can carry
# the form token (the API refuses cookies, so a browser cannot be tricked into a call).
CSRF_EXEMPT = ("hooks", "api")

csrf = CSRFProtect()
htmx = Htmx()


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app. ``test_config`` may set ``DATABASE_URL``, ``DATA_DIR``,
    ``SECRET_KEY``, ``PLUGIN_MANAGER`` and any Flask setting."""
    test_config = dict(test_config or {})
    overrides = {k.lower(): test_config.pop(k) for k in ("DATABASE_URL", "DATA_DIR", "SECRET_KEY") if k in test_config}
    config = load_config(overrides=overrides)
    configure_logging(config)
    bind(config.database_url, pooled=True)
    pm = test_config.pop("PLUGIN_MANAGER", None) or build_manager(blocked=config.disable_plugins)
    set_manager(pm)

    app = Flask(__name__, template_folder=str(TEMPLATE_DIR), static_folder="static")
    direct_app = app.wsgi_app
    if config.trusted_proxies:
        # Behind a reverse proxy the client's address, scheme and host come from its headers;
        # pay links, gateway callbacks and source-address checks need the real ones.
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)
    app.config.from_mapping(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME="wispbill_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=sessions.LIFETIME,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session it belongs to
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        WISPBILL=config,
    )
    app.config.update(test_config)
    app.extensions["wispbill.plugins"] = pm
    if app.config.get("PORTAL_PORT"):
        from core.web.portal_port import PortalRedirect

        # Routers send subscribers to the portal port directly, never through the proxy:
        # forwarded headers arriving there are the subscriber's own, and are ignored.
        app.wsgi_app = PortalRedirect(app.wsgi_app, app.config["PORTAL_PORT"], direct=direct_app)

    csrf.init_app(app)
    htmx.init_app(app)

    # Registered before the blueprints so that their before-request hooks see an open
    # database and can set the audit actor.
    @app.before_request
    def _open_db():
        g.audit_token = audit.set_actor("anonymous")
        g.settings_token = settings.begin_snapshot()
        g.db_error = None
        dispatch.begin()
        try:
            database.connect(reuse_if_open=True)
        except Exception as exc:  # reported by /healthz; other pages answer 503
            g.db_error = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__

    @app.teardown_request
    def _close_db(exc):
        try:
            dispatch.finish(exc)
        except Exception:  # never turn a finished request into an error
            app.logger.exception("handing the request's events to plugins failed")
        token = g.pop("audit_token", None)
        if token is not None:
            audit.reset_actor(token)
        token = g.pop("settings_token", None)
        if token is not None:
            settings.end_snapshot(token)
        if not database.is_closed():
            database.close()


    for name in BLUEPRINTS:
        module = importlib.import_module(f"core.web.{name}")
        app.register_blueprint(module.bp)
        if name in CSRF_EXEMPT:
            csrf.exempt(module.bp)
    errors.register(app)
    security.register(app)
    app.add_url_rule("/", "index", public(lambda: redirect(url_for("admin.dashboard"))))
    _register_plugin_routes(app, pm)

    @app.template_filter("money")
    def _money(minor, currency):
        return "" if minor is None else str(Money(minor, currency))

    @app.context_processor
    def _globals():
        company = None
        if g.get("db_error") is None:
            try:
                company = settings.get_or("company.name", None)
            except Exception:  # a page must render even when settings cannot be read
                company = None
        return {"wispbill_version": __version__, "company_name": company, "can": can, "nav_link": nav_link}

    return app


def nav_link(endpoint: str, label: str, permission: str = "view") -> Markup:
    """A menu link to ``endpoint`` if the app has it and the signed-in user may use it, else nothing."""
    if endpoint not in current_app.view_functions or not can(permission):
        return Markup("")
    url = url_for(endpoint)
    current = ' aria-current="page"' if request.path == url or (url != "/admin/" and request.path.startswith(url)) \
        else ""
    return Markup(f'<a href="{escape(url)}"{current}>{escape(label)}</a>')


def _register_plugin_routes(app: Flask, pm) -> None:
    """Register the plugins' blueprints, each guarded by staff sign-in unless a view is public."""
    from core.web.auth import _mark, require_staff_unless_public

    for plugin, bp in pm.call_items("register_routes", Blueprint):
        try:
            app.register_blueprint(bp)
            for endpoint, view in app.view_functions.items():
                if endpoint.startswith(bp.name + ".") and not hasattr(view, "wispbill_access"):
                    _mark(view, "staff", "view")  # what require_staff_unless_public asks
            # On the app, not the blueprint: a module-level blueprint is registered again by
            # every app built in the same process, and Flask refuses changes after the first.
            app.before_request_funcs.setdefault(bp.name, []).append(require_staff_unless_public)
        except Exception as exc:
            app.logger.error("%s", PluginError(plugin, "register_routes", exc))
