"""A small client for Safaricom's Daraja API: OAuth access tokens (cached) and JSON calls.

Tokens are kept in memory per (API address, consumer key, consumer secret) until
shortly before they expire, shared by every thread of the process. A call that Daraja
answers with an invalid-token error gets one fresh token and one retry.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

from core.errors import WispbillError

from gateways.mpesa.settings import LOOPBACK_HOSTS

TIMEOUT = 20  # seconds for one HTTP exchange with Daraja
TOKEN_PATH = "/oauth/v1/generate?grant_type=client_credentials"
INVALID_TOKEN_CODES = ("404.001.03",)  # Daraja's errorCode for an unknown or expired access token
MAX_MESSAGE = 240

_clock = time.monotonic  # replaced by tests that move time on
_tokens: dict[tuple, tuple[str, float]] = {}
_tokens_lock = threading.Lock()


class DarajaError(WispbillError):
    """Daraja could not be reached or refused a call; the message is one line without secrets."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def forget_tokens() -> None:
    """Drop every cached access token (the next call fetches a new one)."""
    with _tokens_lock:
        _tokens.clear()


def _scrub(text: str, secrets) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****")
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


class Client:
    """Calls to one Daraja installation with one app's consumer key and secret."""

    def __init__(self, api_base: str, consumer_key: str, consumer_secret: str, *, timeout: float | None = None,
                 secrets=()):
        self.api_base = api_base.rstrip("/")
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.timeout = TIMEOUT if timeout is None else timeout
        self.secrets = tuple(s for s in (consumer_secret, *secrets) if s)
        digest = hashlib.sha256(f"{consumer_key}\0{consumer_secret}".encode()).hexdigest()
        self._cache_key = (self.api_base, digest)
        host = (urllib.parse.urlsplit(self.api_base).hostname or "").lower()
        # Loopback never goes through a proxy; anything else honours the environment's proxy.
        handlers = [urllib.request.ProxyHandler({})] if host in LOOPBACK_HOSTS else []
        self._opener = urllib.request.build_opener(*handlers)

    # --- public ----------------------------------------------------------------------

    def post(self, path: str, payload: dict, what: str = "the request") -> dict:
        """POST ``payload`` as JSON to ``path`` with a bearer token; the JSON answer.

        Raises :class:`DarajaError` for a network failure, an HTTP error, an error body
        (``errorCode``/``errorMessage``) or an answer that is not a JSON object.
        """
        token = self.access_token()
        status, data = self._exchange("POST", path, payload, {"Authorization": f"Bearer {token}"})
        if _token_refused(status, data):
            self._drop(token)
            token = self.access_token()
            status, data = self._exchange("POST", path, payload, {"Authorization": f"Bearer {token}"})
        self._raise_for_error(status, data, what, extra=(token,))
        return data

    def access_token(self) -> str:
        """A valid access token: the cached one, or a new one from the OAuth endpoint."""
        # The fetch happens under the lock, so threads that need a token at once share one request.
        with _tokens_lock:
            cached = _tokens.get(self._cache_key)
            if cached and cached[1] > _clock():
                return cached[0]
            token, lifetime = self._fetch_token()
            # Renew a little before Daraja's own expiry, so that a token never dies in flight.
            margin = min(60.0, lifetime / 10)
            _tokens[self._cache_key] = (token, _clock() + lifetime - margin)
            return token

    # --- internals -------------------------------------------------------------------

    def _drop(self, token: str) -> None:
        with _tokens_lock:
            cached = _tokens.get(self._cache_key)
            if cached and cached[0] == token:
                del _tokens[self._cache_key]

    def _fetch_token(self) -> tuple[str, float]:
        basic = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode()).decode()
        status, data = self._exchange("GET", TOKEN_PATH, None, {"Authorization": f"Basic {basic}"})
        self._raise_for_error(status, data, "the consumer key and secret", extra=(basic,))
        token = data.get("access_token")
        try:
            lifetime = float(Decimal(str(data.get("expires_in"))))
        except ArithmeticError:
            lifetime = 0.0
        if not isinstance(token, str) or not token or lifetime <= 0:
            raise DarajaError("M-Pesa answered the token request without an access token and expiry", status)
        return token, lifetime

    def _exchange(self, method: str, path: str, payload, headers: dict):
        """One HTTP exchange; ``(status, parsed JSON or None)``. Network failures raise."""
        url = self.api_base + path
        body = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=body, method=method,
                                         headers={"Accept": "application/json", **headers,
                                                  **({"Content-Type": "application/json"} if body else {})})
        host = urllib.parse.urlsplit(url).netloc
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
            exc.close()
        except (TimeoutError, socket.timeout):
            raise DarajaError(f"M-Pesa ({host}) did not answer within {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            reason = getattr(exc.reason, "strerror", None) or exc.reason
            raise DarajaError(_scrub(f"cannot reach M-Pesa at {host}: {reason}", self.secrets)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise DarajaError(_scrub(f"connection to M-Pesa at {host} failed: {exc.__class__.__name__} {exc}",
                                     self.secrets)) from None
        try:
            data = json.loads(raw.decode("utf-8"), parse_float=Decimal) if raw.strip() else None
        except (UnicodeDecodeError, ValueError):
            data = None
        return status, data

    def _raise_for_error(self, status: int, data, what: str, extra=()) -> None:
        secrets = self.secrets + tuple(extra)
        if isinstance(data, dict) and (data.get("errorCode") or data.get("errorMessage")):
            code = str(data.get("errorCode") or "").strip() or None
            message = str(data.get("errorMessage") or "no message").strip()
            suffix = f" ({code})" if code else ""
            raise DarajaError(_scrub(f"M-Pesa refused {what}: {message}{suffix}", secrets), status, code)
        if status >= 400:
            raise DarajaError(f"M-Pesa refused {what} with HTTP {status}", status)
        if not isinstance(data, dict):
            raise DarajaError(f"M-Pesa answered {what} with something that is not a JSON object (HTTP {status})",
                              status)


def _token_refused(status: int, data) -> bool:
    code = str(data.get("errorCode") or "") if isinstance(data, dict) else ""
    return status == 401 or code in INVALID_TOKEN_CODES
