"""The queue of Disconnect and CoA requests that make live sessions follow the tables.

A change written to the tables only reaches a subscriber when they next authenticate.
When that is not soon enough, the change queues an action in the same transaction:

- suspension, restoration, removal, a new user name or a new address: a
  Disconnect-Request, so the subscriber reconnects and gets the new answer (CoA cannot
  change an address list or an address);
- a new rate (throttled, unthrottled, a plan change): a CoA-Request with the new
  ``Mikrotik-Rate-Limit``.

A newer disconnect for a user supersedes whatever is still pending for them; a newer
CoA supersedes a pending CoA and is not needed behind a pending disconnect.
:mod:`plugins.radius.sessions` sends them.
"""

from __future__ import annotations

import datetime as dt
import json

from core.bulk import insert_rows
from core.db import database
from plugins.radius.mapping import parse_stored_rate, rate_limit

_COLUMNS = ("service_key", "username", "action", "attributes", "reason", "status", "attempts", "next_attempt_at",
            "created_at", "updated_at")


def plan(before: tuple | None, after: tuple | None) -> tuple[str, dict, str] | None:
    """The action a change from ``before`` to ``after`` (``radius_subscriber`` rows) needs, if any.

    Returns ``(action, attributes, reason)``; the action goes to ``before``'s user.
    """
    if before is None or before[2] is None:
        return None  # no login before: no session to change
    old_state, old_address, old_rate = before[3], before[7], before[8]
    if after is None:
        return "disconnect", {}, "removed"
    new_state, new_address, new_rate = after[3], after[7], after[8]
    if after[2] != before[2]:
        return "disconnect", {}, "user name changed"
    if old_state != new_state and "suspended" in (old_state, new_state):
        return "disconnect", {}, "suspended" if new_state == "suspended" else "restored"
    if old_address != new_address:
        return "disconnect", {}, "address changed"
    if old_rate != new_rate and new_state != "suspended":
        limit = rate_limit(parse_stored_rate(new_rate))
        if limit is None:
            return "disconnect", {}, "rate limit removed"
        reason = new_state if old_state != new_state else "rate changed"
        return "coa", {"Mikrotik-Rate-Limit": limit}, reason
    return None


def enqueue(items, now: dt.datetime) -> int:
    """Queue the actions for ``(key, before, after)`` items; returns how many were queued."""
    wanted = []
    for key, before, after in items:
        found = plan(before, after)
        if found is not None:
            wanted.append((key, before[2], *found))
    if not wanted:
        return 0
    p = database.obj.param
    users = sorted({w[1] for w in wanted})
    pending: dict[str, list[tuple[int, str]]] = {}
    for first in range(0, len(users), 900):
        chunk = users[first:first + 900]
        for aid, user, action in database.obj.execute_sql(
                f"SELECT id, username, action FROM radius_session_action WHERE status = 'pending' "
                f"AND username IN ({', '.join([p] * len(chunk))})", tuple(chunk)).fetchall():
            pending.setdefault(user, []).append((aid, action))
    superseded, rows = [], []
    for key, user, action, attributes, reason in wanted:
        waiting = pending.get(user, [])
        if action == "coa" and any(a == "disconnect" for _id, a in waiting):
            continue  # the reconnect will pick up the new rate anyway
        superseded += [aid for aid, a in waiting if action == "disconnect" or a == "coa"]
        pending[user] = [(aid, a) for aid, a in waiting if not (action == "disconnect" or a == "coa")]
        pending[user].append((0, action))
        rows.append((key, user, action, json.dumps(attributes, sort_keys=True), reason, "pending", 0, now, now, now))
    for first in range(0, len(superseded), 900):
        chunk = [i for i in superseded[first:first + 900] if i]
        if chunk:
            database.obj.execute_sql(
                f"UPDATE radius_session_action SET status = 'superseded', updated_at = {p} "
                f"WHERE id IN ({', '.join([p] * len(chunk))})", (now, *chunk))
    insert_rows(database.obj, "radius_session_action", _COLUMNS, rows)
    return len(rows)


def listing(status: str | None = None, limit: int = 200) -> list[dict]:
    """Recent actions, newest first, as dicts (for ``wispbill radius actions`` and the console)."""
    p = database.obj.param
    where, params = ("", ()) if status is None else (f" WHERE status = {p}", (status,))
    rows = database.obj.execute_sql(
        "SELECT id, service_key, username, action, attributes, reason, status, attempts, next_attempt_at, "
        f"last_error, result, created_at, updated_at FROM radius_session_action{where} ORDER BY id DESC "
        f"LIMIT {int(limit)}", params).fetchall()
    names = ("id", "service_key", "username", "action", "attributes", "reason", "status", "attempts",
             "next_attempt_at", "last_error", "result", "created_at", "updated_at")
    out = []
    for row in rows:
        item = dict(zip(names, row))
        item["attributes"] = json.loads(item["attributes"] or "{}")
        out.append(item)
    return out


def counts() -> dict[str, int]:
    """How many actions are in each status."""
    return dict(database.obj.execute_sql(
        "SELECT status, COUNT(*) FROM radius_session_action GROUP BY status").fetchall())
