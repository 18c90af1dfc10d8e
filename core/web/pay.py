"""The public pay page of an invoice: ``/pay/<token>``, for subscribers without an account.

It shows what the invoice is for and what is due, with a button per gateway that is set
up, takes the invoice's currency and is enabled for pay links. A button starts the
payment (a redirect to the gateway's page, or a push to the payer's phone); the invoice
is marked paid only when the gateway's notification arrives.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from core import documents, gateways, paylinks, payments, settings
from core.web.auth import public
from core.errors import PluginError, ValidationError
from core.models import Invoice, PaymentAttempt

bp = Blueprint("pay", __name__, url_prefix="/pay")


def offered(invoice: Invoice) -> list:
    """The gateways the pay page offers for ``invoice``, in label order."""
    enabled = settings.get_or("payments.pay_link_gateways", [], None) or []
    found = []
    for info in gateways.available().values():
        if not (info.interactive and info.configured):
            continue
        if enabled and info.name not in enabled:
            continue
        if info.currencies and invoice.currency not in info.currencies:
            continue
        found.append(info)
    return sorted(found, key=lambda i: i.label.lower())


def _due(invoice: Invoice) -> int:
    return max(invoice.total_minor - invoice.settled_minor, 0) if invoice.status == "issued" else 0


def _page(token: str, invoice: Invoice, *, error=None, message=None, status=200, form=None):
    attempt = None
    attempt_token = request.args.get("attempt", "")
    if attempt_token:
        attempt = PaymentAttempt.get_or_none(PaymentAttempt.token == attempt_token,
                                             PaymentAttempt.invoice == invoice.id)
    html = render_template("pay/pay.html", token=token, invoice=invoice, customer=invoice.customer,
                           due=_due(invoice), gateways=offered(invoice), error=error, message=message,
                           attempt=attempt, form=form or {})
    response = Response(html, status=status)
    response.headers["Cache-Control"] = "no-store"
    # The token must not leak to gateways' pages; our own form posts keep their referrer,
    # which the CSRF check requires over HTTPS.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.route("/<token>")
@public
def page(token: str):
    """What is due on the invoice, and how to pay it."""
    return _page(token, paylinks.invoice_for(token))


@bp.route("/<token>/status")
@public
def status(token: str):
    """The payment status part of the page, polled by htmx while a payment is confirmed."""
    invoice = paylinks.invoice_for(token)
    html = render_template("pay/_status.html", invoice=invoice, due=_due(invoice), token=token)
    response = Response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<token>/invoice.pdf")
@public
def invoice_pdf(token: str):
    """The invoice itself, as the subscriber's copy."""
    invoice = paylinks.invoice_for(token)
    response = Response(documents.invoice_pdf(invoice), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{documents.invoice_filename(invoice)}"'
    return response


@bp.route("/<token>/<gateway>", methods=("POST",))
@public
def start(token: str, gateway: str):
    """Start paying what is due through ``gateway``."""
    invoice = paylinks.invoice_for(token)
    form = {"phone": request.form.get("phone", "").strip()[:40], "email": request.form.get("email", "").strip()[:254]}
    if gateway not in {info.name for info in offered(invoice)}:
        return _page(token, invoice, error="That way of paying is not available for this invoice.", status=400,
                     form=form)
    base = (settings.get_or("web.base_url", "", None) or request.host_url).rstrip("/")
    back = base + url_for("pay.page", token=token) + "?attempt={attempt}"
    try:
        attempt, started = payments.start_payment(
            gateway, customer=invoice.customer, invoice=invoice, phone=form["phone"] or None,
            email=form["email"] or None, return_url=back, base_url=base)
    except ValidationError as exc:
        return _page(token, invoice, error=str(exc), status=400, form=form)
    except PluginError:
        return _page(token, invoice, error="The payment service did not answer. Please try again in a moment.",
                     status=502, form=form)
    if started.redirect_url:
        return redirect(started.redirect_url, code=303)
    return redirect(url_for("pay.page", token=token, attempt=attempt.token), code=303)
