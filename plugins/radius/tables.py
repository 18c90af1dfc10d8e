"""Reading and writing subscribers in FreeRADIUS's tables, for one NAS router at a time.

``radius_subscriber`` remembers, per service key, what was last written (the state and
what the tables cannot show, such as the access kind); the rows themselves are read
back from ``radcheck``, ``radreply`` and ``radusergroup`` and compared with what that
state needs, so a row edited or deleted by hand shows up as drift and is rewritten by
the next reconcile.
"""

from __future__ import annotations

from collections import defaultdict

from core.bulk import insert_rows
from core.clock import utcnow
from core.db import database
from core.hooktypes import ApplyResult, Change, SubscriberState
from plugins.radius import actions
from plugins.radius.mapping import GROUP_MARK, MappingError, Rows, group_rows, parse_stored_rate, rows_for, \
    stored_rate
from plugins.radius.settings import Policy, nas_of

_CHUNK = 900
_SUBSCRIBER_COLUMNS = ("service_key", "router_id", "radius_user", "state", "access", "username", "mac", "address",
                       "rate")


def _rows(sql: str, params=()) -> list:
    return list(database.obj.execute_sql(sql, tuple(params)).fetchall())


def _chunks(values):
    values = list(values)
    for first in range(0, len(values), _CHUNK):
        yield values[first:first + _CHUNK]


def _marks(n: int) -> str:
    return ", ".join([database.obj.param] * n)


def _select_in(sql: str, column: str, values) -> list:
    """``sql`` (ending in WHERE or AND) with ``column IN (...)``, run in chunks; all rows if ``values`` is None."""
    if values is None:
        return _rows(sql.rsplit(" ", 1)[0] if sql.endswith(("WHERE", "AND")) else sql)
    found = []
    for chunk in _chunks(values):
        found += _rows(f"{sql} {column} IN ({_marks(len(chunk))})", chunk)
    return found


def subscribers(keys=None, router_id: int | None = None) -> dict[str, tuple]:
    """``radius_subscriber`` rows by service key: of ``keys``, or of one router, or all."""
    base = f"SELECT {', '.join(_SUBSCRIBER_COLUMNS)} FROM radius_subscriber"
    if router_id is not None:
        return {r[0]: r for r in _rows(base + f" WHERE router_id = {database.obj.param}", (router_id,))}
    return {r[0]: r for r in _select_in(base + " WHERE", "service_key", keys)}


def _held_rows(keys=None) -> dict[str, dict]:
    """The rows in the tables marked with each key: checks, replies, groups and user names."""
    held: dict[str, dict] = defaultdict(lambda: {"check": [], "reply": [], "groups": [], "users": set()})
    for table, part in (("radcheck", "check"), ("radreply", "reply")):
        for key, user, attribute, op, value in _select_in(
                f"SELECT wispbill, username, attribute, op, value FROM {table} "
                f"WHERE wispbill IS NOT NULL AND wispbill <> '{GROUP_MARK}' AND", "wispbill", keys):
            held[key][part].append((attribute, op, value))
            held[key]["users"].add(user)
    for key, user, group in _select_in("SELECT wispbill, username, groupname FROM radusergroup "
                                       "WHERE wispbill IS NOT NULL AND", "wispbill", keys):
        held[key]["groups"].append(group)
        held[key]["users"].add(user)
    return held


def _matches(expected: Rows | None, held: dict | None) -> bool:
    if expected is None:
        return held is None
    if held is None:
        return False
    return (tuple(sorted(held["check"])) == expected.check and tuple(sorted(held["reply"])) == expected.reply
            and held["groups"] == [expected.group] and held["users"] == {expected.user})


def _state_of(row: tuple, held: dict | None) -> SubscriberState:
    key, _router, _user, state, access, username, mac, address, rate = row
    password = None
    if held is not None:
        password = next((v for a, _op, v in held["check"] if a == "Cleartext-Password"), None)
    return SubscriberState(key=key, state=state, address=address, rate=parse_stored_rate(rate),
                           extra={"access": access, "username": username, "password": password, "mac": mac})


def read_state(router, policy: Policy) -> list[SubscriberState]:
    """Every subscriber the tables hold for ``router``; one whose rows drifted reads as different."""
    mine = subscribers(router_id=router.id)
    held = _held_rows()
    known = set(subscribers())
    found = []
    for key, row in mine.items():
        sub = _state_of(row, held.get(key))
        try:
            expected = rows_for(sub, policy)
        except MappingError:
            expected = None
        if not _matches(expected, held.get(key)):
            sub = SubscriberState(sub.key, sub.state, sub.address, sub.rate, {**sub.extra, "drift": True})
        found.append(sub)
    # Marked rows that no subscriber record explains (restored from an old backup, say).
    found += [SubscriberState(key, "unknown") for key in held if key not in known]
    return found


def sync_groups(policy: Policy) -> None:
    """Make the group replies the plugin keeps match the settings."""
    p = database.obj.param
    for group, wanted in group_rows(policy).items():
        have = tuple(sorted((a, o, v) for a, o, v in _rows(
            f"SELECT attribute, op, value FROM radgroupreply WHERE groupname = {p} AND wispbill = {p}",
            (group, GROUP_MARK))))
        if have == wanted:
            continue
        database.obj.execute_sql(f"DELETE FROM radgroupreply WHERE groupname = {p} AND wispbill = {p}",
                                 (group, GROUP_MARK))
        insert_rows(database.obj, "radgroupreply", ("groupname", "attribute", "op", "value", "wispbill"),
                    [(group, a, o, v, GROUP_MARK) for a, o, v in wanted])


def sync_nas(router) -> None:
    """Keep the ``nas`` row FreeRADIUS reads its client from in step with the router row."""
    nas = nas_of(router)
    p = database.obj.param
    mark = f"router-{router.id}"
    wanted = (nas.address, router.name[:32], "other", nas.coa_port, nas.secret, f"wispbill router {router.name}")
    have = _rows(f"SELECT nasname, shortname, type, ports, secret, description FROM nas WHERE wispbill = {p}", (mark,))
    if have and tuple(have[0]) == wanted and len(have) == 1:
        return
    database.obj.execute_sql(f"DELETE FROM nas WHERE wispbill = {p}", (mark,))
    insert_rows(database.obj, "nas", ("nasname", "shortname", "type", "ports", "secret", "description", "wispbill"),
                [(*wanted, mark)])


def drop_nas(router_ids_kept) -> int:
    """Remove ``nas`` rows of routers that are gone or no longer RADIUS; returns how many."""
    kept = {f"router-{i}" for i in router_ids_kept}
    stale = [m for (m,) in _rows("SELECT wispbill FROM nas WHERE wispbill LIKE 'router-%'") if m not in kept]
    for chunk in _chunks(stale):
        database.obj.execute_sql(f"DELETE FROM nas WHERE wispbill IN ({_marks(len(chunk))})", chunk)
    return len(stale)


def _delete(keys) -> None:
    for chunk in _chunks(keys):
        for table in ("radcheck", "radreply", "radusergroup"):
            database.obj.execute_sql(f"DELETE FROM {table} WHERE wispbill IN ({_marks(len(chunk))})", chunk)
        database.obj.execute_sql(f"DELETE FROM radius_subscriber WHERE service_key IN ({_marks(len(chunk))})", chunk)


def apply(router, changes: list[Change], policy: Policy) -> ApplyResult:
    """Write ``changes`` for ``router`` in one transaction (a savepoint inside the caller's)."""
    latest: dict[str, Change] = {}
    for change in changes:
        latest[change.subscriber.key] = change
    failed: dict[str, str] = {}
    planned: dict[str, Rows | None] = {}
    for key, change in latest.items():
        if change.action == "remove":
            continue
        try:
            planned[key] = rows_for(change.subscriber, policy)
        except MappingError as exc:
            failed[key] = str(exc)
    with database.atomic():
        sync_nas(router)
        sync_groups(policy)
        users: dict[str, str] = {}
        for key, rows in planned.items():
            if rows is None:
                continue
            if rows.user in users:
                failed[key] = f"RADIUS user {rows.user!r} is also {users[rows.user]}'s"
            else:
                users[rows.user] = key
        for holder, user in _select_in("SELECT service_key, radius_user FROM radius_subscriber WHERE",
                                       "radius_user", list(users)):
            key = users[user]
            if holder != key and holder not in latest:
                failed[key] = f"RADIUS user {user!r} is already service {holder}'s"
        done = [k for k in latest if k not in failed]
        before = subscribers(done)
        _delete(done)
        checks, replies, groups, records = [], [], [], []
        now = utcnow()
        for key in done:
            change = latest[key]
            if change.action == "remove":
                continue
            sub, rows = change.subscriber, planned.get(key)
            if rows is not None:
                checks += [(rows.user, a, o, v, key) for a, o, v in rows.check]
                replies += [(rows.user, a, o, v, key) for a, o, v in rows.reply]
                groups.append((rows.user, rows.group, 1, key))
            records.append((key, router.id, rows.user if rows else None, sub.state, sub.extra.get("access"),
                            sub.extra.get("username"), sub.extra.get("mac"), sub.address, stored_rate(sub.rate)))
        cols = ("username", "attribute", "op", "value", "wispbill")
        insert_rows(database.obj, "radcheck", cols, checks)
        insert_rows(database.obj, "radreply", cols, replies)
        insert_rows(database.obj, "radusergroup", ("username", "groupname", "priority", "wispbill"), groups)
        insert_rows(database.obj, "radius_subscriber", _SUBSCRIBER_COLUMNS, records)
        after = {r[0]: r for r in records}
        actions.enqueue([(key, before.get(key), after.get(key)) for key in done], now)
    return ApplyResult(applied=tuple(done), failed=failed)
