"""The customer self-service portal: sign-in, what is due, invoices, paying, usage, requests.

Every page is the signed-in customer's own: each lookup is scoped to ``g.customer``, and
an invoice of someone else answers 404 like one that does not exist, so ids tell nothing.
Paying reuses the pay-link machinery: the gateways offered are those of the public pay
page (:func:`core.web.pay.offered`) and a payment is started by
:func:`core.payments.start_payment`; the invoice turns paid when the gateway's
notification arrives, or when staff record money paid by hand.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from core import (clock, customer_requests, documents, ledger, login_throttle, payments, portal_accounts, settings,
                  usage_summary)
from core.errors import PluginError, ValidationError
from core.models import Invoice, PaymentAttempt
from core.web import portal_auth
from core.web.auth import _safe_next, public
from core.web.charts import Series, bar_chart
from core.web.pay import offered
from core.web.portal_auth import customer_required

bp = Blueprint("portal", __name__, url_prefix="/portal")
bp.before_app_request(portal_auth.load_customer)

LOGIN_ERROR = "Wrong e-mail, phone number or password."
RESET_SENT = ("If an account has that e-mail address or phone number, we have sent a link to set a new "
              "password to its e-mail address. The link works for an hour.")

STATE_TEXT = {
    "active": ("ok", "Your service is running normally."),
    "reminded": ("warn", "Your account is overdue. Please pay what is due to keep your service running."),
    "throttled": ("bad", "Your speed is reduced because the account is overdue. Pay what is due to restore "
                         "full speed."),
    "suspended": ("bad", "Your service is suspended because the account is overdue. Pay what is due to restore it."),
    "terminated": ("bad", "Your service has ended. Please contact us if you would like it back."),
}


def _page(template: str, status: int = 200, **context):
    return render_template(f"portal/{template}", **context), status


def _public_base() -> str:
    return (settings.get_or("web.base_url", "", None) or "").rstrip("/")


def _due(invoice: Invoice) -> int:
    return max(invoice.total_minor - invoice.settled_minor, 0) if invoice.status == "issued" else 0


def _open_invoices(customer) -> list[Invoice]:
    rows = (Invoice.select().where((Invoice.customer == customer.id) & (Invoice.status == "issued")
                                   & (Invoice.total_minor > Invoice.settled_minor))
            .order_by(Invoice.due_date, Invoice.id))
    return list(rows)


def _own_invoice(invoice_id: int) -> Invoice:
    """The signed-in customer's issued (or paid, or void) invoice; 404 for any other id."""
    invoice = Invoice.get_or_none((Invoice.id == invoice_id) & (Invoice.customer == g.customer.id)
                                  & (Invoice.status != "draft"))
    if invoice is None:
        abort(404, "There is no such invoice on your account.")
    return invoice


def _next_page(target: str | None) -> str:
    """Where to go after signing in: ``target`` if it is a portal page of this site, else home."""
    if target and target.startswith("/portal/") and _safe_next(target) == target:
        return target
    return url_for("portal.home")


# --- signing in ------------------------------------------------------------------------

@bp.route("/login", methods=("GET", "POST"))
@public
def login():
    """Sign in with the e-mail or phone on the account and the portal password."""
    if request.method == "GET":
        if g.customer is not None:
            return redirect(url_for("portal.home"))
        return _page("login.html", identifier="", notice=request.args.get("notice"))
    identifier = request.form.get("identifier", "").strip()[:254]
    key = portal_accounts.throttle_key(identifier)
    try:
        login_throttle.check("portal", key, request.remote_addr)
    except login_throttle.TooManyAttempts as exc:
        html, _ = _page("login.html", identifier=identifier, error=str(exc))
        return html, 429, {"Retry-After": str(exc.retry_after)}
    customer = portal_accounts.authenticate(identifier, request.form.get("password", ""))
    if customer is None:
        login_throttle.failed("portal", key, request.remote_addr)
        return _page("login.html", 400, identifier=identifier, error=LOGIN_ERROR)
    login_throttle.succeeded("portal", key)
    portal_auth.sign_in(customer, request.remote_addr, request.user_agent.string)
    return redirect(_next_page(request.args.get("next")))


@bp.route("/logout", methods=("POST",))
@public
def logout():
    """Sign out of the portal (a POST with the form token, so a link cannot do it)."""
    portal_auth.sign_out()
    return redirect(url_for("portal.login"))


@bp.route("/forgot", methods=("GET", "POST"))
@public
def forgot():
    """Ask for a link to set a new password; the answer is the same for any address."""
    base = _public_base()
    if request.method == "GET":
        return _page("forgot.html", available=bool(base))
    identifier = request.form.get("identifier", "").strip()[:254]
    if not identifier:
        return _page("forgot.html", 400, available=bool(base), error="Enter your e-mail address or phone number.")
    if base:
        portal_accounts.request_reset(identifier, base, request.remote_addr)
    return _page("forgot.html", available=bool(base), sent=True, message=RESET_SENT)


@bp.route("/reset/<token>", methods=("GET", "POST"))
@public
def reset(token: str):
    """Set a new password through a link from the e-mail; signs the customer in."""
    if portal_accounts.valid_reset(token) is None:
        return _page("reset.html", 400, expired=True)
    if request.method == "GET":
        return _page("reset.html", expired=False)
    password = request.form.get("password", "")
    if password != request.form.get("confirm", ""):
        return _page("reset.html", 400, expired=False, error="The two passwords are not the same.")
    try:
        customer = portal_accounts.complete_reset(token, password)
    except ValidationError as exc:
        return _page("reset.html", 400, expired=portal_accounts.valid_reset(token) is None, error=str(exc))
    portal_auth.sign_in(customer, request.remote_addr, request.user_agent.string)
    return redirect(url_for("portal.home"))


# --- the account -----------------------------------------------------------------------

@bp.route("/")
@customer_required
def home():
    """Balance, what is due and by when, the account's state in plain words."""
    customer = g.customer
    today = clock.today()
    invoices = [{"invoice": inv, "due": _due(inv), "overdue": inv.due_date is not None and inv.due_date < today}
                for inv in _open_invoices(customer)]
    tone, state_text = STATE_TEXT.get(customer.state, ("ok", ""))
    return _page("home.html", customer=customer, balance=ledger.balance(customer), invoices=invoices,
                 tone=tone, state_text=state_text, usage=_usage(customer, charts=False))


@bp.route("/invoices")
@customer_required
def invoices():
    """The customer's invoices, newest first, each with its PDF."""
    rows = (Invoice.select().where((Invoice.customer == g.customer.id) & (Invoice.status != "draft"))
            .order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(200))
    today = clock.today()
    items = [{"invoice": inv, "due": _due(inv), "overdue": _due(inv) > 0 and inv.due_date is not None
              and inv.due_date < today} for inv in rows]
    return _page("invoices.html", items=items)


@bp.route("/invoices/<int:invoice_id>.pdf")
@customer_required
def invoice_pdf(invoice_id: int):
    """One of the customer's own invoices as a PDF."""
    invoice = _own_invoice(invoice_id)
    response = Response(documents.invoice_pdf(invoice), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{documents.invoice_filename(invoice)}"'
    return response


# --- paying ------------------------------------------------------------------------------

def _attempt(invoice: Invoice):
    token = request.args.get("attempt", "")[:40]
    if not token:
        return None
    return PaymentAttempt.get_or_none((PaymentAttempt.token == token) & (PaymentAttempt.invoice == invoice.id)
                                      & (PaymentAttempt.customer == g.customer.id))


def _pay_page(invoice: Invoice, *, error=None, status=200, form=None):
    attempt = _attempt(invoice)
    return _page("pay.html", status, invoice=invoice, customer=g.customer, due=_due(invoice),
                 gateways=offered(invoice) if _due(invoice) else [], attempt=attempt, error=error,
                 form=form or {}, poll=attempt is not None and attempt.status == "started")


@bp.route("/invoices/<int:invoice_id>/pay")
@customer_required
def pay(invoice_id: int):
    """How to pay one invoice: each enabled gateway, and paying by hand."""
    return _pay_page(_own_invoice(invoice_id))


@bp.route("/invoices/<int:invoice_id>/status")
@customer_required
def pay_status(invoice_id: int):
    """The invoice's payment state, polled by htmx while a payment is being confirmed."""
    invoice = _own_invoice(invoice_id)
    return render_template("pay/_status.html", invoice=invoice, due=_due(invoice), poll=request.args.get("poll") == "1",
                           status_url=url_for("portal.pay_status", invoice_id=invoice.id))


@bp.route("/invoices/<int:invoice_id>/pay/<gateway>", methods=("POST",))
@customer_required
def pay_start(invoice_id: int, gateway: str):
    """Start paying what is due on the invoice through ``gateway``."""
    invoice = _own_invoice(invoice_id)
    form = {"phone": request.form.get("phone", "").strip()[:40], "email": request.form.get("email", "").strip()[:254]}
    if gateway not in {info.name for info in offered(invoice)}:
        return _pay_page(invoice, error="That way of paying is not available for this invoice.", status=400, form=form)
    base = _public_base() or request.host_url.rstrip("/")
    back = base + url_for("portal.pay", invoice_id=invoice.id) + "?attempt={attempt}"
    try:
        attempt, started = payments.start_payment(
            gateway, customer=g.customer, invoice=invoice, phone=form["phone"] or None, email=form["email"] or None,
            return_url=back, base_url=base)
    except ValidationError as exc:
        return _pay_page(invoice, error=str(exc), status=400, form=form)
    except PluginError:
        return _pay_page(invoice, error="The payment service did not answer. Please try again in a moment.",
                         status=502, form=form)
    if started.redirect_url:
        return redirect(started.redirect_url, code=303)
    return redirect(url_for("portal.pay", invoice_id=invoice.id, attempt=attempt.token), code=303)


# --- usage -------------------------------------------------------------------------------

def _usage(customer, charts: bool = True) -> list[dict]:
    out = []
    for service in customer_requests.active_services(customer):
        period = usage_summary.this_period(service)
        row = {"service": service, "plan": service.plan, "period": period,
               "used": usage_summary.human_bytes(period.used),
               "cap": usage_summary.human_bytes(period.cap_bytes) if period.cap_bytes else None,
               "percent": period.percent_of_cap, "last_day": period.end - dt.timedelta(days=1)}
        if charts:
            row["chart"] = bar_chart(
                [d.strftime("%-d %b") for d, _i, _o in period.daily],
                [Series("Data used", [i + o for _d, i, o in period.daily])],
                title=f"Data used each day from {period.start.strftime('%-d %B')}",
                fmt=lambda v: usage_summary.human_bytes(int(v)), every=7)
        out.append(row)
    return out


@bp.route("/usage")
@customer_required
def usage():
    """Data used this period against the plan's quota, with a chart of each day."""
    return _page("usage.html", services=_usage(g.customer))


# --- requests ----------------------------------------------------------------------------

def _requests_page(status: int = 200, *, error=None, form=None, message=None):
    services = customer_requests.active_services(g.customer)
    choices = [{"service": s, "plans": customer_requests.plan_choices(s)} for s in services]
    return _page("requests.html", status, requests=customer_requests.for_customer(g.customer),
                 choices=[c for c in choices if c["plans"]], error=error, form=form or {}, message=message)


@bp.route("/requests")
@customer_required
def requests():
    """The customer's messages and plan-change requests, with the operator's replies."""
    return _requests_page(message=request.args.get("sent") and "Thank you. We will answer here soon.")


@bp.route("/requests/message", methods=("POST",))
@customer_required
def send_message():
    """Send a message to the operator."""
    try:
        customer_requests.send_message(g.customer, request.form.get("body"))
    except ValidationError as exc:
        return _requests_page(400, error=str(exc), form=request.form)
    return redirect(url_for("portal.requests", sent=1), code=303)


@bp.route("/requests/plan", methods=("POST",))
@customer_required
def ask_plan_change():
    """Ask for another plan for one of the customer's services."""
    try:
        customer_requests.ask_plan_change(g.customer, request.form.get("service"), request.form.get("plan"),
                                          request.form.get("note"))
    except ValidationError as exc:
        return _requests_page(400, error=str(exc), form=request.form)
    return redirect(url_for("portal.requests", sent=1), code=303)
