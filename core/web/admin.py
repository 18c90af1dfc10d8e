"""The staff console shell: dashboard, customers (search and add) and plans."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from htmx_flask import request as htmx_request

from core import catalog, customers
from core.errors import ValidationError
from core.models import ACCOUNT_STATES, Customer, Plan
from core.web.auth import login_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@login_required
def dashboard():
    counts = {state: 0 for state in ACCOUNT_STATES}
    for row in Customer.select(Customer.state).tuples():
        counts[row[0]] += 1
    return render_template("admin/dashboard.html", counts=counts,
                           plan_count=Plan.select().where(Plan.active == True).count())  # noqa: E712


@bp.route("/customers")
@login_required
def customer_list():
    query = request.args.get("q", "").strip()[:100]
    rows = customers.search(query, limit=100)
    if htmx_request.htmx:
        return render_template("admin/_customer_rows.html", customers=rows)
    return render_template("admin/customers.html", customers=rows, q=query)


FORM_FIELDS = ("name", "email", "phone", "currency", "terms_days", "address")


@bp.route("/customers/new", methods=("GET", "POST"))
@login_required
def customer_new():
    form = {k: request.form.get(k, "") for k in FORM_FIELDS}
    error = None
    if request.method == "POST":
        try:
            customers.add(**{k: (v or None) for k, v in form.items() if k != "terms_days"},
                          terms_days=form["terms_days"] or 14)
        except ValidationError as exc:
            error = exc
        else:
            return redirect(url_for("admin.customer_list"))
    else:
        form["currency"] = form["currency"] or "USD"
    status = 400 if error else 200
    return render_template("admin/customer_new.html", form=form, error=error), status


@bp.route("/plans")
@login_required
def plan_list():
    return render_template("admin/plans.html", plans=catalog.listing())
