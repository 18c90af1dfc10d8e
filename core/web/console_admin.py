"""Console: the loaded plugins and every declared setting (secrets never shown back), and staff users."""

from __future__ import annotations

import json

from flask import g, request

from core import settings, users
from core.errors import NotFound, ValidationError
from core.models import Setting
from core.permissions import PERMISSIONS, ROLE_LABELS, ROLE_PERMISSIONS
from core.plugins import get_manager
from core.web.auth import staff
from core.web.console import bp, done, page


def as_text(value) -> str:
    """A stored value as an operator would type it again (lists and mappings as JSON)."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def setting_rows() -> list[dict]:
    """Every declared setting for the page; a secret carries only whether it is set, never its value."""
    specs = settings.declared()
    stored = {row.key: row.value for row in Setting.select(Setting.key, Setting.value)}
    rows = []
    for item in settings.listing():
        key = item["key"]
        spec = specs[key]
        row = {"key": key, "label": item["label"], "help": spec.help, "secret": spec.secret, "stored": item["set"]}
        if spec.secret:
            row["text"] = ""
            row["shown"] = "set" if stored.get(key) not in (None, "") else "not set"
        else:
            row["text"] = as_text(stored[key] if key in stored else spec.default)
            row["shown"] = row["text"]
        rows.append(row)
    return rows


def _plugins_page(status=200, error=None, error_key=None, typed=None):
    pm = get_manager()
    rows = setting_rows()
    if error_key is not None and typed is not None:
        for row in rows:
            if row["key"] == error_key and not row["secret"]:
                row["text"] = typed  # shown back as typed, to be corrected
    return page("console/plugins.html", status, plugins=pm.report(), failures=pm.failures, settings=rows,
                error=error, error_key=error_key)


@bp.route("/plugins", endpoint="plugins")
@staff("view")
def plugins_page():
    """The loaded plugins (name, source, version, hooks), those that failed, and every setting."""
    return _plugins_page()


@bp.route("/settings/<key>", methods=("POST",))
@staff("settings.manage")
def setting_set(key: str):
    """Set one setting, checked by its declaration; a secret left blank keeps what is stored."""
    spec = settings.declared().get(key)
    if spec is None:
        raise NotFound(f"no setting {key!r}")
    text = request.form.get("value", "")
    if spec.secret and text == "":
        return done(f"{key} left as it was.", "console.plugins", _anchor=f"setting-{key}")
    try:
        settings.set_value(key, text)
    except ValidationError as exc:
        return _plugins_page(400, exc, key, None if spec.secret else text)
    return done(f"{key} saved.", "console.plugins", _anchor=f"setting-{key}")


# --- staff users ---------------------------------------------------------------------

def _users_page(status=200, error=None, error_id=None, form=None):
    return page("console/users.html", status, users=users.listing(), roles=ROLE_LABELS, error=error,
                error_id=error_id, form=form or {"username": "", "role": "support"},
                permissions=PERMISSIONS, role_permissions=ROLE_PERMISSIONS)


@bp.route("/users", endpoint="users")
@staff("users.manage")
def users_page():
    """Staff users with their roles, and the forms to add, change, deactivate and reset them."""
    return _users_page()


@bp.route("/users", methods=("POST",))
@staff("users.manage")
def user_add():
    """Add a staff user with a role and a first password."""
    form = {"username": request.form.get("username", "").strip(), "role": request.form.get("role", "")}
    try:
        user = users.create(form["username"], request.form.get("password", ""), role=form["role"])
    except ValidationError as exc:
        return _users_page(400, exc, "new", form)
    return done(f"{user.username} added as {ROLE_LABELS[user.role]}.", "console.users")


def _change(user_id: int, change, message):
    user = users.get(user_id)
    try:
        user = change(user)
    except ValidationError as exc:
        return _users_page(400, exc, user.id)
    return done(message(user), "console.users")


@bp.route("/users/<int:user_id>/role", methods=("POST",))
@staff("users.manage")
def user_role(user_id: int):
    """Give a staff user another role (never away from the last active admin)."""
    return _change(user_id, lambda u: users.set_role(u, request.form.get("role", "")),
                   lambda u: f"{u.username} is now {ROLE_LABELS[u.role]}.")


@bp.route("/users/<int:user_id>/active", methods=("POST",))
@staff("users.manage")
def user_active(user_id: int):
    """Deactivate a staff user (signed out everywhere at once) or let them back in."""
    active = request.form.get("active") == "1"
    return _change(user_id, lambda u: users.set_active(u, active),
                   lambda u: f"{u.username} {'may sign in again' if u.active else 'is deactivated and signed out'}.")


@bp.route("/users/<int:user_id>/password", methods=("POST",))
@staff("users.manage")
def user_password(user_id: int):
    """Set a new password for a staff user; their open sessions end."""
    return _change(user_id, lambda u: users.reset_password(u, request.form.get("password", "")),
                   lambda u: f"New password set for {u.username}; they must sign in again"
                             + (" (that includes you)." if g.user.id == u.id else "."))
