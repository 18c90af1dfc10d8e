"""The authorization matrix: every route and API operation, called by everyone.

Each route of the app's URL map is called with each of its methods by a visitor who is not
signed in, a signed-in customer, each staff role, and (for the API) a token of each staff
role. What each may get follows from the route's declaration (core/web/security.py):

- ``("staff", permission)``: visitors and customers are sent to the staff sign-in; a role
  without the permission gets 403; a role with it gets past the guard;
- ``("customer",)``: visitors and staff are sent to the portal sign-in; the customer gets past
  the guard, but ids in the URL name another customer's records, and those answer 404;
- ``("api", scope)``: no token (cookies included) is 401; a token without the scope, or of a
  role without the scope's permission, is 403;
- ``("public",)``: anyone.

Nothing answers 500, whoever asks. Ids in URLs name real records of a customer other than
the signed-in one, so "gets past the guard" is seen on real data.
"""

import datetime as dt

import pytest

from core import (api_tokens, credit_notes, customer_requests, paylinks, permissions, portal_accounts, routers,
                  services, users)
from core.db import database
from core.hooktypes import PaymentNotice
from core.models import USER_ROLES, PaymentReview
from core.money import Money
from core.web.security import access_of
from tests.conftest import csrf_token_from
from tests.factories import make_customer, make_issued_invoice, make_payment, make_plan
from tests.web.conftest import STAFF_PASSWORD, sign_in

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PORTAL_PASSWORD = "portal password 1"


def _world():
    """Records of customer "other" for the ids in URLs, and the signed-in customer "me"."""
    from core import payments

    me = make_customer(name="Me Myself", email="me@example.com")
    portal_accounts.set_password(me, PORTAL_PASSWORD)
    other = make_customer(name="Other Customer", email="other@example.com")
    plan = make_plan()
    service = services.add(customer=other, plan=plan)
    invoice = make_issued_invoice(other, 5000, due_date=dt.date(2026, 1, 15))
    payment = make_payment(customer=other)
    note = credit_notes.issue(invoice, reason="matrix", amount=Money(100, invoice.currency))
    with database.atomic():
        payments.hold(PaymentNotice(gateway="manual", reference="MATRIX-1", amount=Money(700, "KES"),
                                    kind="payment"), "no matching customer")
    review = PaymentReview.select().order_by(PaymentReview.id.desc()).get()
    router = routers.add(name="matrix-router", kind="mikrotik", host="127.0.0.1", port=9, username="u", secret="s")
    request = customer_requests.send_message(other, "hello from the other customer")
    victim = users.create("victim", STAFF_PASSWORD, role="readonly")
    token_row, _text = api_tokens.create(users.create("token-owner", STAFF_PASSWORD, role="readonly"),
                                         name="victim token", scopes=["customers:read"])
    values = {
        "customer_id": other.id, "invoice_id": invoice.id, "payment_id": payment.id, "credit_note_id": note.id,
        "service_id": service.id, "plan_id": plan.id, "router_id": router.id, "request_id": request.id,
        "review_id": review.id, "user_id": victim.id, "token_id": token_row.id,
        "action_id": 1, "code": plan.code, "key": "company.name", "gateway": "manual", "path": "x",
        "token": paylinks.token_for(invoice), "filename": "wispbill.css",
    }
    return me, values


def _rules(app):
    """(rule, method, access) for every route but static files, sign-outs last."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        access = access_of(app.view_functions[rule.endpoint])
        for method in sorted(rule.methods & set(METHODS)):
            found.append((rule, method, access))
    return sorted(found, key=lambda item: ("logout" in item[0].endpoint, item[0].rule, item[1]))


def _url(rule, values) -> str:
    wanted = {arg: values.get(arg, 1) for arg in rule.arguments}
    return rule.build(wanted, append_unknown=False)[1]


class Caller:
    """A client with a name and the CSRF token of its session."""

    def __init__(self, name, client, bearer=None):
        self.name, self.client, self.bearer = name, client, bearer
        self.csrf = csrf_token_from(client.get("/auth/login"))

    def call(self, method, url):
        headers = {"Authorization": f"Bearer {self.bearer}"} if self.bearer else {}
        if url.startswith("/api/"):
            return self.client.open(url, method=method, headers=headers, json={})
        data = {"csrf_token": self.csrf} if method != "GET" else None
        return self.client.open(url, method=method, headers=headers, data=data)


def _is_login_redirect(response, login_path) -> bool:
    return response.status_code == 302 and login_path in response.headers.get("Location", "")


def _judge(caller, role, rule, method, access, response) -> str | None:
    """What is wrong with ``response``, or ``None``."""
    status = response.status_code
    if status >= 500:
        return f"answered {status}"
    kind = access[0]
    if kind == "public":
        return None
    if kind == "staff":
        permission = access[1]
        if role is None:
            return None if _is_login_redirect(response, "/auth/login") else f"not sent to sign in ({status})"
        if not permissions.allowed(role, permission):
            return None if status == 403 else f"{role} without {permission} got {status}"
        if status in (401, 403) or _is_login_redirect(response, "/auth/login"):
            return f"{role} with {permission} was refused ({status})"
        return None
    if kind == "customer":
        if caller.name != "customer":
            return None if _is_login_redirect(response, "/portal/login") else f"not sent to portal sign-in ({status})"
        if status in (401, 403) or _is_login_redirect(response, "/portal/login"):
            return f"the customer was refused ({status})"
        if any(arg.endswith("_id") for arg in rule.arguments) and status != 404:
            return f"another customer's record answered {status}, not 404"
        return None
    if kind == "api":
        scope = access[1]
        if caller.bearer is None:
            return None if status == 401 else f"no token got {status}"
        if scope not in permissions.scopes_for(role):
            return None if status == 403 else f"{role} token without {scope} got {status}"
        return None if status not in (401, 403) else f"{role} token with {scope} was refused ({status})"
    return f"unknown access rule {access!r}"


def test_every_route_answers_each_caller_as_its_rule_says(app, db, staff_client):
    me, values = _world()
    db.close()
    callers = [(Caller("anonymous", app.test_client()), None)]
    customer_client = app.test_client()
    token = csrf_token_from(customer_client.get("/portal/login"))
    signed = customer_client.post("/portal/login", data={"identifier": me.email, "password": PORTAL_PASSWORD,
                                                         "csrf_token": token})
    assert signed.status_code == 302, signed.get_data(as_text=True)
    callers.append((Caller("customer", customer_client), None))
    for role in USER_ROLES:
        callers.append((Caller(role, staff_client(role)), role))
        database.connect(reuse_if_open=True)
        owner = users.create(f"api-{role}", STAFF_PASSWORD, role=role)
        _row, text = api_tokens.create(owner, name="matrix", scopes=permissions.scopes_for(role))
        database.close()
        callers.append((Caller(f"api-{role}", app.test_client(), bearer=text), role))

    problems = []
    checked = 0
    rules = _rules(app)
    for caller, role in callers:
        for rule, method, access in rules:
            if access is None:
                problems.append(f"{rule.rule}: declares no access rule")
                continue
            if caller.bearer and access[0] != "api":
                continue  # a token is only for the API; its holder is a visitor elsewhere
            url = _url(rule, values)
            response = caller.call(method, url)
            checked += 1
            wrong = _judge(caller, role, rule, method, access, response)
            if wrong:
                problems.append(f"{caller.name} {method} {url} ({rule.endpoint}): {wrong}")
        if not database.is_closed():
            database.close()
    assert problems == []
    assert checked > 300  # the matrix really ran over the routes


@pytest.mark.parametrize("path", ["/admin/", "/admin/customers", "/portal/", "/api/v1/customers"])
def test_a_staff_session_is_no_customer_and_no_token(app, staff_client, path):
    client = staff_client("admin")
    response = client.get(path)
    if path.startswith("/api/"):
        assert response.status_code == 401  # cookies do not open the API
    elif path.startswith("/portal/"):
        assert _is_login_redirect(response, "/portal/login")
    else:
        assert response.status_code == 200
