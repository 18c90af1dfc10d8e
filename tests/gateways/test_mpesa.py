"""The M-Pesa gateway against a Daraja stand-in on loopback: pushes, tokens, callbacks, replies, the CLI.

Everything goes through the core (``core.gateways``, the plugin manager, the CLI and,
once the payments core exists, the web app); nothing leaves the machine.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import threading
from decimal import Decimal

import pytest

from core import gateways
from core import settings as core_settings
from core.errors import ValidationError
from core.hooktypes import Notification, PaymentRequest, WebhookReply
from core.money import Money
from gateways import mpesa as plugin
from gateways.mpesa import callbacks, daraja, formats
from gateways.mpesa import settings as mpesa_settings
from tests.gateways.daraja_standin import DarajaStandIn, encode

TOKEN = "cbTok_0123456789abcdefghijklmnopqrstuvwxyz"
NOTIFY = "http://127.0.0.1/hooks/mpesa"
UTC = dt.timezone.utc

# --- fixtures ------------------------------------------------------------------------

@pytest.fixture
def standin():
    daraja.forget_tokens()
    with DarajaStandIn() as server:
        yield server
    daraja.forget_tokens()


def configure(standin, **extra):
    values = {
        "mpesa.api_base": standin.url,
        "mpesa.consumer_key": standin.consumer_key,
        "mpesa.consumer_secret": standin.consumer_secret,
        "mpesa.shortcode": standin.shortcode,
        "mpesa.passkey": standin.passkey,
        "mpesa.callback_token": TOKEN,
    }
    values.update(extra)
    for key, value in values.items():
        core_settings.set_value(key, value)


@pytest.fixture
def mpesa(db, pm, standin):
    """A configured gateway talking to the stand-in."""
    configure(standin)
    return standin


def request(minor=150000, phone="0708374149", notify_url=NOTIFY, account="A000123", description="Invoice INV-7"):
    return PaymentRequest(customer_id=1, amount=Money(minor, "KES"), reference="PA-7Q2X", description=description,
                          phone=phone, account=account, notify_url=notify_url)


def notification(body, path=f"stk/{TOKEN}", remote_addr="127.0.0.1"):
    raw = body if isinstance(body, bytes) else encode(body)
    return Notification("mpesa", raw, {"Content-Type": "application/json"}, remote_addr=remote_addr, path=path)


def parse(body, **kwargs):
    return gateways.parse_notification("mpesa", notification(body, **kwargs))


def reply(pm, note, notices=(), error=None) -> WebhookReply:
    _plugin, answer = pm.call_first("gateway_reply", gateway="mpesa", notification=note, notices=list(notices),
                                    error=error)
    return answer


def now_utc():
    return dt.datetime.now(UTC).replace(tzinfo=None)


# --- formats and settings (no database) ----------------------------------------------

@pytest.mark.parametrize("typed, expected", [
    ("+254708374149", "254708374149"),
    ("254708374149", "254708374149"),
    ("0708374149", "254708374149"),
    ("0708 374 149", "254708374149"),
    ("708-374-149", "254708374149"),
    ("(+254) 712 345 678", "254712345678"),
    ("00254712345678", "254712345678"),
    ("0112345678", "254112345678"),
    ("+254112345678", "254112345678"),
    ("112345678", "254112345678"),
])
def test_phone_numbers_are_normalised(typed, expected):
    assert formats.normalise_phone(typed) == expected


@pytest.mark.parametrize("typed", ["", None, "12345", "+1 555 010 9999", "0208374149", "254208374149",
                                   "07083741490", "2547083741", "+255712345678", "07o8374149"])
def test_other_phone_numbers_are_refused(typed):
    with pytest.raises(ValidationError) as refused:
        formats.normalise_phone(typed)
    assert refused.value.field == "phone"


def test_amounts_and_times():
    assert formats.whole_shillings(Money(150000, "KES")) == (1500, Money(150000, "KES"))
    assert formats.whole_shillings(Money(150001, "KES")) == (1501, Money(150100, "KES"))
    assert formats.whole_shillings(Money(1, "KES")) == (1, Money(100, "KES"))
    with pytest.raises(ValidationError):
        formats.whole_shillings(Money(0, "KES"))
    with pytest.raises(ValidationError, match="KES only"):
        formats.whole_shillings(Money(100, "USD"))

    assert formats.read_amount(1500, "Amount") == Money(150000, "KES")
    assert formats.read_amount(Decimal("1500.50"), "Amount") == Money(150050, "KES")
    assert formats.read_amount("1500.00", "TransAmount") == Money(150000, "KES")
    for bad in ("abc", "12.345", "-5", "0.00", 0, True, None, 1.5, "1e3", ""):
        with pytest.raises(ValidationError):
            formats.read_amount(bad, "Amount")

    # Kenyan time is UTC+3 all year.
    assert formats.read_kenya_time(20260301093015, "TransactionDate") == dt.datetime(2026, 3, 1, 6, 30, 15)
    assert formats.read_kenya_time("20260101010000", "TransTime") == dt.datetime(2025, 12, 31, 22, 0)
    assert formats.kenya_timestamp(dt.datetime(2025, 12, 31, 22, 0)) == "20260101010000"
    for bad in ("2026030109301", "20261301093015", "yesterday", None, True):
        with pytest.raises(ValidationError, match="YYYYMMDDHHMMSS"):
            formats.read_kenya_time(bad, "TransTime")


def test_setting_parsers():
    s = mpesa_settings
    assert s.parse_environment(" Production ") == "production"
    assert s.parse_api_base("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert s.parse_api_base("") == ""
    assert s.parse_shortcode(" 174379 ") == "174379"
    assert s.parse_optional_shortcode("") is None
    assert s.parse_transaction_type("customerbuygoodsonline") == "CustomerBuyGoodsOnline"
    assert s.parse_callback_token(TOKEN) == TOKEN
    assert s.parse_allowed_ips("196.201.214.200, 196.201.213.0/24;") == ["196.201.214.200/32", "196.201.213.0/24"]
    assert s.parse_allowed_ips("") == []
    assert s.parse_max_age_hours("48") == 48
    assert s.parse_callback_base_url("https://pay.example.net/hooks/m/") == "https://pay.example.net/hooks/m"
    assert s.parse_callback_base_url("http://localhost:5000/x") == "http://localhost:5000/x"
    refusals = [
        (s.parse_environment, "live", "sandbox or production"),
        (s.parse_api_base, "ftp://x", "address"),
        (s.parse_api_base, "http://daraja.example.net", "must be https"),
        (s.parse_credential, "  ", "empty"),
        (s.parse_credential, "ab cd", "spaces"),
        (s.parse_shortcode, "17437a", "5 to 8 digits"),
        (s.parse_transaction_type, "Paybill", "CustomerPayBillOnline"),
        (s.parse_callback_token, "short", "at least 32"),
        (s.parse_callback_token, "x" * 31 + "/", "at least 32"),
        (s.parse_allowed_ips, "196.201.214.300", "not an IP"),
        (s.parse_max_age_hours, "0", "between 1 and 720"),
        (s.parse_max_age_hours, "a day", "whole number"),
        (s.parse_callback_base_url, "http://pay.example.net/hooks", "https"),
    ]
    for parse_fn, text, message in refusals:
        with pytest.raises(ValueError, match=message):
            parse_fn(text)


def test_callback_paths():
    assert callbacks.split_path(f"stk/{TOKEN}") == ("stk", TOKEN)
    assert callbacks.split_path(f"/c2b/confirm/{TOKEN}/") == ("c2b/confirm", TOKEN)
    assert callbacks.split_path(f"c2b/validate/{TOKEN}") == ("c2b/validate", TOKEN)
    assert callbacks.split_path("stk") == ("stk", None)
    assert callbacks.split_path(f"b2c/{TOKEN}") == (None, None)
    assert callbacks.split_path(f"stk/{TOKEN}/extra") == (None, None)
    assert callbacks.split_path("") == (None, None)


def test_token_fetched_once_by_concurrent_callers():
    with DarajaStandIn() as standin:
        daraja.forget_tokens()
        standin.delay = 0.2
        client = daraja.Client(standin.url, standin.consumer_key, standin.consumer_secret)
        tokens, threads = [], [threading.Thread(target=lambda: tokens.append(client.access_token()))
                               for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        daraja.forget_tokens()
    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert standin.oauth_requests == 1


# --- describing and starting ---------------------------------------------------------

def test_describe(db, pm, standin):
    info = gateways.available()["mpesa"]
    assert (info.label, info.currencies, info.can_refund, info.asks_for) == ("M-Pesa", ("KES",), False, ("phone",))
    assert not info.configured

    configure(standin)
    assert gateways.available()["mpesa"].configured
    with pytest.raises(ValidationError, match="does not take USD"):  # the core refuses other currencies before asking
        gateways.start_payment("mpesa", PaymentRequest(1, Money(100, "USD"), "PA-1", "x", phone="0708374149"))


def test_unconfigured_gateway_refuses_to_start(db, pm, standin):
    with pytest.raises(ValidationError, match="not set up yet: set mpesa.consumer_key"):
        gateways.start_payment("mpesa", request())
    assert standin.oauth_requests == 0


def test_stk_push_sends_the_documented_request(mpesa):
    before = dt.datetime.now(UTC)
    start = gateways.start_payment("mpesa", request(account="A000123-EXTRA-LONG",
                                                    description="Invoice INV-2026-000123"))
    after = dt.datetime.now(UTC)

    [entry] = mpesa.stk_requests
    sent, answer = entry["request"], entry["response"]
    assert start.gateway == "mpesa" and start.reference == answer["CheckoutRequestID"]
    assert start.message == answer["CustomerMessage"] and start.amount is None and start.redirect_url is None

    stamp = dt.datetime.strptime(sent["Timestamp"], "%Y%m%d%H%M%S").replace(tzinfo=formats.KENYA)
    assert before.replace(microsecond=0) - dt.timedelta(seconds=1) <= stamp <= after
    expected_password = base64.b64encode(f"{mpesa.shortcode}{mpesa.passkey}{sent['Timestamp']}".encode()).decode()
    assert sent == {
        "BusinessShortCode": mpesa.shortcode,
        "Password": expected_password,
        "Timestamp": sent["Timestamp"],
        "TransactionType": "CustomerPayBillOnline",
        "Amount": 1500,
        "PartyA": "254708374149",
        "PartyB": mpesa.shortcode,
        "PhoneNumber": "254708374149",
        "CallBackURL": f"{NOTIFY}/stk/{TOKEN}",
        "AccountReference": "A000123-EXTR",
        "TransactionDesc": "Invoice INV-2",
    }


def test_buy_goods_pushes_to_the_till(mpesa):
    core_settings.set_value("mpesa.transaction_type", "CustomerBuyGoodsOnline")
    core_settings.set_value("mpesa.party_b", "5566778")
    gateways.start_payment("mpesa", request())
    sent = mpesa.stk_requests[0]["request"]
    assert (sent["TransactionType"], sent["BusinessShortCode"], sent["PartyB"]) == (
        "CustomerBuyGoodsOnline", mpesa.shortcode, "5566778")


def test_cents_are_rounded_up_and_reported(mpesa):
    start = gateways.start_payment("mpesa", request(minor=150001))
    assert mpesa.stk_requests[0]["request"]["Amount"] == 1501
    assert start.amount == Money(150100, "KES")


def test_token_is_cached_then_renewed_when_it_expires(mpesa, monkeypatch):
    gateways.start_payment("mpesa", request())
    gateways.start_payment("mpesa", request())
    assert mpesa.oauth_requests == 1 and len(mpesa.stk_requests) == 2

    # An hour later the cached token has run out: a new one is fetched before the call.
    real_clock = daraja._clock
    monkeypatch.setattr(daraja, "_clock", lambda: real_clock() + 3600)
    gateways.start_payment("mpesa", request())
    assert mpesa.oauth_requests == 2 and len(mpesa.stk_requests) == 3
    assert mpesa.refused == []  # renewed before Daraja had to refuse it


def test_token_refused_by_daraja_is_renewed_once(mpesa):
    gateways.start_payment("mpesa", request())
    mpesa.expire_tokens()  # Daraja forgets the token early
    gateways.start_payment("mpesa", request())
    assert mpesa.oauth_requests == 2 and len(mpesa.stk_requests) == 2
    assert [(status, body["errorCode"]) for _path, status, body in mpesa.refused] == [(401, "404.001.03")]

    # A token refused again right after renewal is an error, not a loop.
    invalid = {"requestId": "1-2-3", "errorCode": "404.001.03", "errorMessage": "Invalid Access Token"}
    mpesa.fail_next(401, invalid)
    mpesa.fail_next(401, invalid)
    with pytest.raises(ValidationError, match="Invalid Access Token"):
        gateways.start_payment("mpesa", request())
    assert mpesa.oauth_requests == 3 and len(mpesa.stk_requests) == 2


def test_short_lived_tokens_are_renewed_before_they_expire(db, pm, monkeypatch):
    with DarajaStandIn(token_lifetime=100) as standin:
        daraja.forget_tokens()
        configure(standin)
        real_clock = daraja._clock
        gateways.start_payment("mpesa", request())
        monkeypatch.setattr(daraja, "_clock", lambda: real_clock() + 91)  # in the token's last tenth
        gateways.start_payment("mpesa", request())
        daraja.forget_tokens()
    assert standin.oauth_requests == 2 and standin.refused == []


def test_phone_is_required_and_checked(mpesa):
    for phone in (None, "", "+1 202 555 0143", "0208374149"):
        with pytest.raises(ValidationError) as refused:
            gateways.start_payment("mpesa", request(phone=phone))
        assert refused.value.field == "phone"
    assert mpesa.stk_requests == [] and mpesa.oauth_requests == 0


def test_callback_address_must_be_public_https(mpesa):
    for url in (None, "", "http://billing.example.net/hooks/mpesa", "ftp://billing.example.net"):
        with pytest.raises(ValidationError) as refused:
            gateways.start_payment("mpesa", request(notify_url=url))
        assert refused.value.field == "notify_url"
    assert mpesa.stk_requests == []

    gateways.start_payment("mpesa", request(notify_url="https://billing.example.net/hooks/mpesa/"))
    gateways.start_payment("mpesa", request(notify_url="http://[::1]:5000/hooks/mpesa"))
    core_settings.set_value("mpesa.callback_base_url", "https://pay.example.net/cb/m")
    gateways.start_payment("mpesa", request(notify_url=None))
    assert [e["request"]["CallBackURL"] for e in mpesa.stk_requests] == [
        f"https://billing.example.net/hooks/mpesa/stk/{TOKEN}",
        f"http://[::1]:5000/hooks/mpesa/stk/{TOKEN}",
        f"https://pay.example.net/cb/m/stk/{TOKEN}",
    ]


def _refusal(call) -> str:
    with pytest.raises(ValidationError) as refused:
        call()
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_daraja_refusals_become_one_line_messages_without_secrets(mpesa, monkeypatch):
    push = lambda: gateways.start_payment("mpesa", request())  # noqa: E731
    shown = []

    mpesa.fail_next(400, {"requestId": "1", "errorCode": "400.002.02", "errorMessage": "Bad Request - Invalid PartyB"})
    shown.append(_refusal(push))
    assert shown[-1] == "M-Pesa refused the payment request: Bad Request - Invalid PartyB (400.002.02)"

    mpesa.fail_next(500, {"requestId": "2", "errorCode": "500.001.1001",
                          "errorMessage": "Unable to lock subscriber,\na transaction is already in process"})
    shown.append(_refusal(push))
    assert shown[-1] == ("M-Pesa refused the payment request: Unable to lock subscriber, a transaction is "
                         "already in process (500.001.1001)")

    mpesa.fail_next(200, {"MerchantRequestID": "x", "CheckoutRequestID": "", "ResponseCode": "1",
                          "ResponseDescription": "The balance is insufficient"})
    shown.append(_refusal(push))
    assert shown[-1] == "M-Pesa refused the payment request: The balance is insufficient"

    mpesa.fail_next(502, {})
    shown.append(_refusal(push))
    assert shown[-1] == "M-Pesa refused the payment request with HTTP 502"

    monkeypatch.setattr(daraja, "TIMEOUT", 0.3)
    mpesa.delay = 1.0
    shown.append(_refusal(push))
    assert shown[-1] == "M-Pesa (127.0.0.1:%d) did not answer within 0.3 s" % int(mpesa.url.rsplit(":", 1)[1])
    mpesa.delay = 0

    daraja.forget_tokens()
    core_settings.set_value("mpesa.consumer_secret", "not-the-secret")
    shown.append(_refusal(push))
    assert shown[-1] == "M-Pesa refused the consumer key and secret: Invalid Authentication passed (400.008.01)"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    core_settings.set_value("mpesa.api_base", f"http://127.0.0.1:{closed}")
    shown.append(_refusal(push))
    assert shown[-1].startswith(f"cannot reach M-Pesa at 127.0.0.1:{closed}: ")

    everything = " ".join(shown)
    assert not any(secret in everything for secret in (mpesa.consumer_secret, "not-the-secret", mpesa.passkey, TOKEN))


def test_refusal_messages_hide_secrets(mpesa):
    mpesa.fail_next(400, {"errorCode": "400.002.02",
                          "errorMessage": f"bad {mpesa.passkey} and {mpesa.consumer_secret} and {TOKEN}"})
    message = _refusal(lambda: gateways.start_payment("mpesa", request()))
    assert message == "M-Pesa refused the payment request: bad **** and **** and **** (400.002.02)"


def test_other_gateways_are_left_alone(mpesa):
    note = notification({}, path="anything")
    assert plugin.gateway_start_payment(gateway="stripe", request=request()) is None
    assert plugin.gateway_parse_notification(gateway="stripe", notification=note) is None
    assert plugin.gateway_reply(gateway="stripe", notification=note, error=None) is None
    assert mpesa.stk_requests == []


# --- callbacks -----------------------------------------------------------------------

def _pushed(standin, **kwargs):
    return gateways.start_payment("mpesa", request(**kwargs)).reference


def test_stk_success_callback(mpesa):
    checkout = _pushed(mpesa)
    body = mpesa.stk_callback(checkout, receipt="SLG2ABC123")
    first = parse(body)
    assert parse(body) == first  # the same callback twice reads the same
    [notice] = first
    assert (notice.gateway, notice.kind, notice.reference, notice.attempt) == ("mpesa", "payment", "SLG2ABC123",
                                                                               checkout)
    assert (notice.amount, notice.payer, notice.method) == (Money(150000, "KES"), "254708374149", "mpesa")
    assert notice.received_at.tzinfo is None and abs(notice.received_at - now_utc()) < dt.timedelta(minutes=1)
    assert notice.raw["ResultCode"] == "0" and notice.raw["MpesaReceiptNumber"] == "SLG2ABC123"
    json.dumps(notice.raw)  # storable as it is

    [decimal] = parse(mpesa.stk_callback(checkout, amount=Decimal("1500.50")))
    assert decimal.amount == Money(150050, "KES")


@pytest.mark.parametrize("code", [1032, 1037, 1, 2001])
def test_stk_failure_callback(mpesa, code):
    checkout = _pushed(mpesa)
    [notice] = parse(mpesa.stk_callback(checkout, result_code=code))
    assert (notice.kind, notice.reference, notice.attempt, notice.amount) == ("failure", checkout, checkout,
                                                                              Money(0, "KES"))
    assert notice.raw["ResultCode"] == str(code) and notice.raw["ResultDesc"]


def test_c2b_confirmation_and_validation(mpesa):
    body = mpesa.c2b_payment("A000123", amount="2300.00", trans_id="SLH4XYZ789")
    [notice] = parse(body, path=f"c2b/confirm/{TOKEN}")
    assert (notice.kind, notice.reference, notice.account, notice.amount) == ("payment", "SLH4XYZ789", "A000123",
                                                                              Money(230000, "KES"))
    assert (notice.payer, notice.method, notice.attempt) == ("JOHN 254708374149", "mpesa", None)
    assert notice.received_at.tzinfo is None and abs(notice.received_at - now_utc()) < dt.timedelta(minutes=1)
    json.dumps(notice.raw)

    masked = mpesa.c2b_payment("A000123", msisdn="2547 ***** 149", first_name="Jane")
    assert parse(masked, path=f"c2b/confirm/{TOKEN}")[0].payer == "Jane"
    till = mpesa.c2b_payment("", transaction_type="Buy Goods")
    assert parse(till, path=f"c2b/confirm/{TOKEN}")[0].account is None

    assert parse(body, path=f"c2b/validate/{TOKEN}") == []  # no money yet


def test_callbacks_that_are_not_believed(mpesa):
    checkout = _pushed(mpesa)
    good_stk = mpesa.stk_callback(checkout)
    good_c2b = mpesa.c2b_payment("A000123")
    stale = now_utc() - dt.timedelta(hours=73)

    def items_without(name):
        body = mpesa.stk_callback(checkout)
        meta = body["Body"]["stkCallback"]["CallbackMetadata"]
        meta["Item"] = [i for i in meta["Item"] if i["Name"] != name]
        return body

    no_checkout = mpesa.stk_callback(checkout)
    del no_checkout["Body"]["stkCallback"]["CheckoutRequestID"]
    cases = [
        (good_stk, {"path": "stk/" + "x" * len(TOKEN)}, "wrong M-Pesa callback token"),
        (good_stk, {"path": "stk"}, "without its token"),
        (good_stk, {"path": f"b2c/result/{TOKEN}"}, "unknown M-Pesa callback path"),
        (good_stk, {"path": ""}, "unknown M-Pesa callback path"),
        (b"{not json", {}, "not JSON"),
        (b"\xff\xfe", {}, "not JSON"),
        ([1, 2], {}, "not a JSON object"),
        ({"Body": {}}, {}, "no Body.stkCallback"),
        (no_checkout, {}, "no CheckoutRequestID"),
        (items_without("MpesaReceiptNumber"), {}, "no MpesaReceiptNumber"),
        (items_without("TransactionDate"), {}, "no TransactionDate"),
        (mpesa.stk_callback(checkout, amount="lots"), {}, "not an amount"),
        (mpesa.stk_callback(checkout, amount=Decimal("10.005")), {}, "at most 2 decimal places"),
        (mpesa.stk_callback(checkout, amount=0), {}, "not a positive amount"),
        (mpesa.stk_callback(checkout, when=stale), {}, "older than 72 hours"),
        (mpesa.stk_callback(checkout, when=now_utc() + dt.timedelta(hours=3)), {}, "in the future"),
        (mpesa.c2b_payment("A000123", shortcode="600999"), {"path": f"c2b/confirm/{TOKEN}"}, "not ours"),
        (mpesa.c2b_payment("A000123", when=stale), {"path": f"c2b/confirm/{TOKEN}"}, "replay"),
        (mpesa.c2b_payment("A000123", when=stale), {"path": f"c2b/validate/{TOKEN}"}, "replay"),
        (mpesa.c2b_payment("A000123", amount="12,00"), {"path": f"c2b/confirm/{TOKEN}"}, "not an amount"),
        ({**good_c2b, "TransID": ""}, {"path": f"c2b/confirm/{TOKEN}"}, "no TransID"),
        ({**good_c2b, "TransID": "../../x"}, {"path": f"c2b/confirm/{TOKEN}"}, "not a transaction id"),
        ({**good_c2b, "TransTime": "yesterday"}, {"path": f"c2b/confirm/{TOKEN}"}, "YYYYMMDDHHMMSS"),
    ]
    for body, kwargs, message in cases:
        with pytest.raises(ValidationError, match=message):
            parse(body, **kwargs)

    # A shorter window is honoured.
    core_settings.set_value("mpesa.max_age_hours", "1")
    with pytest.raises(ValidationError, match="older than 1 hours"):
        parse(mpesa.stk_callback(checkout, when=now_utc() - dt.timedelta(hours=2)))


def test_callbacks_from_unlisted_addresses_are_refused(mpesa):
    body = mpesa.c2b_payment("A000123")
    path = f"c2b/confirm/{TOKEN}"
    assert parse(body, path=path, remote_addr="10.9.8.7")  # no list: any address

    core_settings.set_value("mpesa.allowed_ips", "196.201.214.0/24, 196.201.213.114")
    assert parse(body, path=path, remote_addr="196.201.214.200")
    assert parse(body, path=path, remote_addr="196.201.213.114")
    for addr in ("127.0.0.1", "196.201.215.1", None, "not-an-ip"):
        with pytest.raises(ValidationError, match="M-Pesa callback from"):
            parse(body, path=path, remote_addr=addr)


def test_callbacks_refused_until_a_token_is_set(db, pm, standin):
    from core.models import Setting

    configure(standin)
    Setting.delete().where(Setting.key == "mpesa.callback_token").execute()
    with pytest.raises(ValidationError, match="until mpesa.callback_token is set"):
        parse(standin.c2b_payment("A000123"), path="c2b/confirm/")


# --- replies -------------------------------------------------------------------------

def test_replies(mpesa, pm):
    from tests.factories import make_customer

    customer = make_customer()
    validate = f"c2b/validate/{TOKEN}"
    known = notification(mpesa.c2b_payment(customer.account_number), path=validate)
    unknown = notification(mpesa.c2b_payment("NOBODY-42"), path=validate)
    empty = notification(mpesa.c2b_payment(""), path=validate)

    def body(answer):
        assert answer.content_type == "application/json"
        return answer.status, json.loads(answer.body)

    assert body(reply(pm, known)) == (200, {"ResultCode": "0", "ResultDesc": "Accepted"})
    assert body(reply(pm, unknown)) == (200, {"ResultCode": "C2B00012", "ResultDesc": "Rejected"})
    assert body(reply(pm, empty)) == (200, {"ResultCode": "C2B00012", "ResultDesc": "Rejected"})
    lower = notification(mpesa.c2b_payment(customer.account_number.lower()), path=validate)
    assert body(reply(pm, lower))[1]["ResultCode"] == "0"

    confirm = notification(mpesa.c2b_payment(customer.account_number), path=f"c2b/confirm/{TOKEN}")
    notices = parse(json.loads(confirm.body), path=confirm.path)
    assert body(reply(pm, confirm, notices)) == (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
    checkout = _pushed(mpesa)
    stk_note = notification(mpesa.stk_callback(checkout, result_code=1032))
    assert body(reply(pm, stk_note, parse(json.loads(stk_note.body)))) == (200, {"ResultCode": 0,
                                                                               "ResultDesc": "Accepted"})

    refused = notification(b"{}", path="stk/wrong")
    assert body(reply(pm, refused, error="wrong M-Pesa callback token")) == (
        400, {"ResultCode": 1, "ResultDesc": "Rejected: wrong M-Pesa callback token"})
    assert body(reply(pm, unknown, error="M-Pesa payment notice for shortcode '1', which is not ours")) == (
        400, {"ResultCode": "C2B00016", "ResultDesc": "Rejected: M-Pesa payment notice for shortcode '1', "
                                                      "which is not ours"})


def test_validation_uses_the_cores_reference_matching(mpesa, pm, monkeypatch):
    from core import customers
    from tests.factories import make_customer

    customer = make_customer()
    asked = []

    def match_reference(text):
        asked.append(text)
        return (customer, None) if "INV-2026-000123" in text else None

    monkeypatch.setattr(customers, "match_reference", match_reference, raising=False)
    validate = f"c2b/validate/{TOKEN}"
    good = notification(mpesa.c2b_payment("pay INV-2026-000123 thanks"), path=validate)
    bad = notification(mpesa.c2b_payment(customer.account_number), path=validate)
    assert json.loads(reply(pm, good).body)["ResultCode"] == "0"
    assert json.loads(reply(pm, bad).body)["ResultCode"] == "C2B00012"
    assert asked == ["pay INV-2026-000123 thanks", customer.account_number]

    monkeypatch.setattr(customers, "match_reference", lambda text: 1 / 0, raising=False)
    assert json.loads(reply(pm, good).body) == {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}


# --- wispbill mpesa register-urls ----------------------------------------------------

@pytest.fixture
def mpesa_cli(cli, pm):
    from core import cli as cli_module

    cli_module.add_plugin_commands(pm)
    yield cli
    cli_module.cli.commands.pop("mpesa", None)


def test_register_urls(mpesa, mpesa_cli):
    core_settings.set_value("mpesa.c2b_shortcode", "600984")
    core_settings.set_value("mpesa.callback_base_url", "https://pay.example.net/cb/m")
    result = mpesa_cli("mpesa", "register-urls")
    assert result.exit_code == 0, result.output
    assert mpesa.register_requests == [{
        "ShortCode": "600984", "ResponseType": "Completed",
        "ConfirmationURL": f"https://pay.example.net/cb/m/c2b/confirm/{TOKEN}",
        "ValidationURL": f"https://pay.example.net/cb/m/c2b/validate/{TOKEN}",
    }]
    assert TOKEN not in result.output
    assert result.output.splitlines() == [
        "shortcode 600984 (sandbox, ResponseType Completed):",
        "  confirmation: https://pay.example.net/cb/m/c2b/confirm/<callback_token>",
        "  validation:   https://pay.example.net/cb/m/c2b/validate/<callback_token>",
        "Daraja answered: ResponseCode 0: Success",
    ]

    result = mpesa_cli("mpesa", "register-urls", "--response-type", "Cancelled", "--api-version", "v1")
    assert result.exit_code == 0, result.output
    assert mpesa.register_requests[-1]["ResponseType"] == "Cancelled"
    assert mpesa.register_paths == ["/mpesa/c2b/v2/registerurl", "/mpesa/c2b/v1/registerurl"]


def test_register_urls_refusals(mpesa, mpesa_cli):
    # No address to register.
    result = mpesa_cli("mpesa", "register-urls")
    assert result.exit_code == 2 and "give --base-url" in result.output

    # Daraja filters URLs naming M-Pesa, and /hooks/mpesa does: refused before asking.
    result = mpesa_cli("mpesa", "register-urls", "--base-url", "https://billing.example.net")
    assert result.exit_code == 2 and "set mpesa.callback_base_url" in result.output
    assert "https://billing.example.net/hooks/mpesa/c2b/confirm/<callback_token>" in result.output

    result = mpesa_cli("mpesa", "register-urls", "--base-url", "http://billing.example.net")
    assert result.exit_code == 2 and "must be https" in result.output
    assert mpesa.register_requests == []

    core_settings.set_value("mpesa.callback_base_url", "https://pay.example.net/cb/m")
    mpesa.fail_next(400, {"requestId": "1", "errorCode": "400.003.02",
                          "errorMessage": "Bad Request - Invalid Shortcode"})
    result = mpesa_cli("mpesa", "register-urls")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: M-Pesa refused the URL registration: Bad Request - Invalid Shortcode (400.003.02)")

    mpesa.fail_next(200, {"OriginatorCoversationID": "", "ResponseCode": "1", "ResponseDescription": "Duplicate"})
    result = mpesa_cli("mpesa", "register-urls")
    assert result.exit_code == 1 and "ResponseCode 1: Duplicate" in result.output

    from core.models import Setting

    Setting.delete().where(Setting.key == "mpesa.consumer_secret").execute()
    result = mpesa_cli("mpesa", "register-urls")
    assert result.exit_code == 2 and "not set up yet: set mpesa.consumer_secret" in result.output
    assert TOKEN not in result.output and mpesa.passkey not in result.output


# --- end to end through the web app --------------------------------------------------

@pytest.fixture
def live(app, standin):
    """The app with M-Pesa configured against the stand-in, and a customer."""
    from tests.factories import make_customer

    configure(standin, **{"mpesa.callback_base_url": "http://localhost/hooks/mpesa"})
    return standin, make_customer()


def _start(app, customer, minor=150000):
    from core import payments

    with app.test_request_context():
        return payments.start_payment("mpesa", customer=customer, amount=Money(minor, "KES"), phone="0708374149")


def _post(client, path, body):
    return client.post(f"/hooks/mpesa/{path}", data=encode(body), content_type="application/json")


def test_e2e_stk_push_then_callback_records_one_payment(app, client, live):
    from core.models import Payment, PaymentAttempt

    standin, customer = live
    attempt, start = _start(app, customer)
    assert attempt.gateway == "mpesa" and attempt.gateway_reference == start.reference
    body = standin.stk_callback(start.reference, receipt="SLG2E2E001")

    response = _post(client, f"stk/{TOKEN}", body)
    assert response.status_code == 200 and response.get_json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    assert _post(client, f"stk/{TOKEN}", body).status_code == 200  # Daraja sends it again

    [payment] = Payment.select().where(Payment.gateway == "mpesa")
    assert (payment.reference, payment.customer_id, payment.amount_minor, payment.currency) == (
        "SLG2E2E001", customer.id, 150000, "KES")
    assert PaymentAttempt.get_by_id(attempt.id).status == "succeeded"


def test_e2e_same_callback_from_two_threads_records_one_payment(app, live):
    from core.models import Payment

    standin, customer = live
    _attempt, start = _start(app, customer)
    body = standin.stk_callback(start.reference, receipt="SLG2E2E002")
    barrier, statuses = threading.Barrier(2), []

    def deliver():
        with app.test_client() as own:
            barrier.wait(10)
            statuses.append(_post(own, f"stk/{TOKEN}", body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [200, 200]
    assert Payment.select().where(Payment.gateway == "mpesa", Payment.reference == "SLG2E2E002").count() == 1


def test_e2e_cancelled_push_records_no_payment(app, client, live):
    from core.models import Payment, PaymentAttempt

    standin, customer = live
    attempt, start = _start(app, customer)
    response = _post(client, f"stk/{TOKEN}", standin.stk_callback(start.reference, result_code=1032))
    assert response.status_code == 200
    assert Payment.select().count() == 0
    assert PaymentAttempt.get_by_id(attempt.id).status == "failed"


def test_e2e_c2b_confirmation_for_a_known_account(app, client, live):
    from core.models import Payment, PaymentReview

    standin, customer = live
    body = standin.c2b_payment(customer.account_number, amount="2300.00", trans_id="SLH4E2E003")
    response = _post(client, f"c2b/confirm/{TOKEN}", body)
    assert response.status_code == 200 and response.get_json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    [payment] = Payment.select()
    assert (payment.reference, payment.customer_id, payment.amount_minor) == ("SLH4E2E003", customer.id, 230000)
    assert PaymentReview.select().count() == 0


def test_e2e_c2b_confirmation_for_an_unknown_account_is_held(app, client, live):
    from core.models import Payment, PaymentReview

    standin, _customer = live
    response = _post(client, f"c2b/confirm/{TOKEN}", standin.c2b_payment("NOBODY-42", trans_id="SLH4E2E004"))
    assert response.status_code == 200
    assert Payment.select().count() == 0
    assert PaymentReview.select().count() == 1


def test_e2e_validation_answers(app, client, live):
    from core.models import Payment, PaymentReview

    standin, customer = live
    known = _post(client, f"c2b/validate/{TOKEN}", standin.c2b_payment(customer.account_number))
    unknown = _post(client, f"c2b/validate/{TOKEN}", standin.c2b_payment("NOBODY-42"))
    assert (known.status_code, known.get_json()) == (200, {"ResultCode": "0", "ResultDesc": "Accepted"})
    assert (unknown.status_code, unknown.get_json()) == (200, {"ResultCode": "C2B00012", "ResultDesc": "Rejected"})
    assert Payment.select().count() == 0 and PaymentReview.select().count() == 0


def test_e2e_bad_token_is_refused_and_audited(app, client, live):
    from core.models import AuditEvent, Payment

    standin, customer = live
    _attempt, start = _start(app, customer)
    response = _post(client, "stk/" + "x" * len(TOKEN), standin.stk_callback(start.reference))
    assert response.status_code == 400 and response.get_json()["ResultCode"] == 1
    assert Payment.select().count() == 0
    assert AuditEvent.select().where(AuditEvent.action == "webhook.refused").count() == 1
