"""Staff pages for what customers ask in the portal: messages and plan-change requests.

The list shows open requests first. Answering closes a request as done or declined with a
reply the customer reads in the portal; a plan-change request can also be carried out
from here, at the service's next renewal (which needs the plan-change permission too).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from core import customer_requests, permissions
from core.errors import ValidationError
from core.web.auth import can, staff

bp = Blueprint("requests", __name__, url_prefix="/admin/requests")

STATUSES = ("open", "done", "declined")


def _listing(status: int = 200, *, error=None, error_id=None, form=None):
    shown = request.args.get("status", "")
    rows = customer_requests.listing(status=shown if shown in STATUSES else None)
    return render_template("requests/listing.html", rows=rows, shown=shown, error=error, error_id=error_id,
                           form=form or {}), status


@bp.route("/")
@staff("view")
def listing():
    """Customers' messages and plan-change requests, the open ones first."""
    return _listing()


@bp.route("/<int:request_id>/close", methods=("POST",))
@staff("requests.handle")
def close(request_id: int):
    """Reply to a request and close it: done, declined, or (a plan change) carried out."""
    row = customer_requests.get(request_id)
    outcome = request.form.get("outcome", "")
    try:
        if outcome == "accept":
            if not can("services.change"):
                abort(403, f"Your role may not {permissions.PERMISSIONS['services.change']}.")
            _closed, result = customer_requests.accept(row, request.form.get("reply"))
            flash(f"Request #{row.id} carried out: the new plan starts on {result['effective'].isoformat()}.")
        else:
            customer_requests.close(row, outcome, request.form.get("reply"))
            flash(f"Request #{row.id} closed as {outcome}.")
    except ValidationError as exc:
        return _listing(400, error=str(exc), error_id=row.id, form=request.form)
    return redirect(url_for("requests.listing"), code=303)
