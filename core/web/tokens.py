"""Staff pages for API tokens: each staff member makes and revokes their own; admins see everyone's.

A new token is shown once, on the page that answers its creation (never stored, never
sent again). Tokens carry only scopes the member's role may hold.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from core import api_tokens, permissions
from core.errors import NotFound, ValidationError
from core.web.auth import staff

bp = Blueprint("tokens", __name__, url_prefix="/admin/tokens")



def _sees_all() -> bool:
    return permissions.allowed(g.user.role, "users.manage")


def _page(*, new_token=None, error=None, form=None, status=200):
    rows = api_tokens.listing(None if _sees_all() else g.user)
    scopes = [(s, permissions.PERMISSIONS[permissions.SCOPES[s]]) for s in permissions.scopes_for(g.user.role)]
    response = render_template("tokens/listing.html", tokens=rows, status_of=api_tokens.status, scopes=scopes,
                               sees_all=_sees_all(), new_token=new_token, error=error,
                               form=form or {"name": "", "scopes": [], "expires_days": ""})
    headers = {"Cache-Control": "no-store"} if new_token else {}
    return response, status, headers


@bp.route("/", methods=("GET",))
@staff("view")
def listing():
    """Your tokens (everyone's, for staff who manage users), and the form to make one."""
    return _page()


@bp.route("/", methods=("POST",))
@staff("view")
def create():
    """Make a token for yourself and show it once; bad input is shown back with a 400."""
    form = {"name": request.form.get("name", ""), "scopes": request.form.getlist("scopes"),
            "expires_days": request.form.get("expires_days", "").strip()}
    try:
        row, text = api_tokens.create(g.user, name=form["name"], scopes=form["scopes"],
                                      expires_days=form["expires_days"] or None)
    except ValidationError as exc:
        return _page(error=exc, form=form, status=400)
    return _page(new_token={"row": row, "text": text})


@bp.route("/<int:token_id>/revoke", methods=("POST",))
@staff("view")
def revoke(token_id: int):
    """Revoke one of your tokens (anyone's, for staff who manage users)."""
    try:
        row = api_tokens.revoke(token_id, actor=g.user)
    except NotFound:
        abort(404, "There is no such token.")
    except ValidationError as exc:
        flash(str(exc))
    else:
        flash(f"Token {row.prefix}… ({row.name}) is revoked; calls with it are refused from now on.")
    return redirect(url_for(".listing"))
