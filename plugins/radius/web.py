"""The RADIUS plugin's console page: the queue of Disconnect and CoA requests, with "send now"."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from core import audit
from core.clock import utcnow
from core.db import database
from core.errors import NotFound
from core.web.auth import staff
from plugins.radius import actions, sessions

bp = Blueprint("radius", __name__, url_prefix="/plugins/radius", template_folder="templates")

WAITING = ("pending", "failed")


@bp.route("/actions")
@staff("view")
def actions_page():
    """Pending and failed requests with their last error, then the most recent others."""
    waiting = [a for status in WAITING for a in actions.listing(status, limit=500)]
    recent = [a for a in actions.listing(None, limit=50) if a["status"] not in WAITING]
    return render_template("radius/actions.html", waiting=waiting, recent=recent, counts=actions.counts())


def send_now(action_id: int) -> sessions.SendResult:
    """Make a pending or failed action due at once (a failed one is queued again) and send what is due."""
    now = utcnow()
    p = database.obj.param
    with database.atomic():
        row = database.obj.execute_sql(
            f"SELECT status, username, action FROM radius_session_action WHERE id = {p}", (action_id,)).fetchone()
        if row is None or row[0] not in WAITING:
            raise NotFound(f"no pending or failed RADIUS action {action_id}")
        # created_at restarts too: a failed action queued again gets a new day of retries.
        database.obj.execute_sql(
            f"UPDATE radius_session_action SET status = 'pending', next_attempt_at = {p}, "
            f"created_at = CASE WHEN status = 'failed' THEN {p} ELSE created_at END, updated_at = {p} WHERE id = {p}",
            (now, now, now, action_id))
        audit.record("radius.action.send", "radius_session_action", action_id, {"status": row[0]},
                     {"status": "pending", "username": row[1], "action": row[2]})
    return sessions.send_due(now=now)


@bp.route("/actions/<int:action_id>/send", methods=("POST",))
@staff("routers.manage")
def send(action_id: int):
    """Send one queued request now (with whatever else is due) and say how it went."""
    result = send_now(action_id)
    if action_id in result.done:
        flash(f"Request {action_id} sent.")
    else:
        flash(f"Request {action_id} not completed: "
              f"{result.retry.get(action_id) or result.failed.get(action_id) or 'no answer'}")
    return redirect(url_for("radius.actions_page"), code=303)
