"""The Stripe gateway against a stand-in for Stripe's API on loopback, with webhooks signed by hand.

Everything goes through ``core.gateways`` (and, at the end, through the web app's webhook
endpoint), so the plugin is exercised as the core calls it. Signatures are computed here
with hmac exactly as Stripe documents them, and checked by the stripe library inside the
plugin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time

import pytest

from core import gateways
from core.errors import PluginError, ValidationError
from core.hooktypes import GatewayInfo, Notification, PaymentNotice, PaymentRequest, PaymentStart, RefundResult
from core.models import Payment
from core.money import CURRENCIES, Money
from core.settings import set_value
from gateways.stripe import amounts
from tests.gateways.stripe_standin import API_KEY, StripeStandIn

WEBHOOK_SECRET = "whsec_" + "Yk3mQ9vT2xWb7LpN4sZr8HcJ6dFa1GeU"
RETURN_URL = "https://isp.example/pay/done"


@pytest.fixture
def stripe_api(db, pm):
    """The stand-in running, and the gateway's settings pointing at it."""
    standin = StripeStandIn().start()
    try:
        set_value("stripe.api_base", standin.url)
        set_value("stripe.secret_key", API_KEY)
        set_value("stripe.webhook_secret", WEBHOOK_SECRET)
        yield standin
    finally:
        standin.stop()


# --- building and signing events ---------------------------------------------------

def sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """A Stripe-Signature header: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>">."""
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def event(type_: str, obj: dict, event_id: str | None = None, created: int | None = None) -> dict:
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}", "object": "event", "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": type_, "data": {"object": obj},
    }


def notification(evt, secret: str = WEBHOOK_SECRET, at: int | None = None, header: str = "Stripe-Signature"):
    payload = evt if isinstance(evt, bytes) else json.dumps(evt).encode()
    return Notification("stripe", payload, {header: sign(payload, secret, at), "Content-Type": "application/json"})


def parse(evt, **kwargs) -> list[PaymentNotice]:
    return gateways.parse_notification("stripe", notification(evt, **kwargs))


META = {"wispbill_attempt": "PA-7Q2K", "customer_id": "12", "invoice_id": "34"}


def session(**overrides) -> dict:
    data = {
        "id": "cs_test_a1B2", "object": "checkout.session", "amount_subtotal": 250000, "amount_total": 250000,
        "currency": "kes", "client_reference_id": "PA-7Q2K", "customer": None,
        "customer_details": {"email": "wanjiru@example.com", "name": "Wanjiru K"}, "livemode": False,
        "metadata": dict(META), "mode": "payment", "payment_intent": "pi_3Pq", "payment_status": "paid",
        "status": "complete", "url": None,
    }
    data.update(overrides)
    return data


def intent(**overrides) -> dict:
    data = {
        "id": "pi_3Pq", "object": "payment_intent", "amount": 250000, "amount_received": 250000, "currency": "kes",
        "latest_charge": "ch_3Pq", "livemode": False, "metadata": dict(META), "status": "succeeded",
    }
    data.update(overrides)
    return data


def charge(refunds=None, **overrides) -> dict:
    data = {
        "id": "ch_3Pq", "object": "charge", "amount": 250000, "amount_refunded": 50000, "currency": "kes",
        "livemode": False, "metadata": {}, "paid": True, "payment_intent": "pi_3Pq", "refunded": False,
    }
    if refunds is not None:
        data["refunds"] = {"object": "list", "data": refunds, "has_more": False, "total_count": len(refunds),
                           "url": f"/v1/charges/{data['id']}/refunds"}
    data.update(overrides)
    return data


def refund_obj(refund_id: str, amount: int, status: str = "succeeded") -> dict:
    return {"id": refund_id, "object": "refund", "amount": amount, "charge": "ch_3Pq", "currency": "kes",
            "metadata": {}, "payment_intent": "pi_3Pq", "reason": None, "status": status}


def request(minor=250000, currency="KES", **overrides) -> PaymentRequest:
    data = {"customer_id": 12, "amount": Money(minor, currency), "reference": "PA-7Q2K",
            "description": "Invoice INV-2026-000034", "invoice_id": 34, "return_url": RETURN_URL,
            "email": "wanjiru@example.com"}
    data.update(overrides)
    return PaymentRequest(**data)


# --- settings and description ------------------------------------------------------

def test_settings_are_declared_and_validated(db, pm):
    from core import settings

    declared = settings.declared()
    assert declared["stripe.secret_key"].secret and declared["stripe.webhook_secret"].secret
    assert not declared["stripe.api_base"].secret
    assert settings.get("stripe.api_base") == "https://api.stripe.com"
    assert settings.get("stripe.tolerance_seconds") == 300

    assert set_value("stripe.secret_key", " sk_live_51Habc ") == "sk_live_51Habc"
    assert set_value("stripe.webhook_secret", "whsec_abc123") == "whsec_abc123"
    assert set_value("stripe.api_base", "https://stripe-proxy.isp.example/") == "https://stripe-proxy.isp.example"
    assert set_value("stripe.api_base", "http://127.0.0.1:12111") == "http://127.0.0.1:12111"
    assert set_value("stripe.tolerance_seconds", "600") == 600

    refusals = {
        ("stripe.secret_key", "pk_live_51Hxyz"): "publishable key",
        ("stripe.secret_key", "secret-hunter2"): "sk_live_",
        ("stripe.webhook_secret", "we_1Habc"): "whsec_",
        ("stripe.api_base", "http://stripe-proxy.isp.example"): "https",
        ("stripe.api_base", "https://api.stripe.com/v1"): "no path",
        ("stripe.api_base", "ftp://api.stripe.com"): "https://api.stripe.com",
        ("stripe.api_base", "https://api.stripe.com:port"): "https://api.stripe.com",
        ("stripe.tolerance_seconds", "0"): "between 1 and 3600",
        ("stripe.tolerance_seconds", "3601"): "between 1 and 3600",
        ("stripe.tolerance_seconds", "five"): "whole number",
    }
    for (key, text), expected in refusals.items():
        with pytest.raises(ValidationError, match=expected) as refused:
            set_value(key, text)
        assert refused.value.field == key
        if key != "stripe.tolerance_seconds":
            assert text not in str(refused.value)  # a mistyped secret is never echoed back
    assert settings.get("stripe.tolerance_seconds") == 600  # nothing refused was stored


def test_describe_says_configured_once_both_keys_are_set(db, pm):
    info = gateways.available()["stripe"]
    assert info == GatewayInfo("stripe", "Card (Stripe)", can_refund=True, configured=False,
                               settings=("stripe.secret_key", "stripe.webhook_secret"),
                               hosts=("checkout.stripe.com", "js.stripe.com", "api.stripe.com", "m.stripe.network",
                                      "m.stripe.com"))
    assert gateways.missing_settings(info) == ["stripe.secret_key", "stripe.webhook_secret"]
    set_value("stripe.secret_key", "sk_test_abc")
    assert not gateways.available()["stripe"].configured
    assert gateways.missing_settings(info) == ["stripe.webhook_secret"]
    set_value("stripe.webhook_secret", "whsec_abc")
    assert gateways.available()["stripe"].configured
    assert gateways.available()["stripe"].currencies == ()  # any currency


def test_an_unconfigured_gateway_refuses_to_start(db, pm):
    with pytest.raises(ValidationError, match="not configured"):
        gateways.start_payment("stripe", request())
    set_value("stripe.secret_key", "sk_test_abc")
    with pytest.raises(ValidationError, match="stripe.webhook_secret"):
        gateways.start_payment("stripe", request())


# --- starting a payment --------------------------------------------------------------

def test_checkout_session_request(stripe_api):
    start = gateways.start_payment("stripe", request())

    created = stripe_api.calls("POST", "/v1/checkout/sessions")
    assert len(created) == 1
    call = created[0]
    assert call.headers["authorization"] == f"Bearer {API_KEY}"
    assert call.headers["idempotency-key"] == "wispbill-checkout-PA-7Q2K"
    assert call.params == {
        "mode": "payment",
        "line_items": [{"price_data": {"currency": "kes", "unit_amount": "250000",
                                       "product_data": {"name": "Invoice INV-2026-000034"}},
                        "quantity": "1"}],
        "client_reference_id": "PA-7Q2K",
        "metadata": META,
        "payment_intent_data": {"metadata": META},
        "success_url": RETURN_URL,
        "cancel_url": RETURN_URL,
        "customer_email": "wanjiru@example.com",
    }
    session_id = next(iter(stripe_api.sessions))
    assert start == PaymentStart("stripe", reference=session_id,
                                 redirect_url=f"https://checkout.stripe.com/c/pay/{session_id}")
    assert session_id.startswith("cs_test_")


def test_a_repeated_start_of_one_attempt_makes_one_session(stripe_api):
    first = gateways.start_payment("stripe", request())
    again = gateways.start_payment("stripe", request())
    assert first == again and len(stripe_api.sessions) == 1
    other = gateways.start_payment("stripe", request(reference="PA-8R3L"))
    assert other.reference != first.reference and len(stripe_api.sessions) == 2


def test_checkout_leaves_out_what_the_request_lacks(stripe_api):
    gateways.start_payment("stripe", request(invoice_id=None, email=None, currency="USD", minor=1999))
    params = stripe_api.calls("POST", "/v1/checkout/sessions")[0].params
    assert params["metadata"] == {"wispbill_attempt": "PA-7Q2K", "customer_id": "12"}
    assert params["payment_intent_data"]["metadata"] == params["metadata"]
    assert "customer_email" not in params
    assert params["line_items"][0]["price_data"]["currency"] == "usd"
    assert params["line_items"][0]["price_data"]["unit_amount"] == "1999"


def test_checkout_refuses_requests_stripe_cannot_take(stripe_api):
    for bad, field in [(request(return_url=None), "return_url"), (request(return_url="/pay/done"), "return_url"),
                       (request(minor=0), "amount"), (request(minor=5125, currency="KWD"), "amount"),
                       (request(minor=250050, currency="MGA"), "amount"),
                       (request(minor=5000, currency="IQD"), "currency")]:
        with pytest.raises(ValidationError) as refused:
            gateways.start_payment("stripe", bad)
        assert refused.value.field == field, bad
    assert stripe_api.requests == []  # refused before anything reached Stripe


@pytest.mark.parametrize("minor, currency, sent", [
    (5000, "JPY", "5000"),  # zero-decimal in both
    (1500000, "UGX", "1500000"),
    (500, "ISK", "50000"),  # ISO has no decimals, Stripe keeps two (always 00)
    (250000, "MGA", "2500"),  # ISO has two decimals, Stripe none
    (5120, "KWD", "5120"),  # three decimals, the last one 0
    (250000, "KES", "250000"),
])
def test_checkout_amounts_in_stripe_units(stripe_api, minor, currency, sent):
    gateways.start_payment("stripe", request(minor=minor, currency=currency))
    price = stripe_api.calls("POST", "/v1/checkout/sessions")[0].params["line_items"][0]["price_data"]
    assert (price["currency"], price["unit_amount"]) == (currency.lower(), sent)


def test_stripe_errors_become_one_line_validation_errors(stripe_api):
    stripe_api.fail_next(402, "card_error", "Your card was declined.", code="card_declined")
    with pytest.raises(ValidationError) as refused:
        gateways.start_payment("stripe", request())
    assert str(refused.value) == ("could not start the Stripe checkout: Stripe said: Your card was declined. "
                                  "(card_declined)")

    stripe_api.fail_next(400, "invalid_request_error", "Invalid currency: xyz.\nSee the docs.",
                         code="parameter_invalid", param="currency")
    with pytest.raises(ValidationError, match=r"Invalid currency: xyz\. See the docs\. \(parameter_invalid\)$"):
        gateways.start_payment("stripe", request())

    set_value("stripe.secret_key", "sk_live_51HnotTheRightKey0000")
    with pytest.raises(ValidationError) as refused:
        gateways.start_payment("stripe", request())
    message = str(refused.value)
    assert message == "could not start the Stripe checkout: Stripe refused the API key (check stripe.secret_key)"
    assert "sk_live_51H" not in message and API_KEY not in message


def test_stripe_message_quoting_a_key_is_masked(stripe_api):
    stripe_api.fail_next(400, "invalid_request_error", f"Key {API_KEY} cannot be used with sk_live_51Hother.")
    with pytest.raises(ValidationError) as refused:
        gateways.start_payment("stripe", request())
    assert API_KEY not in str(refused.value) and "51Hother" not in str(refused.value)
    assert "sk_***" in str(refused.value)


def test_unreachable_stripe_is_a_validation_error(stripe_api):
    address = stripe_api.url
    stripe_api.stop()  # nothing listens there any more
    with pytest.raises(ValidationError) as refused:
        gateways.start_payment("stripe", request())
    assert str(refused.value) == f"could not start the Stripe checkout: could not reach Stripe at {address}; try again"


# --- webhooks: payments ------------------------------------------------------------

def test_checkout_session_completed(stripe_api):
    created = int(dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone.utc).timestamp())
    notices = parse(event("checkout.session.completed", session(), "evt_1Sess", created))
    assert notices == [PaymentNotice(
        "stripe", "pi_3Pq", "payment", Money(250000, "KES"), customer_id=12, invoice_id=34, attempt="PA-7Q2K",
        method="card", payer="wanjiru@example.com", received_at=dt.datetime(2026, 3, 2, 9, 30),
        raw={"event": "evt_1Sess", "type": "checkout.session.completed", "session": "cs_test_a1B2"},
    )]


def test_session_and_intent_of_one_payment_share_the_reference(stripe_api):
    by_session = parse(event("checkout.session.completed", session()))
    by_async = parse(event("checkout.session.async_payment_succeeded", session()))
    by_intent = parse(event("payment_intent.succeeded", intent(receipt_email="wanjiru@example.com")))
    key = [(n.reference, n.kind, n.amount, n.attempt, n.customer_id, n.invoice_id) for n in by_session]
    assert key == [("pi_3Pq", "payment", Money(250000, "KES"), "PA-7Q2K", 12, 34)]
    assert [(n.reference, n.kind, n.amount, n.attempt, n.customer_id, n.invoice_id) for n in by_async] == key
    assert [(n.reference, n.kind, n.amount, n.attempt, n.customer_id, n.invoice_id) for n in by_intent] == key
    assert by_intent[0].raw["payment_intent"] == "pi_3Pq" and by_intent[0].payer == "wanjiru@example.com"


def test_the_same_event_gives_the_same_notices(stripe_api):
    evt = event("payment_intent.succeeded", intent())
    assert parse(evt) == parse(evt) == parse(evt, at=int(time.time()) - 5)


def test_session_details_that_may_be_missing(stripe_api):
    # No payment intent (expanded or not) to name: the session id is the reference.
    [notice] = parse(event("checkout.session.completed", session(payment_intent=None, customer_details=None)))
    assert (notice.reference, notice.payer) == ("cs_test_a1B2", None)
    [notice] = parse(event("checkout.session.completed", session(payment_intent={"id": "pi_9X", "object": "x"})))
    assert notice.reference == "pi_9X"
    # The attempt comes from the metadata when the client reference is missing.
    [notice] = parse(event("checkout.session.completed", session(client_reference_id=None)))
    assert notice.attempt == "PA-7Q2K"
    # Ids in metadata are used only when they are well-formed numbers.
    odd = {"wispbill_attempt": "PA-1", "customer_id": "12abc", "invoice_id": "-3"}
    [notice] = parse(event("checkout.session.completed", session(metadata=odd, client_reference_id=None)))
    assert (notice.customer_id, notice.invoice_id, notice.attempt) == (None, None, "PA-1")
    [notice] = parse(event("payment_intent.succeeded", intent(metadata={})))
    assert (notice.customer_id, notice.invoice_id, notice.attempt) == (None, None, None)
    # An event time that is no time at all is left for the core to fill in.
    [notice] = parse(event("payment_intent.succeeded", intent(), created=10 ** 20))
    assert notice.received_at is None


def test_unpaid_sessions_and_other_events_record_nothing(stripe_api):
    assert parse(event("checkout.session.completed", session(payment_status="unpaid"))) == []
    assert parse(event("checkout.session.completed", session(payment_status="no_payment_required",
                                                             amount_total=0))) == []
    assert parse(event("checkout.session.expired", session(payment_status="unpaid", status="expired"))) == []
    assert parse(event("customer.created", {"id": "cus_1", "object": "customer"})) == []
    assert parse(event("payment_intent.created", intent(status="requires_payment_method"))) == []


def test_payment_failed(stripe_api):
    failed = intent(amount_received=0, status="requires_payment_method",
                    last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds",
                                        "message": "Your card has insufficient funds."})
    [notice] = parse(event("payment_intent.payment_failed", failed, "evt_fail"))
    assert (notice.reference, notice.kind, notice.amount, notice.attempt) == (
        "pi_3Pq", "failure", Money(250000, "KES"), "PA-7Q2K")
    assert notice.raw == {"event": "evt_fail", "type": "payment_intent.payment_failed", "payment_intent": "pi_3Pq",
                          "code": "insufficient_funds"}
    assert notice.message == "Your card has insufficient funds."


@pytest.mark.parametrize("stripe_amount, currency, money", [
    (5000, "jpy", Money(5000, "JPY")), (50000, "isk", Money(500, "ISK")), (2500, "mga", Money(250000, "MGA")),
    (5120, "kwd", Money(5120, "KWD")), (1999, "usd", Money(1999, "USD")),
])
def test_webhook_amounts_in_stripe_units(stripe_api, stripe_amount, currency, money):
    paid = session(amount_total=stripe_amount, currency=currency)
    assert [n.amount for n in parse(event("checkout.session.completed", paid))] == [money]


# --- webhooks: refunds -------------------------------------------------------------

def test_charge_refunded_with_its_refunds_in_the_event(stripe_api):
    refunds = [refund_obj("re_3", 5000) | {"reason": "requested_by_customer"},
               refund_obj("re_2", 20000) | {"metadata": {"wispbill_reason": "moved away"}},
               refund_obj("re_1", 30000), refund_obj("re_0", 10000, status="failed")]
    notices = parse(event("charge.refunded", charge(refunds), "evt_ref"))
    assert [(n.reference, n.kind, n.refund_of, n.amount) for n in notices] == [
        ("re_3", "refund", "pi_3Pq", Money(5000, "KES")), ("re_2", "refund", "pi_3Pq", Money(20000, "KES")),
        ("re_1", "refund", "pi_3Pq", Money(30000, "KES"))]
    assert notices[2].raw == {"event": "evt_ref", "type": "charge.refunded", "charge": "ch_3Pq", "refund": "re_1"}
    assert [n.message for n in notices] == [
        "refunded in Stripe: requested_by_customer", "refunded in Stripe: moved away", None]
    assert stripe_api.requests == []  # nothing to look up


def test_charge_refunded_for_a_charge_without_payment_intent(stripe_api):
    [notice] = parse(event("charge.refunded", charge([refund_obj("re_1", 100)], payment_intent=None)))
    assert notice.refund_of == "ch_3Pq"


def test_charge_refunded_without_its_refunds_lists_them(stripe_api):
    charge_id = stripe_api.add_payment("pi_3Pq", 250000, "kes", charge_id="ch_3Pq")
    made = [stripe_api.add_refund(charge_id, amount, "kes") for amount in (10000, 20000, 30000)]
    stripe_api.add_refund(charge_id, 5000, "kes", status="canceled")
    stripe_api.add_refund("ch_other", 999, "kes")
    stripe_api.page_size = 2  # two pages

    made[0]["metadata"] = {"wispbill_reason": "double charge"}
    notices = parse(event("charge.refunded", charge(amount_refunded=60000)))
    assert sorted((n.reference, n.amount.minor, n.refund_of) for n in notices) == sorted(
        (r["id"], r["amount"], "pi_3Pq") for r in made)
    assert {n.reference: n.message for n in notices}[made[0]["id"]] == "refunded in Stripe: double charge"
    listed = stripe_api.calls("GET", "/v1/refunds")
    assert len(listed) == 2 and all(c.params["charge"] == "ch_3Pq" for c in listed)
    assert listed[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert "starting_after" in listed[1].params


def test_charge_refunded_when_stripe_cannot_list_the_refunds(stripe_api):
    stripe_api.fail_next(500, "api_error", "Something went wrong on Stripe's end.")
    stripe_api.fail_next(500, "api_error", "Something went wrong on Stripe's end.")
    stripe_api.fail_next(500, "api_error", "Something went wrong on Stripe's end.")
    # not the event's fault: a failure (HTTP 500 at the endpoint) so that Stripe delivers it again
    with pytest.raises(PluginError, match="could not list the refunds of charge ch_3Pq: Stripe said: Something"):
        parse(event("charge.refunded", charge()))
    assert len(stripe_api.calls("GET", "/v1/refunds")) == 3  # the library retried twice


# --- webhooks: refused -------------------------------------------------------------

def test_bad_signatures_are_refused(stripe_api):
    evt = event("payment_intent.succeeded", intent())
    payload = json.dumps(evt).encode()
    now = int(time.time())
    forged = f"t={now},v1={secrets.token_hex(32)}"
    cases = [
        ({"Stripe-Signature": forged}, "signature does not match"),
        ({"Stripe-Signature": sign(payload, "whsec_someoneElse")}, "signature does not match"),
        ({"Stripe-Signature": sign(payload, at=now - 301)}, "signed longer ago than"),  # a replay
        ({"Content-Type": "application/json"}, "no Stripe-Signature header"),
        ({"Stripe-Signature": ""}, "no Stripe-Signature header"),
        ({"Stripe-Signature": "v1=abc"}, "header is malformed"),
        ({"Stripe-Signature": f"t={now},v0={secrets.token_hex(32)}"}, "header is malformed"),
    ]
    for headers, expected in cases:
        with pytest.raises(ValidationError, match=expected):
            gateways.parse_notification("stripe", Notification("stripe", payload, headers))

    # Tampering with a signed body breaks the signature too.
    header = sign(payload)
    tampered = payload.replace(b"250000", b"990000")
    with pytest.raises(ValidationError, match="signature does not match"):
        gateways.parse_notification("stripe", Notification("stripe", tampered, {"Stripe-Signature": header}))


def test_signature_header_name_is_case_insensitive_and_tolerance_is_configurable(stripe_api):
    evt = event("payment_intent.succeeded", intent())
    assert len(parse(evt, header="stripe-signature")) == 1
    assert len(parse(evt, header="STRIPE-SIGNATURE", at=int(time.time()) - 250)) == 1
    set_value("stripe.tolerance_seconds", "60")
    with pytest.raises(ValidationError, match="stripe.tolerance_seconds"):
        parse(evt, at=int(time.time()) - 120)


def test_signed_bodies_that_are_not_events_are_refused(stripe_api):
    bodies = {
        b"{not json": "not a Stripe event in JSON",
        b"\xff\xfe{}": "not a Stripe event in JSON",
        b"[1, 2]": "not a JSON object",
        b'"evt"': "not a JSON object",
        json.dumps({"id": "evt_1", "object": "event", "type": "charge.refunded"}).encode(): "not an event",
        json.dumps({"id": "evt_1", "object": "v2.core.event", "type": "x"}).encode(): "not a Stripe event",
    }
    for body, expected in bodies.items():
        with pytest.raises(ValidationError, match=expected):
            gateways.parse_notification("stripe", Notification("stripe", body, {"Stripe-Signature": sign(body)}))


def test_events_missing_what_they_need_are_refused(stripe_api):
    broken = [
        ("checkout.session.completed", session(amount_total=None), "has no amount_total"),
        ("checkout.session.completed", session(currency=None), "has no currency"),
        ("checkout.session.completed", session(currency="zzz"), "unknown currency"),
        ("checkout.session.completed", session(amount_total="2500"), "not a whole number"),
        ("checkout.session.completed", session(amount_total=2500.5), "not a whole number"),
        ("checkout.session.completed", session(amount_total=50001, currency="isk"), "not a whole number of ISK"),
        ("payment_intent.succeeded", intent(id=None), "has no id"),
        ("payment_intent.succeeded", intent(amount_received=0), "not a positive amount"),
        ("charge.refunded", charge([{"object": "refund", "amount": 100, "status": "succeeded"}]), "has no id"),
    ]
    for type_, obj, expected in broken:
        with pytest.raises(ValidationError, match=expected):
            parse(event(type_, obj))


def test_a_webhook_needs_the_signing_secret(db, pm):
    evt = event("payment_intent.succeeded", intent())
    with pytest.raises(ValidationError, match="stripe.webhook_secret is not set"):
        parse(evt)


# --- refunds -----------------------------------------------------------------------

def _payment(reference="pi_3Pq", minor=250000, currency="KES") -> Payment:
    return Payment(gateway="stripe", reference=reference, amount_minor=minor, currency=currency)


def test_refund_request_and_result(stripe_api):
    stripe_api.add_payment("pi_3Pq", 250000, "kes")
    result = gateways.refund("stripe", _payment(), Money(50000, "KES"), "customer moved away")

    [call] = stripe_api.calls("POST", "/v1/refunds")
    assert call.params == {"payment_intent": "pi_3Pq", "amount": "50000",
                           "metadata": {"wispbill_reason": "customer moved away"}}
    assert call.headers["authorization"] == f"Bearer {API_KEY}"
    assert "idempotency-key" in call.headers  # the library adds one, so its retries are safe
    [made] = stripe_api.refunds
    assert result == RefundResult("stripe", reference=made["id"], amount=Money(50000, "KES"), status="succeeded")
    assert made["id"].startswith("re_")


def test_refund_without_reason_and_pending(stripe_api):
    stripe_api.add_payment("pi_jp", 5000, "jpy")
    stripe_api.refund_status = "pending"
    result = gateways.refund("stripe", _payment("pi_jp", 5000, "JPY"), Money(5000, "JPY"), "")
    assert (result.amount, result.status) == (Money(5000, "JPY"), "pending")
    assert stripe_api.calls("POST", "/v1/refunds")[0].params == {"payment_intent": "pi_jp", "amount": "5000"}


def test_refunds_stripe_refuses(stripe_api):
    stripe_api.add_payment("pi_3Pq", 250000, "kes")
    gateways.refund("stripe", _payment(), Money(200000, "KES"), "")
    with pytest.raises(ValidationError) as refused:
        gateways.refund("stripe", _payment(), Money(100000, "KES"), "")
    assert str(refused.value) == ("Stripe refused the refund of pi_3Pq: Stripe said: Refund amount (100000) is "
                                  "greater than unrefunded amount on charge (50000) (amount_too_large)")
    with pytest.raises(ValidationError, match="No such payment_intent: 'pi_gone'"):
        gateways.refund("stripe", _payment("pi_gone"), Money(100, "KES"), "")
    stripe_api.refund_status = "failed"
    with pytest.raises(ValidationError, match=r"Stripe refund re_\w+ of pi_3Pq failed"):
        gateways.refund("stripe", _payment(), Money(100, "KES"), "")


def test_refunds_refused_before_asking_stripe(stripe_api):
    for amount, payment, expected in [
        (Money(100, "USD"), _payment(), "of a KES payment"),
        (Money(0, "KES"), _payment(), "must be positive"),
        (Money(250001, "KES"), _payment(), "the payment was KES 2,500.00"),
        (Money(100, "KES"), _payment("cs_test_a1B2"), "no payment intent"),
        (Money(5125, "KWD"), _payment(minor=9000, currency="KWD"), "last digit 0"),
    ]:
        with pytest.raises(ValidationError, match=expected):
            gateways.refund("stripe", payment, amount, "")
    assert stripe_api.requests == []


# --- amounts (no database) ---------------------------------------------------------

def test_stripe_currency_lists_agree_with_core_money():
    assert amounts.ZERO_DECIMAL <= set(CURRENCIES) and amounts.THREE_DECIMAL <= set(CURRENCIES)
    # Where ISO 4217 and Stripe disagree, the conversion scales; everywhere else it is 1:1.
    mismatched = {code for code in amounts.ZERO_DECIMAL if CURRENCIES[code].exponent != 0}
    assert mismatched == {"MGA"}
    assert all(CURRENCIES[code].exponent == 3 for code in amounts.THREE_DECIMAL)


def test_every_currency_stripe_can_count_round_trips():
    for code, cur in CURRENCIES.items():
        money = Money(12340 * 10 ** cur.exponent, code)  # whole units, and a last digit of 0
        if cur.exponent == 3 and code not in amounts.THREE_DECIMAL:
            with pytest.raises(ValidationError, match="does not take"):
                amounts.to_stripe(money)
            continue
        sent = amounts.to_stripe(money)
        assert amounts.from_stripe(sent, code.lower()) == money, code
        stripe_decimals = 0 if code in amounts.ZERO_DECIMAL else 3 if code in amounts.THREE_DECIMAL else 2
        assert sent == 12340 * 10 ** stripe_decimals, code


# --- end to end through the web app ------------------------------------------------

def _post(client, evt, **kwargs):
    note = notification(evt, **kwargs)
    return client.post("/hooks/stripe", data=note.body, headers=note.headers)


def _issued_invoice(customer, total_minor=250000):
    from tests.factories import make_invoice

    return make_invoice(customer, status="issued", series="INV-2026", number=34, subtotal_minor=total_minor,
                        total_minor=total_minor, issue_date=dt.date(2026, 3, 1), due_date=dt.date(2026, 3, 15),
                        issued_at=dt.datetime(2026, 3, 1, 8, 0))


def test_e2e_paid_checkout_then_its_intent_records_one_payment(stripe_api, client):
    from core import payments
    from tests.factories import make_customer

    customer = make_customer(currency="KES")
    invoice = _issued_invoice(customer)
    attempt, start = payments.start_payment("stripe", customer=customer, invoice=invoice, return_url=RETURN_URL)
    sent = stripe_api.calls("POST", "/v1/checkout/sessions")[0].params
    assert sent["client_reference_id"] == attempt.token == sent["metadata"]["wispbill_attempt"]
    assert start.reference in stripe_api.sessions

    meta = dict(sent["metadata"])
    paid = session(id=start.reference, client_reference_id=attempt.token, metadata=meta, payment_intent="pi_e2e1")
    response = _post(client, event("checkout.session.completed", paid))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.is_json
    response = _post(client, event("payment_intent.succeeded", intent(id="pi_e2e1", metadata=meta)))
    assert response.status_code == 200, response.get_data(as_text=True)

    [payment] = Payment.select().where(Payment.gateway == "stripe")
    assert (payment.reference, payment.amount_minor, payment.currency) == ("pi_e2e1", 250000, "KES")
    assert payment.customer_id == customer.id


def test_e2e_a_hundred_deliveries_record_one_payment(stripe_api, client):
    from tests.factories import make_customer

    customer = make_customer(currency="KES")
    meta = {"customer_id": str(customer.id)}
    evt = event("payment_intent.succeeded", intent(id="pi_e2e100", metadata=meta))
    for _ in range(100):
        response = _post(client, evt)
        assert response.status_code == 200, response.get_data(as_text=True)
    assert Payment.select().where(Payment.gateway == "stripe").count() == 1


def test_e2e_a_forged_signature_is_refused_and_audited(stripe_api, client):
    from core.models import AuditEvent
    from tests.factories import make_customer

    customer = make_customer(currency="KES")
    evt = event("payment_intent.succeeded", intent(id="pi_forged", metadata={"customer_id": str(customer.id)}))
    response = _post(client, evt, secret="whsec_notTheEndpointSecret")
    assert response.status_code == 400
    assert Payment.select().count() == 0
    assert AuditEvent.select().where(AuditEvent.action == "webhook.refused").count() == 1


def test_e2e_charge_refunded_records_the_refund(stripe_api, client):
    from core.models import Refund
    from tests.factories import make_customer

    customer = make_customer(currency="KES")
    meta = {"customer_id": str(customer.id)}
    assert _post(client, event("payment_intent.succeeded", intent(metadata=meta))).status_code == 200
    response = _post(client, event("charge.refunded", charge([refund_obj("re_e2e", 50000)])))
    assert response.status_code == 200, response.get_data(as_text=True)

    [refund] = Refund.select().where(Refund.gateway == "stripe")
    assert (refund.reference, refund.amount_minor, refund.currency) == ("re_e2e", 50000, "KES")
    assert refund.payment.reference == "pi_3Pq"


def test_e2e_staff_refund_then_stripes_webhook_records_one_refund(stripe_api, client):
    from core import refunds
    from core.models import Refund
    from tests.factories import make_customer

    customer = make_customer(currency="KES")
    meta = {"customer_id": str(customer.id)}
    stripe_api.add_payment("pi_3Pq", 250000, "kes", charge_id="ch_3Pq")
    assert _post(client, event("payment_intent.succeeded", intent(metadata=meta))).status_code == 200
    payment = Payment.get(Payment.gateway == "stripe", Payment.reference == "pi_3Pq")

    row = refunds.refund(payment, Money(50000, "KES"), reason="customer moved away")
    [made] = stripe_api.refunds
    assert (row.reference, row.amount_minor) == (made["id"], 50000)
    assert stripe_api.calls("POST", "/v1/refunds")[0].params["metadata"] == {"wispbill_reason": "customer moved away"}

    # Stripe then announces the refund; the event carries no refunds list, so the plugin asks for it.
    response = _post(client, event("charge.refunded", charge()))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert Refund.select().where(Refund.gateway == "stripe").count() == 1
