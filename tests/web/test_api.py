"""The JSON API under /api/v1 with real tokens: every resource read and written, the guard's refusals,
strict input checks, the audit actor, and the OpenAPI document matching the routes."""

from __future__ import annotations

import datetime as dt

import pytest

from core import api_tokens, login_throttle, permissions
from core.clock import utcnow
from core.models import ApiToken, LoginFailure, AuditEvent, Customer, Invoice, Payment, Router, Service, User
from tests.factories import make_customer, make_issued_invoice

API = "/api/v1"


def bearer(text: str) -> dict:
    return {"Authorization": f"Bearer {text}"}


@pytest.fixture
def token(admin_user):
    """An admin's token with every scope: ``(row, text)``."""
    return api_tokens.create(admin_user, name="integration", scopes=list(permissions.SCOPES))


def test_every_resource_read_and_written_with_a_token(client, db, token):
    row, text = token
    h = bearer(text)
    actor = f"api:admin:{row.prefix}"

    # customers
    r = client.post(f"{API}/customers", json={"name": "Wanjiru Kamau", "currency": "KES", "email": "w@example.org",
                                              "phone": "+254 700 000001", "address": "Plot 7\nNakuru"}, headers=h)
    assert r.status_code == 201, r.json
    customer = r.json
    assert customer["account_number"].startswith("A") and customer["balance"] == {"minor": 0, "currency": "KES"}
    assert client.get(f"{API}/customers?q=wanjiru", headers=h).json["items"][0]["id"] == customer["id"]
    assert client.get(f"{API}/customers?q=nobody-like-this", headers=h).json["items"] == []
    r = client.patch(f"{API}/customers/{customer['id']}", json={"phone": "+254 711 111111", "notes": "gate code 4"},
                     headers=h)
    assert r.status_code == 200 and r.json["phone"] == "+254 711 111111" and r.json["notes"] == "gate code 4"
    assert r.json["email"] == "w@example.org"  # not given: unchanged
    got = client.get(f"{API}/customers/{customer['id']}", headers=h).json
    assert got["address"] == "Plot 7\nNakuru" and got["phone"] == "+254 711 111111"

    # plans
    plan_body = {"code": "home-10", "name": "Home 10", "kind": "internet", "price": {"minor": 150_000, "currency": "KES"},
                 "download_kbps": 10_000, "upload_kbps": 2_000, "data_cap_mb": 100_000}
    r = client.post(f"{API}/plans", json=plan_body, headers=h)
    assert r.status_code == 201 and r.json["price"] == {"minor": 150_000, "currency": "KES"} and r.json["version"] == 1
    plan = r.json
    r = client.post(f"{API}/plans", json={**plan_body, "code": "home-20", "name": "Home 20",
                                          "price": {"minor": 250_000, "currency": "KES"}}, headers=h)
    assert r.status_code == 201
    assert {p["code"] for p in client.get(f"{API}/plans", headers=h).json["items"]} == {"home-10", "home-20"}
    assert client.get(f"{API}/plans/{plan['id']}", headers=h).json["name"] == "Home 10"

    # services and usage
    r = client.post(f"{API}/services", json={"customer_id": customer["id"], "plan": "home-10",
                                             "start_date": "2026-01-01", "username": "wanjiru", "password": "s3cret"},
                    headers=h)
    assert r.status_code == 201, r.json
    service = r.json
    assert service["plan"] == "home-10" and "password" not in service
    listed = client.get(f"{API}/services?customer_id={customer['id']}", headers=h).json["items"]
    assert [s["id"] for s in listed] == [service["id"]]
    assert client.get(f"{API}/services/{service['id']}", headers=h).json["username"] == "wanjiru"
    usage = client.get(f"{API}/services/{service['id']}/usage", headers=h).json
    assert usage["service_id"] == service["id"] and usage["cap_bytes"] == 100_000 * 10**6 and usage["bytes_total"] == 0

    # invoices, the PDF
    invoice = make_issued_invoice(Customer.get_by_id(customer["id"]), 150_000)
    listed = client.get(f"{API}/invoices?customer_id={customer['id']}&status=issued", headers=h).json["items"]
    assert [i["id"] for i in listed] == [invoice.id]
    got = client.get(f"{API}/invoices/{invoice.id}", headers=h).json
    assert got["due"] == {"minor": 150_000, "currency": "KES"} and got["lines"][0]["description"] == "Service"
    pdf = client.get(f"{API}/invoices/{invoice.id}/pdf", headers=h)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")

    # payments: recorded once, the same reference again answers the same payment
    body = {"customer_id": customer["id"], "amount": {"minor": 100_000, "currency": "KES"}, "method": "bank_transfer",
            "reference": "BANK-0042", "invoice_id": invoice.id, "received_on": "2026-03-01"}
    r = client.post(f"{API}/payments", json=body, headers=h)
    assert r.status_code == 201, r.json
    payment = r.json
    assert payment["allocations"][0]["invoice_id"] == invoice.id and payment["recorded_by"] == actor
    again = client.post(f"{API}/payments", json=body, headers=h)
    assert again.status_code == 200 and again.json["id"] == payment["id"] and Payment.select().count() == 1
    r = client.post(f"{API}/payments", json={**body, "amount": {"minor": 5, "currency": "KES"}}, headers=h)
    assert r.status_code == 400 and r.json["field"] == "reference"
    assert client.get(f"{API}/payments/{payment['id']}", headers=h).json["reference"] == "BANK-0042"
    assert [p["id"] for p in client.get(f"{API}/payments?customer_id={customer['id']}", headers=h).json["items"]] \
        == [payment["id"]]
    assert client.get(f"{API}/customers/{customer['id']}", headers=h).json["balance"]["minor"] == 50_000

    # a credit note for the rest of the invoice
    r = client.post(f"{API}/invoices/{invoice.id}/credit-notes",
                    json={"reason": "outage in March", "amount": {"minor": 50_000, "currency": "KES"}}, headers=h)
    assert r.status_code == 201, r.json
    assert r.json["total"] == {"minor": 50_000, "currency": "KES"}
    assert Invoice.get_by_id(invoice.id).status == "paid"
    r = client.post(f"{API}/invoices/{invoice.id}/credit-notes", json={"reason": "again", "void": True},
                    headers=h)
    assert r.status_code == 400 and r.json["field"] == "invoice"  # paid in part: credit it, do not void it

    # plan change and cancellation
    r = client.post(f"{API}/services/{service['id']}/plan-change", json={"plan": "home-20"}, headers=h)
    assert r.status_code == 200, r.json
    assert r.json["upgrade"] is True and r.json["service"]["plan"] == "home-20"
    r = client.post(f"{API}/services/{service['id']}/plan-change", json={"plan": "home-20"}, headers=h)
    assert r.status_code == 400 and r.json["field"] == "plan"
    r = client.post(f"{API}/services/{service['id']}/cancel", json={"reason": "moving away"}, headers=h)
    assert r.status_code == 200 and r.json["end_date"] and Service.get_by_id(service["id"]).end_date is not None
    assert client.post(f"{API}/services/{service['id']}/cancel", json={}, headers=h).status_code == 400

    # routers: never the secret; a reconcile of an unreachable router reports it
    router = Router.create(name="tower-1", kind="mikrotik", host="127.0.0.1", port=1, secret="tower-secret",
                           options={"timeout_seconds": 1})
    listed = client.get(f"{API}/routers", headers=h)
    assert listed.json["items"][0]["name"] == "tower-1" and b"tower-secret" not in listed.data
    got = client.get(f"{API}/routers/{router.id}", headers=h)
    assert got.json["host"] == "127.0.0.1" and "secret" not in got.json
    r = client.post(f"{API}/routers/{router.id}/reconcile", headers=h)
    assert r.status_code == 200 and r.json["router"] == "tower-1" and "unreachable" in r.json["error"]
    assert "unreachable" in Router.get_by_id(router.id).last_error

    # every write is attributed to the token
    actions = {e.action: e.actor for e in AuditEvent.select().where(AuditEvent.actor.startswith("api:"))}
    for action in ("customer.create", "customer.update", "plan.create", "service.create", "service.change_plan",
                   "service.cancel", "credit_note.issue"):
        assert actions.get(action) == actor, (action, actions)
    assert ApiToken.get_by_id(row.id).last_used_at is not None


def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(client, db, token):
    h = bearer(token[1])
    customer = make_customer()
    before = Customer.select().count()
    big = 2**63
    cases = [
        ("post", "/customers", {"name": 42}, "name"),
        ("post", "/customers", {"name": "X", "terms_days": "14"}, "terms_days"),
        ("post", "/customers", {"name": "X", "terms_days": big}, "terms_days"),
        ("post", "/customers", {"name": "X", "terms_days": 1.5}, "terms_days"),
        ("post", "/customers", {"name": "X", "tax_exempt": "yes"}, "tax_exempt"),
        ("post", "/customers", {"name": "X", "colour": "blue"}, "colour"),
        ("post", "/customers", {"email": "a@b.org"}, "name"),
        ("post", "/customers", {"name": None}, "name"),
        ("post", "/customers", {"name": "A\x00B"}, "name"),
        ("post", "/customers", {"name": "\ud800"}, "name"),
        ("post", "/customers", {"name": "X", "email": "not-an-address"}, "email"),
        ("post", "/customers", [1, 2], "body"),
        ("post", "/customers", "just text", "body"),
        ("patch", f"/customers/{customer.id}", {"name": None}, "name"),
        ("patch", f"/customers/{customer.id}", {"account_number": "B1"}, "account_number"),
        ("post", "/payments", {"customer_id": str(customer.id), "amount": {"minor": 1, "currency": "KES"}},
         "customer_id"),
        ("post", "/payments", {"customer_id": big, "amount": {"minor": 1, "currency": "KES"}}, "customer_id"),
        ("post", "/payments", {"customer_id": customer.id, "amount": {"minor": big, "currency": "KES"}}, "amount"),
        ("post", "/payments", {"customer_id": customer.id, "amount": {"minor": 0, "currency": "KES"}}, "amount"),
        ("post", "/payments", {"customer_id": customer.id, "amount": "100"}, "amount"),
        ("post", "/payments", {"customer_id": customer.id, "amount": {"minor": 1, "currency": "ZZZ"}}, "amount"),
        ("post", "/payments", {"customer_id": customer.id, "amount": {"minor": 100, "currency": "USD"}}, "amount"),
        ("post", "/payments", {"customer_id": customer.id, "amount": {"minor": 1, "currency": "KES"},
                               "received_on": "1066-10-14"}, "received_on"),
        ("post", "/payments", {"customer_id": customer.id, "amount": {"minor": 1, "currency": "KES"},
                               "reference": "TX\x001"}, "reference"),
        ("post", "/plans", {"code": "Bad Code", "name": "x", "kind": "internet",
                            "price": {"minor": 1, "currency": "KES"}}, "code"),
        ("post", "/plans", {"code": "p", "name": "x", "kind": "internet", "price": {"minor": 1, "currency": "KES"},
                            "download_kbps": 10**12}, "download_kbps"),
        ("post", "/services", {"customer_id": customer.id, "plan": "no-such-plan"}, "plan"),
        ("get", "/customers?limit=0", None, "limit"),
        ("get", "/customers?limit=abc", None, "limit"),
        ("get", f"/customers?offset={big}", None, "offset"),
        ("get", "/customers?q=a%00b", None, "q"),
        ("get", "/customers?sort=name", None, "sort"),
        ("get", "/invoices?status=lost", None, "status"),
    ]
    for method, path, body, field in cases:
        kwargs = {"headers": h} if body is None else {"headers": h, "json": body}
        r = getattr(client, method)(API + path, **kwargs)
        assert r.status_code == 400, (path, body, r.status_code, r.data)
        assert r.json["status"] == 400 and r.json["error"] == "Bad request" and r.json["field"] == field, (body, r.json)
    r = client.post(f"{API}/customers", data="{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["field"] == "body"
    assert client.get(f"{API}/customers/{big}", headers=h).status_code == 404
    assert client.get(f"{API}/customers/99999", headers=h).json == {
        "error": "Not found", "message": "no customer 99999", "status": 404}
    assert client.get(f"{API}/payments?customer_id=99999", headers=h).status_code == 404
    assert Customer.select().count() == before and Payment.select().count() == 0


def test_the_guard_refuses_without_a_good_token_scope_or_role(app, client, db, token, logged_in):
    _row, admin_text = token
    # no token, or only the console's cookie: 401, and the cookie is ignored
    for headers in ({}, {"Authorization": "Basic YWRtaW46eA=="}, {"Authorization": "Bearer "}):
        r = logged_in.get(f"{API}/customers", headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json["status"] == 401
    r = logged_in.post(f"{API}/customers", json={"name": "Forged by a page"})
    assert r.status_code == 401 and not Customer.select().where(Customer.name == "Forged by a page").exists()

    clerk = User.create(username="clerk", password_hash="!", role="billing")  # tokens need no password
    limited, limited_text = api_tokens.create(clerk, name="reader", scopes=["customers:read", "payments:write"])
    assert client.get(f"{API}/customers", headers=bearer(limited_text)).status_code == 200
    r = client.get(f"{API}/plans", headers=bearer(limited_text))
    assert r.status_code == 403 and "plans:read" in r.json["message"]
    # the owner's role is checked at each call: a clerk made read-only loses payments:write at once
    User.update(role="readonly").where(User.id == clerk.id).execute()
    customer = make_customer()
    r = client.post(f"{API}/payments", json={"customer_id": customer.id, "amount": {"minor": 100, "currency": "KES"}},
                    headers=bearer(limited_text))
    assert r.status_code == 403 and "readonly" in r.json["message"] and Payment.select().count() == 0

    # expired, revoked, deactivated owner: 401
    ApiToken.update(expires_at=utcnow() - dt.timedelta(seconds=1)).where(ApiToken.id == limited.id).execute()
    assert client.get(f"{API}/customers", headers=bearer(limited_text)).status_code == 401
    ApiToken.update(expires_at=None).where(ApiToken.id == limited.id).execute()
    User.update(active=False).where(User.id == clerk.id).execute()
    assert client.get(f"{API}/customers", headers=bearer(limited_text)).status_code == 401
    User.update(active=True).where(User.id == clerk.id).execute()
    api_tokens.revoke(limited.id)
    assert client.get(f"{API}/customers", headers=bearer(limited_text)).status_code == 401

    # wrong tokens count by address: after the limit even a good token waits (429 with Retry-After)
    other = app.test_client()
    assert LoginFailure.select().where(LoginFailure.realm == "api").count() == 3  # the three refusals above
    for _ in range(login_throttle.ACCOUNT_LIMIT - 3):
        assert other.get(f"{API}/customers", headers=bearer("wb_guessing")).status_code == 401
    r = other.get(f"{API}/customers", headers=bearer(admin_text))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0 and r.json["status"] == 429
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"  # another address is not blocked
    assert other.get(f"{API}/customers", headers=bearer(admin_text)).status_code == 200

    # the document is open to anyone
    assert client.get(f"{API}/openapi.json").status_code == 200


def test_the_document_describes_exactly_the_routes(app, client):
    doc = client.get(f"{API}/openapi.json").json
    assert doc["openapi"].startswith("3.") and doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<int:{name}>", "{" + name + "}")
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
            view = app.view_functions[rule.endpoint]
            assert view.wispbill_access[0] == ("public" if rule.endpoint == "api.openapi_json" else "api")
    assert routed == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path.endswith("openapi.json"):
                continue
            scope = op["security"][0]["bearer"][0]
            assert scope in permissions.SCOPES and {"401", "403", "429"} <= set(op["responses"])
            assert (method == "get") == scope.endswith(":read") or scope == "usage:read", (path, method, scope)
    body = doc["paths"]["/api/v1/payments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False and set(body["required"]) == {"customer_id", "amount"}
    assert body["properties"]["amount"]["properties"]["minor"]["minimum"] == 1
    assert body["properties"]["reference"]["anyOf"][0]["maxLength"] == 200
