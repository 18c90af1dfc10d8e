"""Sends the queued Disconnect and CoA requests to the NAS that holds each live session.

The live sessions are the open ``radacct`` rows of the action's user (no stop time);
each names its NAS, which must be a ``radius`` router here (its secret and CoA port).
A user with no open session needs nothing. An ACK, or a NAK saying the session is
already gone (Error-Cause 503), completes an action; any other NAK, silence or an
unknown NAS keeps it pending, retried after 5 s, doubling up to 10 minutes, and shown
by ``wispbill radius actions``. After a day of failures it is marked failed: the
tables are right regardless, and the subscriber gets them at the next login.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from core.clock import utcnow
from core.db import database
from core.models import Router
from plugins.radius import client
from plugins.radius import settings as radius_settings

log = logging.getLogger(__name__)

FIRST_RETRY = dt.timedelta(seconds=5)
LONGEST_RETRY = dt.timedelta(minutes=10)
GIVE_UP_AFTER = dt.timedelta(days=1)
SESSION_GONE = 503  # Error-Cause: Session-Context-Not-Found
_WORKERS = 16


def retry_delay(attempts: int) -> dt.timedelta:
    """The pause after ``attempts`` failures in a row."""
    return min(FIRST_RETRY * (2 ** min(max(attempts, 1) - 1, 16)), LONGEST_RETRY)


@dataclass
class SendResult:
    """What one pass did: actions completed, retried later, and given up."""

    done: list[int] = field(default_factory=list)
    retry: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def _as_time(value):
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def nas_by_address() -> dict[str, radius_settings.Nas]:
    """The active ``radius`` routers usable as NAS, by address (a misconfigured one is logged and left out)."""
    found = {}
    for router in Router.select().where(Router.kind == "radius", Router.active):
        try:
            nas = radius_settings.nas_of(router)
        except ValueError as exc:
            log.warning("%s", exc)
            continue
        found[nas.address] = nas
    return found


def _open_sessions(users) -> dict[str, list[tuple]]:
    p = database.obj.param
    found: dict[str, list[tuple]] = {}
    users = sorted(set(users))
    for first in range(0, len(users), 900):
        chunk = users[first:first + 900]
        for user, session_id, nas, address in database.obj.execute_sql(
                "SELECT username, acctsessionid, nasipaddress, framedipaddress FROM radacct "
                f"WHERE acctstoptime IS NULL AND username IN ({', '.join([p] * len(chunk))}) ORDER BY radacctid",
                tuple(chunk)).fetchall():
            found.setdefault(user, []).append((session_id, nas, address))
    return found


def _send_one(action: str, user: str, attributes: dict, sessions: list[tuple], nases: dict, timeout: float):
    """Send to every open session of ``user``; returns (ok, text)."""
    if not sessions:
        return True, "no open session"
    notes, ok = [], True
    for session_id, nas_address, framed in sessions:
        nas = nases.get(nas_address)
        if nas is None:
            ok = False
            notes.append(f"session {session_id}: NAS {nas_address} is not a RADIUS router here")
            continue
        packet = {"User-Name": user, "Acct-Session-Id": session_id, "NAS-IP-Address": nas.address, **attributes}
        if framed:
            packet["Framed-IP-Address"] = framed
        try:
            reply = client.send(action, nas.address, nas.coa_port, nas.secret, packet, timeout=timeout)
        except ValueError as exc:
            ok = False
            notes.append(f"session {session_id} on {nas.name}: {exc}")
            continue
        if reply.outcome == "ack":
            notes.append(f"{nas.name}: ACK")
        elif reply.outcome == "nak" and reply.error_cause == SESSION_GONE:
            notes.append(f"{nas.name}: session already gone")
        else:
            ok = False
            notes.append(f"{nas.name}: {reply.outcome.upper()} {reply.detail}".strip())
    return ok, "; ".join(notes)


def send_due(now: dt.datetime | None = None, limit: int = 500) -> SendResult:
    """Send the actions that are due; record each outcome. Runs outside any transaction."""
    started = utcnow()
    now = now or started
    p = database.obj.param
    due = database.obj.execute_sql(
        "SELECT id, username, action, attributes, attempts, created_at FROM radius_session_action "
        f"WHERE status = 'pending' AND next_attempt_at <= {p} ORDER BY id LIMIT {int(limit)}", (now,)).fetchall()
    result = SendResult()
    if not due:
        return result
    sessions = _open_sessions(row[1] for row in due)
    nases = nas_by_address()
    timeout = radius_settings.timeout()
    with ThreadPoolExecutor(max_workers=min(_WORKERS, len(due))) as pool:
        outcomes = list(pool.map(lambda row: _send_one(row[2], row[1], json.loads(row[3] or "{}"),
                                                       sessions.get(row[1], []), nases, timeout), due))
    finished = now + (utcnow() - started)
    done, retry, failed = [], [], []
    for (aid, _user, _action, _attrs, attempts, created), (ok, text) in zip(due, outcomes):
        if ok:
            done.append((text[:2000], finished, aid))
            result.done.append(aid)
        elif finished - _as_time(created) > GIVE_UP_AFTER:
            failed.append((attempts + 1, text[:2000], finished, aid))
            result.failed[aid] = text
        else:
            retry.append((attempts + 1, finished + retry_delay(attempts + 1), text[:2000], finished, aid))
            result.retry[aid] = text
    with database.atomic():
        cursor = database.obj.cursor()
        # "AND status = 'pending'": an action superseded meanwhile stays superseded.
        if done:
            cursor.executemany(f"UPDATE radius_session_action SET status = 'done', result = {p}, last_error = NULL, "
                               f"next_attempt_at = NULL, updated_at = {p} WHERE id = {p} AND status = 'pending'", done)
        if retry:
            cursor.executemany(f"UPDATE radius_session_action SET attempts = {p}, next_attempt_at = {p}, "
                               f"last_error = {p}, updated_at = {p} WHERE id = {p} AND status = 'pending'", retry)
        if failed:
            cursor.executemany(f"UPDATE radius_session_action SET status = 'failed', attempts = {p}, "
                               f"next_attempt_at = NULL, last_error = {p}, updated_at = {p} "
                               f"WHERE id = {p} AND status = 'pending'", failed)
    if result.retry or result.failed:
        log.warning("RADIUS sessions: %d action(s) to retry, %d given up", len(result.retry), len(result.failed))
    return result
