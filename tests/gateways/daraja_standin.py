"""A stand-in for Safaricom's Daraja API on loopback, speaking the documented payloads.

It issues OAuth tokens for one consumer key and secret (Basic auth), answers STK push
requests after checking the bearer token and the password, registers C2B URLs, and
builds the callbacks Daraja would post afterwards. Tests steer it: shorten token
lifetimes, expire every token, queue an error answer, delay answers.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import secrets
import threading
import time
import urllib.parse
from decimal import Decimal
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer

KENYA = dt.timezone(dt.timedelta(hours=3))
STK_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")


def kenya_time(when: dt.datetime | None = None) -> str:
    """``when`` (aware, or naive UTC; default now) as Daraja's YYYYMMDDHHMMSS in Kenyan time."""
    when = when or dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(KENYA).strftime("%Y%m%d%H%M%S")


def encode(body) -> bytes:
    """A callback body as Daraja sends it: JSON, amounts given as Decimal written as plain numbers."""
    return json.dumps(body, default=_number).encode()


def _number(value):
    if isinstance(value, Decimal):
        return float(value)  # test amounts have few digits: the float prints back as the same decimal
    raise TypeError(f"cannot encode {value!r}")


class DarajaStandIn(LoopbackServer):
    """The server and what it saw. Use as a context manager, or call start() and stop()."""

    def __init__(self, consumer_key="standin-key", consumer_secret="standin-secret", shortcode="174379",
                 passkey="standin-passkey-0123456789abcdef", token_lifetime=3599):
        super().__init__()
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.shortcode = shortcode
        self.passkey = passkey
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.oauth_requests = 0
        self.stk_requests: list[dict] = []
        self.register_requests: list[dict] = []
        self.register_paths: list[str] = []
        self.refused: list[tuple[str, int, dict]] = []  # (path, status, body) of every error answer
        self.delay = 0.0
        self._errors: list[tuple[int, dict]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    # --- running ------------------------------------------------------------------

    name = "daraja-standin"

    def handler_class(self):
        return _Handler

    # --- steering -----------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Make every token issued so far unknown: the next call with one gets a 401."""
        with self._lock:
            self.tokens.clear()

    def fail_next(self, status: int, body: dict) -> None:
        """Answer the next STK push or URL registration with ``status`` and ``body``."""
        with self._lock:
            self._errors.append((status, body))

    def password_for(self, timestamp: str) -> str:
        return base64.b64encode(f"{self.shortcode}{self.passkey}{timestamp}".encode()).decode()

    # --- callbacks Daraja would send ------------------------------------------------

    def request_for(self, checkout_id: str) -> dict:
        for entry in self.stk_requests:
            if entry["response"]["CheckoutRequestID"] == checkout_id:
                return entry
        raise KeyError(checkout_id)

    def stk_callback(self, checkout_id: str, result_code: int = 0, *, amount=None, receipt: str | None = None,
                     phone=None, when: dt.datetime | None = None, result_desc: str | None = None) -> dict:
        """The documented STK result body for the push that returned ``checkout_id``."""
        entry = self.request_for(checkout_id)
        sent, answer = entry["request"], entry["response"]
        result = {
            "MerchantRequestID": answer["MerchantRequestID"],
            "CheckoutRequestID": checkout_id,
            "ResultCode": result_code,
            "ResultDesc": result_desc or ("The service request is processed successfully." if result_code == 0
                                          else {1032: "Request cancelled by user",
                                                1037: "DS timeout user cannot be reached",
                                                1: "The balance is insufficient for the transaction."}
                                          .get(result_code, "The transaction failed.")),
        }
        if result_code == 0:
            result["CallbackMetadata"] = {"Item": [
                {"Name": "Amount", "Value": sent["Amount"] if amount is None else amount},
                {"Name": "MpesaReceiptNumber", "Value": receipt or self.new_receipt()},
                {"Name": "Balance"},
                {"Name": "TransactionDate", "Value": int(kenya_time(when))},
                {"Name": "PhoneNumber", "Value": int(sent["PhoneNumber"]) if phone is None else phone},
            ]}
        return {"Body": {"stkCallback": result}}

    def c2b_payment(self, bill_ref: str, amount="1500.00", *, trans_id: str | None = None,
                    shortcode: str | None = None, msisdn="254708374149", first_name="JOHN",
                    when: dt.datetime | None = None, transaction_type="Pay Bill") -> dict:
        """The documented C2B validation / confirmation body for a payment to the paybill."""
        return {
            "TransactionType": transaction_type,
            "TransID": trans_id or self.new_receipt(),
            "TransTime": kenya_time(when),
            "TransAmount": amount,
            "BusinessShortCode": shortcode or self.shortcode,
            "BillRefNumber": bill_ref,
            "InvoiceNumber": "",
            "OrgAccountBalance": "49197.00",
            "ThirdPartyTransID": "",
            "MSISDN": msisdn,
            "FirstName": first_name,
            "MiddleName": "",
            "LastName": "",
        }

    def new_receipt(self) -> str:
        return "S" + secrets.token_hex(5).upper()[:9]

    # --- answering ----------------------------------------------------------------

    def _next_error(self):
        with self._lock:
            return self._errors.pop(0) if self._errors else None

    def _issue_token(self) -> dict:
        token = secrets.token_urlsafe(21)
        with self._lock:
            self.tokens[token] = time.monotonic() + self.token_lifetime
            self.oauth_requests += 1
        return {"access_token": token, "expires_in": str(self.token_lifetime)}

    def _token_ok(self, header: str) -> bool:
        if not header.startswith("Bearer "):
            return False
        with self._lock:
            expiry = self.tokens.get(header[len("Bearer "):])
        return expiry is not None and expiry > time.monotonic()

    def _stk(self, body: dict):
        problem = self._check_stk(body)
        if problem:
            return 400, _error("400.002.02", f"Bad Request - Invalid {problem}")
        n = next(self._ids)
        answer = {
            "MerchantRequestID": f"29115-3462{n:04d}-1",
            "CheckoutRequestID": f"ws_CO_{kenya_time()}{n:06d}",
            "ResponseCode": "0",
            "ResponseDescription": "Success. Request accepted for processing",
            "CustomerMessage": "Success. Request accepted for processing",
        }
        with self._lock:
            self.stk_requests.append({"request": body, "response": answer})
        return 200, answer

    def _check_stk(self, body: dict) -> str | None:
        timestamp = str(body.get("Timestamp", ""))
        try:
            sent_at = dt.datetime.strptime(timestamp, "%Y%m%d%H%M%S").replace(tzinfo=KENYA)
        except ValueError:
            return "Timestamp"
        if abs((dt.datetime.now(dt.timezone.utc) - sent_at).total_seconds()) > 300:
            return "Timestamp"
        if str(body.get("BusinessShortCode")) != self.shortcode:
            return "BusinessShortCode"
        if body.get("Password") != self.password_for(timestamp):
            return "Password"
        if body.get("TransactionType") not in STK_TYPES:
            return "TransactionType"
        amount = body.get("Amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            return "Amount"
        for key in ("PartyA", "PhoneNumber"):
            value = str(body.get(key, ""))
            if len(value) != 12 or not value.startswith(("2547", "2541")) or not value.isdigit():
                return key
        if not str(body.get("PartyB", "")).isdigit():
            return "PartyB"
        url = urllib.parse.urlsplit(str(body.get("CallBackURL", "")))
        if url.scheme != "https" and not (url.scheme == "http" and url.hostname in ("127.0.0.1", "localhost", "::1")):
            return "CallBackURL"
        if not 1 <= len(str(body.get("AccountReference", ""))) <= 12:
            return "AccountReference"
        if not 1 <= len(str(body.get("TransactionDesc", ""))) <= 13:
            return "TransactionDesc"
        return None

    def _register(self, body: dict):
        for key in ("ShortCode", "ResponseType", "ConfirmationURL", "ValidationURL"):
            if not body.get(key):
                return 400, _error("400.002.02", f"Bad Request - Invalid {key}")
        if body["ResponseType"] not in ("Completed", "Cancelled"):
            return 400, _error("400.002.02", "Bad Request - Invalid ResponseType")
        for key in ("ConfirmationURL", "ValidationURL"):
            if any(word in body[key].lower() for word in ("mpesa", "m-pesa", "safaricom")):
                return 400, _error("400.002.02", f"Bad Request - Invalid {key}")
        with self._lock:
            self.register_requests.append(body)
        return 200, {"OriginatorCoversationID": f"{next(self._ids)}-{secrets.randbelow(10**7)}-1",
                     "ResponseCode": "0", "ResponseDescription": "Success"}


def _error(code: str, message: str) -> dict:
    return {"requestId": f"{secrets.randbelow(10**5)}-{secrets.randbelow(10**8)}-1", "errorCode": code,
            "errorMessage": message}


class _Handler(BaseHTTPRequestHandler):
    owner: DarajaStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def _answer(self, status: int, body: dict) -> None:
        if status >= 400:
            self.owner.refused.append((self.path, status, body))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.owner.delay:
            time.sleep(self.owner.delay)
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/oauth/v1/generate" or urllib.parse.parse_qs(parts.query).get("grant_type") != [
                "client_credentials"]:
            return self._answer(404, _error("404.001.01", "Resource not found"))
        expected = base64.b64encode(f"{self.owner.consumer_key}:{self.owner.consumer_secret}".encode()).decode()
        if self.headers.get("Authorization", "") != f"Basic {expected}":
            return self._answer(400, _error("400.008.01", "Invalid Authentication passed"))
        self._answer(200, self.owner._issue_token())

    def do_POST(self):
        if self.owner.delay:
            time.sleep(self.owner.delay)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = urllib.parse.urlsplit(self.path).path
        routes = {"/mpesa/stkpush/v1/processrequest": self.owner._stk,
                  "/mpesa/c2b/v1/registerurl": self.owner._register,
                  "/mpesa/c2b/v2/registerurl": self.owner._register}
        route = routes.get(path)
        if route is None:
            return self._answer(404, _error("404.001.01", "Resource not found"))
        if not self.owner._token_ok(self.headers.get("Authorization", "")):
            return self._answer(401, _error("404.001.03", "Invalid Access Token"))
        failure = self.owner._next_error()
        if failure:
            return self._answer(*failure)
        try:
            body = json.loads(raw)
        except ValueError:
            return self._answer(400, _error("400.002.05", "Invalid Request Payload"))
        if not isinstance(body, dict):
            return self._answer(400, _error("400.002.05", "Invalid Request Payload"))
        if route == self.owner._register:
            self.owner.register_paths.append(path)
        self._answer(*route(body))
