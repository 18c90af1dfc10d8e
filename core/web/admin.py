"""The staff console shell: dashboard, customers (search and add) and plans."""

from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from htmx_flask import request as htmx_request

from core import catalog, customers, settings
from core.errors import ValidationError
from core.models import ACCOUNT_STATES, Customer, Plan
from core.web.auth import login_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@login_required
def dashboard():
    """Counts of accounts by state and of active plans."""
    counts = {state: 0 for state in ACCOUNT_STATES}
    for row in Customer.select(Customer.state).tuples():
        counts[row[0]] += 1
    return render_template("admin/dashboard.html", counts=counts,
                           plan_count=Plan.select().where(Plan.active == True).count())  # noqa: E712


@bp.route("/customers")
@login_required
def customer_list():
    """Customers by name; an htmx request for a search gets only the table rows."""
    query = request.args.get("q", "").strip()[:100]
    rows = customers.search(query, limit=100)
    if htmx_request.htmx:
        response = make_response(render_template("admin/_customer_rows.html", customers=rows))
    else:
        response = make_response(render_template("admin/customers.html", customers=rows, q=query))
    response.vary.add("HX-Request")  # the same URL answers with a fragment or a page
    return response


FORM_FIELDS = ("name", "email", "phone", "currency", "terms_days", "address")


@bp.route("/customers/new", methods=("GET", "POST"))
@login_required
def customer_new():
    """The add-customer form; bad input is shown back with a 400 and nothing is saved."""
    form = {k: request.form.get(k, "") for k in FORM_FIELDS}
    error = None
    if request.method == "POST":
        try:
            customers.add(**{k: (v or None) for k, v in form.items()})
        except ValidationError as exc:
            error = exc
        else:
            return redirect(url_for("admin.customer_list"))
    else:
        form["currency"] = settings.get_or("billing.currency", "USD")
        form["terms_days"] = settings.get_or("billing.terms_days", 14)
    status = 400 if error else 200
    return render_template("admin/customer_new.html", form=form, error=error), status


@bp.route("/plans")
@login_required
def plan_list():
    """The newest version of every active plan."""
    return render_template("admin/plans.html", plans=catalog.listing())
