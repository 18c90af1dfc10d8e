"""Staff sign-in and sign-out, and the guards that say who may reach each view (:func:`staff`, :func:`public`)."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for

from core import audit, login_throttle, permissions, sessions, users
from core.db import database

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.before_app_request
def load_user():
    """Put the signed-in staff member (or ``None``) on ``g.user`` and make them the audit actor."""
    token = session.get("token")
    g.user = None
    if token is not None and g.get("db_error") is None:
        user = sessions.resolve(token)
        if user is None:
            session.clear()
        else:
            g.user = user
            audit.set_actor(f"user:{user.username}")


def _mark(view, *access):
    # Read by the deny-by-default guard (core.web.security) and the authorization tests.
    view.wispbill_access = access
    return view


def staff(permission: str = "view"):
    """Guard a console view: staff only, with a role that has ``permission`` (core.permissions).

    Anonymous visitors are sent to sign in and back; a role without the permission gets 403.
    """
    if permission not in permissions.PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")

    def decorate(view):
        @functools.wraps(view)
        def wrapped(**kwargs):
            if g.user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not permissions.allowed(g.user.role, permission):
                abort(403, f"Your role ({g.user.role}) may not {permissions.PERMISSIONS[permission]}.")
            return view(**kwargs)
        return _mark(wrapped, "staff", permission)
    return decorate


login_required = staff("view")


def can(permission: str) -> bool:
    """Whether the signed-in staff member may do what ``permission`` names (for templates)."""
    user = g.get("user")
    return user is not None and permissions.allowed(user.role, permission)


def public(view):
    """Mark a view as open to visitors who are not signed in (a status page, a webhook)."""
    view.wispbill_public = True
    return _mark(view, "public")


def require_staff_unless_public():
    """A blueprint guard: staff sign-in for every view not marked :func:`public`."""
    view = current_app.view_functions.get(request.endpoint)
    if view is None or getattr(view, "wispbill_public", False) or g.get("user") is not None:
        return None
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the dashboard.

    Browsers drop tabs and newlines from URLs and treat ``\\`` as ``/``, so anything
    that could turn into ``//other.host`` is refused along with absolute URLs.
    """
    if target and target.isprintable() and not any(c.isspace() or c == "\\" for c in target):
        parts = urlsplit(target)
        if target.startswith("/") and not target.startswith("//") and not parts.scheme and not parts.netloc:
            return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=("GET", "POST"))
@public
def login():
    """The sign-in form; on success, back to the page that asked for it.

    Failed attempts count towards the lockout of :mod:`core.login_throttle`.
    """
    error = None
    status = 200
    if request.method == "POST":
        username = request.form.get("username", "")
        try:
            login_throttle.check("staff", username, request.remote_addr)
        except login_throttle.TooManyAttempts as exc:
            return render_template("auth/login.html", error=str(exc)), 429, {"Retry-After": str(exc.retry_after)}
        with audit.acting_as(f"user:{username.strip()[:100]}"):
            user = users.authenticate(username, request.form.get("password", ""))
        if user is None:
            login_throttle.failed("staff", username, request.remote_addr)
            error = "Wrong username or password."
            status = 400
        else:
            login_throttle.succeeded("staff", username)
            sessions.revoke(session.get("token"))  # signing in again ends the previous session
            session.clear()
            session.permanent = True
            session["token"] = sessions.start(user, request.user_agent.string, request.remote_addr)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", error=error), status


@bp.route("/logout", methods=("POST",))
@public
def logout():
    """End the session (a POST with the CSRF token, so a link cannot sign anyone out)."""
    if g.user is not None:
        with database.atomic():
            sessions.revoke(session.get("token"))
            audit.record("user.logout", "user", g.user.id)
    session.clear()
    return redirect(url_for("auth.login"))
