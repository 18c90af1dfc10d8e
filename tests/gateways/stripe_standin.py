"""A stand-in for the part of Stripe's API the gateway uses, served over HTTP on loopback.

It answers as Stripe documents: form-encoded requests (``line_items[0][price_data][currency]``),
``Authorization: Bearer <secret key>``, JSON objects with ``object`` set, lists as
``{"object": "list", "data": [...], "has_more": ...}`` and errors as
``{"error": {"type", "code", "message", "param"}}``. A repeated ``Idempotency-Key`` gets the
first answer again. It records every request so that tests can look at what was sent.

Endpoints: ``POST /v1/checkout/sessions``, ``POST /v1/refunds``, ``GET /v1/refunds?charge=``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer

API_KEY = "sk_test_standin0000000000000000000000Kd8Q"


@dataclass
class Recorded:
    """One request the stand-in received: ``params`` is the form body (or query) unflattened."""

    method: str
    path: str
    params: dict
    headers: dict = field(default_factory=dict)


def unflatten(pairs) -> dict:
    """Stripe's bracketed form keys back into nested dicts, and lists where the keys are 0, 1, ..."""
    root: dict = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    node = {key: _lists(value) for key, value in node.items()}
    if node and all(key.isdigit() for key in node):
        return [node[key] for key in sorted(node, key=int)]
    return node


def _id(prefix: str) -> str:
    return f"{prefix}_{'test_' if prefix == 'cs' else ''}{secrets.token_hex(12)}"


class StripeError(Exception):
    """An error answer: HTTP ``status`` and Stripe's error object."""

    def __init__(self, status: int, type_: str, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {k: v for k, v in
                               {"type": type_, "code": code, "message": message, "param": param}.items()
                               if v is not None}}


class StripeStandIn(LoopbackServer):
    """The stand-in server: ``start()``, then point ``stripe.api_base`` at ``url``; ``stop()`` after."""

    def __init__(self, api_key: str = API_KEY):
        super().__init__()
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.sessions: dict[str, dict] = {}
        self.intents: dict[str, dict] = {}  # payment intent id -> {"amount", "currency", "charge"}
        self.refunds: list[dict] = []  # newest last
        self.refund_status = "succeeded"  # status given to refunds created through the API
        self.page_size: int | None = None  # cap list pages below the requested limit, to exercise paging
        self._failures: list[StripeError] = []
        self._replies: dict[str, tuple[int, dict]] = {}
        self._lock = threading.Lock()

    # --- life cycle -----------------------------------------------------------------

    name = "stripe-standin"

    def handler_class(self):
        return _Handler

    # --- test controls --------------------------------------------------------------

    def fail_next(self, status: int, type_: str, message: str, code: str | None = None,
                  param: str | None = None) -> None:
        """Answer the next API request with this Stripe error instead."""
        with self._lock:
            self._failures.append(StripeError(status, type_, message, code, param))

    def add_payment(self, intent_id: str, amount: int, currency: str, charge_id: str | None = None) -> str:
        """A succeeded payment intent with one charge, in Stripe's units; returns the charge id."""
        charge_id = charge_id or _id("ch")
        with self._lock:
            self.intents[intent_id] = {"amount": amount, "currency": currency.lower(), "charge": charge_id}
        return charge_id

    def add_refund(self, charge_id: str, amount: int, currency: str, status: str = "succeeded") -> dict:
        """A refund made outside wispbill (in the Dashboard, say)."""
        intent = next((pi for pi, data in self.intents.items() if data["charge"] == charge_id), None)
        refund = self._refund(charge_id, intent, amount, currency, status, {})
        with self._lock:
            self.refunds.append(refund)
        return refund

    def calls(self, method: str, path: str) -> list[Recorded]:
        """The recorded requests for one endpoint, oldest first."""
        return [r for r in self.requests if r.method == method and r.path == path]

    # --- the API --------------------------------------------------------------------

    def handle(self, method: str, path: str, params: dict, headers: dict) -> tuple[int, dict]:
        with self._lock:
            self.requests.append(Recorded(method, path, params, headers))
            failure = self._failures.pop(0) if self._failures else None
        try:
            if headers.get("authorization") != f"Bearer {self.api_key}":
                given = headers.get("authorization", "").removeprefix("Bearer ")
                raise StripeError(401, "invalid_request_error",
                                  f"Invalid API Key provided: {given[:8]}{'*' * 12}{given[-4:]}")
            if failure is not None:
                raise failure
            key = headers.get("idempotency-key")
            if method == "POST" and key and key in self._replies:
                return self._replies[key]
            reply = self._route(method, path, params)
            if method == "POST" and key:
                self._replies[key] = reply
            return reply
        except StripeError as exc:
            return exc.status, exc.body

    def _route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            return 200, self._create_session(params)
        if (method, path) == ("POST", "/v1/refunds"):
            return 200, self._create_refund(params)
        if (method, path) == ("GET", "/v1/refunds"):
            return 200, self._list_refunds(params)
        raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    @staticmethod
    def _required(params: dict, name: str):
        if params.get(name) in (None, ""):
            raise StripeError(400, "invalid_request_error", f"Missing required param: {name}.",
                              "parameter_missing", name)
        return params[name]

    @staticmethod
    def _integer(value, param: str) -> int:
        if not isinstance(value, str) or not value.isdigit():
            raise StripeError(400, "invalid_request_error", f"Invalid integer: {value}", "parameter_invalid_integer",
                              param)
        return int(value)

    def _create_session(self, params: dict) -> dict:
        mode = self._required(params, "mode")
        self._required(params, "success_url")
        items = self._required(params, "line_items")
        total, currency = 0, None
        for i, item in enumerate(items):
            price = item.get("price_data") or {}
            currency = self._required(price, "currency")
            name = (price.get("product_data") or {}).get("name")
            if not name:
                raise StripeError(400, "invalid_request_error", "Missing required param: product_data[name].",
                                  "parameter_missing", f"line_items[{i}][price_data][product_data][name]")
            total += self._integer(self._required(price, "unit_amount"), "unit_amount") * self._integer(
                item.get("quantity", "1"), "quantity")
        session_id = _id("cs")
        now = int(time.time())
        session = {
            "id": session_id, "object": "checkout.session", "amount_subtotal": total, "amount_total": total,
            "cancel_url": params.get("cancel_url"), "client_reference_id": params.get("client_reference_id"),
            "created": now, "currency": currency, "customer": None, "customer_details": None,
            "customer_email": params.get("customer_email"), "expires_at": now + 86400, "livemode": False,
            "metadata": params.get("metadata") or {}, "mode": mode, "payment_intent": None,
            "payment_status": "unpaid", "status": "open", "success_url": params["success_url"],
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        with self._lock:
            self.sessions[session_id] = session
        return session

    @staticmethod
    def _refund(charge, intent, amount, currency, status, metadata) -> dict:
        return {
            "id": _id("re"), "object": "refund", "amount": amount, "balance_transaction": None,
            "charge": charge, "created": int(time.time()), "currency": currency, "metadata": metadata,
            "payment_intent": intent, "reason": None, "receipt_number": None, "status": status,
        }

    def _create_refund(self, params: dict) -> dict:
        intent_id = self._required(params, "payment_intent")
        intent = self.intents.get(intent_id)
        if intent is None:
            raise StripeError(400, "invalid_request_error", f"No such payment_intent: '{intent_id}'",
                              "resource_missing", "payment_intent")
        refunded = sum(r["amount"] for r in self.refunds
                       if r["charge"] == intent["charge"] and r["status"] not in ("failed", "canceled"))
        left = intent["amount"] - refunded
        amount = self._integer(params["amount"], "amount") if "amount" in params else left
        if left <= 0:
            raise StripeError(400, "invalid_request_error", f"Charge {intent['charge']} has already been refunded.",
                              "charge_already_refunded")
        if amount > left:
            raise StripeError(400, "invalid_request_error",
                              f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                              "amount_too_large", "amount")
        refund = self._refund(intent["charge"], intent_id, amount, intent["currency"], self.refund_status,
                              params.get("metadata") or {})
        with self._lock:
            self.refunds.append(refund)
        return refund

    def _list_refunds(self, params: dict) -> dict:
        found = [r for r in reversed(self.refunds)
                 if "charge" not in params or r["charge"] == params["charge"]]
        if "starting_after" in params:
            ids = [r["id"] for r in found]
            found = found[ids.index(params["starting_after"]) + 1:] if params["starting_after"] in ids else []
        limit = self._integer(params.get("limit", "10"), "limit")
        if self.page_size:
            limit = min(limit, self.page_size)
        return {"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": "/v1/refunds"}


class _Handler(BaseHTTPRequestHandler):
    owner: StripeStandIn
    protocol_version = "HTTP/1.1"

    def _answer(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        pairs = urllib.parse.parse_qsl(url.query if method == "GET" else body, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, reply = self.owner.handle(method, url.path, unflatten(pairs), headers)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._answer("GET")

    def do_POST(self):  # noqa: N802
        self._answer("POST")

    def do_DELETE(self):  # noqa: N802
        self._answer("DELETE")

    def log_message(self, format, *args):  # noqa: A002 - quiet: tests read self.owner.requests instead
        pass
