"""The API's guard: a bearer token with the call's scope, of a staff member whose role allows it.

Only the ``Authorization: Bearer`` header counts. Cookies are ignored, so a browser
signed in to the console cannot be made to call the API from another site (which is
why the API needs no CSRF token). Presented tokens that are wrong count as failed
sign-ins of the ``api`` realm by the caller's address (:mod:`core.login_throttle`).
"""

from __future__ import annotations

import functools

from flask import g, jsonify, request

from core import api_tokens, audit, login_throttle, permissions
from core.web.auth import _mark

REALM = "api"


def error(status: int, message: str, field: str | None = None, headers: dict | None = None):
    """A JSON error answer: ``{"error", "message", "status"}``, plus ``field`` when one is to blame."""
    from core.web.errors import TITLES

    body = {"error": TITLES.get(status, "Error"), "message": message, "status": status}
    if status == 401:
        body["error"] = "Unauthorized"
    elif status == 429:
        body["error"] = "Too many requests"
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _unauthorized(message: str, problem: str = "invalid_token"):
    return error(401, message, headers={"WWW-Authenticate": f'Bearer realm="wispbill", error="{problem}"'})


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def api_call(scope: str):
    """Guard an API view with ``scope`` (a key of :data:`core.permissions.SCOPES`)."""
    if scope not in permissions.SCOPES:
        raise KeyError(f"unknown API scope {scope!r}")
    permission = permissions.SCOPES[scope]

    def decorate(view):
        @functools.wraps(view)
        def wrapped(**kwargs):
            text = _bearer()
            if text is None:
                return error(401, "This call needs an API token: send 'Authorization: Bearer <token>'.",
                             headers={"WWW-Authenticate": 'Bearer realm="wispbill"'})
            address = request.remote_addr or "unknown"
            try:
                login_throttle.check(REALM, address, address)
            except login_throttle.TooManyAttempts as exc:
                return error(429, f"Too many calls with a wrong token from this address. "
                                  f"Try again in {exc.retry_after} seconds.",
                             headers={"Retry-After": str(exc.retry_after)})
            token = api_tokens.resolve(text)
            if token is None:
                login_throttle.failed(REALM, address, address)
                return _unauthorized("The API token is unknown, expired or revoked.")
            if scope not in (token.scopes or ()):
                return error(403, f"This token does not carry the scope {scope}.")
            user = token.user
            if not permissions.allowed(user.role, permission):
                return error(403, f"The role of {user.username} ({user.role}) may not "
                                  f"{permissions.PERMISSIONS[permission]}.")
            g.api_token, g.api_user = token, user
            # The username is cut so that the actor fits every column that records who acted.
            actor = audit.set_actor(f"api:{user.username[:80]}:{token.prefix}")
            try:
                return view(**kwargs)
            finally:
                audit.reset_actor(actor)
        return _mark(wrapped, "api", scope)
    return decorate
