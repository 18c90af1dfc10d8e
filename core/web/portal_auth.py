"""Who is signed in to the customer portal (``g.customer``), and the guard of portal views.

The portal keeps its session token under its own key (``session["portal_token"]``) in the
app's session cookie, apart from the staff one: a staff sign-in is no customer sign-in,
and a customer's is no staff one.
"""

from __future__ import annotations

import functools

from flask import g, redirect, request, session, url_for

from core import audit, portal_accounts
from core.web.auth import _mark

SESSION_KEY = "portal_token"


def load_customer() -> None:
    """Put the signed-in customer (or ``None``) on ``g.customer``."""
    g.customer = None
    token = session.get(SESSION_KEY)
    if token is None or g.get("db_error") is not None:
        return
    customer = portal_accounts.resolve(token)
    if customer is None:
        session.pop(SESSION_KEY, None)
        return
    g.customer = customer
    if g.get("user") is None:  # a staff member signed in too stays the actor of what they do
        audit.set_actor(f"customer:{customer.account_number}")


def sign_in(customer, remote_addr: str | None, user_agent: str | None) -> None:
    """Start a portal session for ``customer`` in this browser, ending the one it had."""
    portal_accounts.revoke(session.get(SESSION_KEY))
    session.permanent = True
    session[SESSION_KEY] = portal_accounts.start_session(customer, user_agent, remote_addr)
    g.customer = customer


def sign_out() -> None:
    """End this browser's portal session (a staff session in it stays)."""
    portal_accounts.revoke(session.pop(SESSION_KEY, None))
    g.customer = None


def customer_required(view):
    """Guard a portal view: a signed-in customer only; anyone else is sent to the portal sign-in."""
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.get("customer") is None:
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("portal.login", next=target))
        return view(**kwargs)
    return _mark(wrapped, "customer")
