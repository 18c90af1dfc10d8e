"""The "please pay" page suspended subscribers land on: ``/suspended``.

Routers send a suspended subscriber's web traffic here. The page recognises the
subscriber by the address the request comes from (a service's IP address), or asks for the
account number, and shows what is owed with a pay link per open invoice, so the subscriber
can pay and be back online without calling anyone. Looking up by account number also asks
for the last four digits of the phone number or the e-mail address on file (a customer with
neither is asked to contact the operator), and is limited per source address and per
account number, so the page cannot be used to list customers. The limits are kept in
memory, per web process.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from flask import Blueprint, Response, render_template, request

from core import paylinks
from core.web.auth import public
from core.models import Customer, Invoice, Service

bp = Blueprint("suspended", __name__)

LOOKUPS_PER_WINDOW = 10
WINDOW_SECONDS = 600
MAX_TRACKED = 20_000  # sources and accounts remembered at once; the oldest are forgotten first
_lookups: dict[str, deque] = defaultdict(deque)
_lock = threading.Lock()


def _allowed(*names: str) -> bool:
    """Whether another account-number lookup may go ahead for all of ``names`` now (sliding windows)."""
    now = time.monotonic()
    with _lock:
        if len(_lookups) > MAX_TRACKED:
            for name in [n for n, seen in _lookups.items() if not seen or now - seen[-1] > WINDOW_SECONDS]:
                del _lookups[name]
            while len(_lookups) > MAX_TRACKED:
                del _lookups[next(iter(_lookups))]
        windows = []
        for name in names:
            seen = _lookups[name]
            while seen and now - seen[0] > WINDOW_SECONDS:
                seen.popleft()
            windows.append(seen)
        if any(len(seen) >= LOOKUPS_PER_WINDOW for seen in windows):
            return False
        for seen in windows:
            seen.append(now)
        return True


def customer_at(address: str | None) -> Customer | None:
    """The customer whose service uses IP ``address``, if exactly one does."""
    if not address:
        return None
    found = {s.customer_id for s in Service.select(Service.customer).where(
        (Service.ip_address == address) & (Service.status != "cancelled"))}
    return Customer.get_by_id(found.pop()) if len(found) == 1 else None


def _proof_matches(customer: Customer, proof: str) -> bool:
    """Whether ``proof`` is the e-mail address or the last four phone digits on file."""
    digits = "".join(ch for ch in (customer.phone or "") if ch.isdigit())
    proof = proof.strip()
    if not proof:
        return False
    if customer.email and proof.lower() == customer.email.lower():
        return True
    return bool(digits) and len(proof) == 4 and proof.isdigit() and digits.endswith(proof)


def _open_invoices(customer: Customer) -> list[tuple[Invoice, int, str]]:
    rows = (Invoice.select().where((Invoice.customer == customer.id) & (Invoice.status == "issued"))
            .order_by(Invoice.due_date, Invoice.id))
    out = []
    for invoice in rows:
        due = invoice.total_minor - invoice.settled_minor
        if due > 0:
            out.append((invoice, due, "/pay/" + paylinks.token_for(invoice)))
    return out


def _masked(name: str) -> str:
    """A customer's name as the page shows it to whoever is asking: first name, initials after."""
    parts = name.split()
    if not parts:
        return ""
    return " ".join([parts[0]] + [p[0] + "." for p in parts[1:]])


def _render(status=200, **context) -> Response:
    response = Response(render_template("suspended/page.html", **context), status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.route("/suspended", methods=["GET"])
@public
def page():
    """Who this is, what is owed and how to pay; or a form asking for the account number."""
    address = request.remote_addr
    account = (request.args.get("account") or "").strip()[:40]
    proof = (request.args.get("check") or "").strip()[:254]
    customer, error, status = None, None, 200
    if account:
        if not _allowed(f"from:{address or '?'}", f"account:{account.casefold()}"):
            return _render(429, error="Too many tries from this connection. Please wait a few minutes.",
                           account=account, customer=None)
        candidate = Customer.get_or_none(Customer.account_number == account)
        if candidate is None or not _proof_matches(candidate, proof):
            error, status = ("We could not find that account with those details. Check them and try again, "
                             "or contact us."), 404
        else:
            customer = candidate
    else:
        customer = customer_at(address)
    if customer is None:
        return _render(status, customer=None, error=error, account=account)
    invoices = _open_invoices(customer)
    total = sum(due for _inv, due, _url in invoices)
    return _render(customer=customer, name=_masked(customer.name), invoices=invoices, total=total,
                   account=customer.account_number, error=None)
