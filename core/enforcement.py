"""Keeps routers in step with billing: what each service's router should hold, pushed and reconciled.

Every service bound to a router has an ``enforcement`` row: the *desired* subscriber
state (derived from the account state, the service and its plan) and the state last
*applied* to the router. A row whose ``next_attempt_at`` is set is pending.

- :func:`refresh_customer` / :func:`refresh_services` recompute desired states inside the
  caller's transaction (a payment, a dunning step, a plan change) and mark changed rows
  pending.
- :func:`push_pending` applies pending rows through the routers' enforcer plugins right
  away; a router that fails keeps its rows pending, retried with growing pauses.
- :func:`reconcile` is the full, periodic pass: it reads what a router holds once,
  computes the difference with what it should hold, and applies only that. Run twice in a
  row, the second pass writes nothing. It also repairs a router that lost its state.

Only this module writes to routers; it never decides billing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from core import enforcers
from core.bulk import insert_rows, update_rows
from core.clock import today as _today
from core.clock import utcnow
from core.db import database
from core.errors import PluginError
from core.hooktypes import Change, SubscriberState
from core.models import Enforcement, Router, to_json

log = logging.getLogger(__name__)

KEY_PREFIX = "svc-"
FIRST_RETRY = dt.timedelta(seconds=5)
LONGEST_RETRY = dt.timedelta(minutes=10)
ACCESS_STATES = ("active", "throttled", "suspended")

_router_locks: dict[int, threading.Lock] = defaultdict(threading.Lock)


def service_key(service_id: int) -> str:
    """The key a service's subscriber has on its router: ``svc-<id>``."""
    return f"{KEY_PREFIX}{service_id}"


def retry_delay(attempts: int) -> dt.timedelta:
    """The pause before trying a router again after ``attempts`` failures in a row."""
    return min(FIRST_RETRY * (2 ** min(max(attempts, 1) - 1, 16)), LONGEST_RETRY)


# --- desired state -------------------------------------------------------------------

_DESIRED_SQL = """
SELECT s.id, s.router_id, s.status, s.billing_mode, s.end_date, s.paid_through, s.access, s.username,
       s.password, s.ip_address, s.mac_address, p.download_kbps, p.upload_kbps, c.state,
       COALESCE(cp.throttle_download_kbps, pp.throttle_download_kbps, dp.throttle_download_kbps, 512),
       COALESCE(cp.throttle_upload_kbps, pp.throttle_upload_kbps, dp.throttle_upload_kbps, 256)
FROM service s
JOIN plan p ON p.id = s.plan_id
JOIN customer c ON c.id = s.customer_id
LEFT JOIN dunning_policy cp ON cp.id = c.dunning_policy_id
LEFT JOIN dunning_policy pp ON pp.id = p.dunning_policy_id
LEFT JOIN dunning_policy dp ON dp.name = 'default'
"""


def _as_date(value):
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def access_state(status: str, mode: str, end_date, paid_through, account_state: str, day: dt.date) -> str:
    """What a service's subscriber may do on the network: active, throttled, suspended or removed.

    Removed: the account is terminated or the service is cancelled, pending or past its
    end. Suspended: staff suspended the service, a prepaid service is past what was paid,
    or the account is suspended. Throttled follows the account. Otherwise active.
    """
    end_date, paid_through = _as_date(end_date), _as_date(paid_through)
    if account_state == "terminated" or status in ("cancelled", "pending") or (end_date and end_date <= day):
        return "removed"
    if status == "suspended" or account_state == "suspended":
        return "suspended"
    if mode == "prepaid" and paid_through is not None and paid_through <= day:
        return "suspended"
    if account_state == "throttled":
        return "throttled"
    return "active"


def infer_access(access: str | None, username: str | None) -> str:
    """A service's access kind; without one set, PPPoE when it has a user name, else static."""
    return access or ("pppoe" if username else "static")


def _desired(row, day: dt.date) -> tuple[int | None, str, tuple]:
    """(router id, access state, the subscriber state as a plain tuple) for one row of ``_DESIRED_SQL``."""
    (sid, router_id, status, mode, end_date, paid_through, access, username, password, ip, mac,
     down, up, account_state, t_down, t_up) = row
    state = access_state(status, mode, end_date, paid_through, account_state, day)
    kind = infer_access(access, username)
    rate = (int(down), int(up)) if down and up else None
    if state == "throttled":
        rate = (min(t_down, rate[0]), min(t_up, rate[1])) if rate else (int(t_down), int(t_up))
    # A DHCP or static subscriber has no login: a router has nowhere to keep a password.
    secret = (password or None) if kind in ("pppoe", "hotspot") else None
    return router_id, state, (service_key(sid), state if state in ACCESS_STATES else "suspended", ip or None, rate,
                              kind, username or None, secret, mac or None)


def _as_tuple(sub: SubscriberState) -> tuple:
    extra = sub.extra
    return (sub.key, sub.state, sub.address, sub.rate, extra.get("access"), extra.get("username"),
            extra.get("password"), extra.get("mac"))


def _from_tuple(t: tuple) -> SubscriberState:
    key, state, address, rate, access, username, password, mac = t
    return SubscriberState(key=key, state=state, address=address, rate=rate,
                           extra={"access": access, "username": username, "password": password, "mac": mac})


def subscriber_to_dict(sub: SubscriberState) -> dict:
    """A subscriber state as the JSON an enforcement row keeps."""
    return {"key": sub.key, "state": sub.state, "address": sub.address,
            "rate": list(sub.rate) if sub.rate else None, "extra": dict(sub.extra)}


def subscriber_from_dict(data: dict) -> SubscriberState:
    """The inverse of :func:`subscriber_to_dict`."""
    rate = data.get("rate")
    return SubscriberState(key=data["key"], state=data["state"], address=data.get("address"),
                           rate=tuple(rate) if rate else None, extra=dict(data.get("extra") or {}))


def _rows(sql: str, params=()) -> list:
    return list(database.obj.execute_sql(sql, params).fetchall())


_parsed_cache: dict[str, tuple[SubscriberState, tuple]] = {}


def _parsed_both(text: str) -> tuple[SubscriberState, tuple]:
    """The subscriber state a row's JSON holds, parsed once per distinct text (reconciles reread them all)."""
    found = _parsed_cache.get(text)
    if found is None:
        if len(_parsed_cache) > 250_000:
            _parsed_cache.clear()
        sub = subscriber_from_dict(json.loads(text))
        found = _parsed_cache[text] = (sub, _as_tuple(sub))
    return found


def _parsed(text: str) -> SubscriberState:
    """The :class:`SubscriberState` of a row's JSON text."""
    return _parsed_both(text)[0]


@dataclass
class _Row:
    """An enforcement row as refresh and reconcile see it."""

    id: int | None
    router_id: int | None
    state: str
    text: str | None
    applied_state: str | None = None
    next_attempt_at: object = None
    attempts: int = 0


_EXISTING_SQL = ("SELECT e.id, e.service_id, e.router_id, e.desired_state, e.desired, e.applied_state, "
                 "e.next_attempt_at, e.attempts FROM enforcement e WHERE ")


def _refresh(where: str, params, day: dt.date | None, existing: tuple[str, tuple]) -> tuple[list[int], dict]:
    """Recompute desired state for the services ``where`` selects.

    ``existing`` selects their enforcement rows (and those of services that left them).
    Returns the ids whose desired state changed, and every row by service id as it is now.
    """
    if not database.in_transaction():
        raise RuntimeError("enforcement refresh must run inside the transaction of the change")
    day = day or _today()
    wanted = {row[0]: _desired(row, day) for row in _rows(_DESIRED_SQL + " WHERE " + where, params)}
    rows: dict[int, _Row] = {}
    for eid, service_id, e_router, e_state, e_desired, a_state, next_at, attempts in \
            _rows(_EXISTING_SQL + existing[0], existing[1]):
        rows[service_id] = _Row(eid, e_router, e_state, e_desired, a_state, next_at, attempts)
    now = utcnow()
    inserts, updates, changed = [], [], []
    for service_id, (r_id, state, sub) in wanted.items():
        current = rows.get(service_id)
        if r_id is None:
            if current is None or current.state == "removed":
                continue
            r_id, state = current.router_id, "removed"  # unbound from its router: take it off the old one
        if state == "removed":
            if current is None or (current.state == "removed" and current.router_id == r_id):
                continue
            text = current.text if current.router_id == r_id and current.text else \
                to_json(subscriber_to_dict(_from_tuple(sub)))
        elif (current is not None and current.router_id == r_id and current.state == state
              and current.text is not None and _parsed_both(current.text)[1] == sub):
            continue
        else:
            text = to_json(subscriber_to_dict(_from_tuple(sub)))
        if current is None:
            inserts.append((service_id, r_id, state, text, 0, now, now))
            rows[service_id] = _Row(None, r_id, state, text, None, now, 0)
        else:
            updates.append((r_id, state, text, 0, now, None, now, current.id))
            rows[service_id] = _Row(current.id, r_id, state, text, current.applied_state, now, 0)
        changed.append(service_id)
    for service_id, current in list(rows.items()):
        if service_id not in wanted and current.state != "removed":  # moved off this router
            updates.append((current.router_id, "removed", current.text, 0, now, None, now, current.id))
            rows[service_id] = _Row(current.id, current.router_id, "removed", current.text, current.applied_state,
                                    now, 0)
            changed.append(service_id)
    if inserts:
        insert_rows(database.obj, "enforcement", ("service_id", "router_id", "desired_state", "desired", "attempts",
                                                  "next_attempt_at", "updated_at"), inserts)
        made = [sid for sid, row in rows.items() if row.id is None]
        p = database.obj.param
        for first in range(0, len(made), 900):
            chunk = made[first:first + 900]
            for eid, sid in _rows(f"SELECT id, service_id FROM enforcement WHERE service_id IN "
                                  f"({', '.join([p] * len(chunk))})", tuple(chunk)):
                rows[sid].id = eid
    update_rows(database.obj, "enforcement", "id",
                (("router_id", "BIGINT"), ("desired_state", "VARCHAR(20)"), ("desired", "TEXT"),
                 ("attempts", "INTEGER"), ("next_attempt_at", "TIMESTAMP"), ("last_error", "TEXT"),
                 ("updated_at", "TIMESTAMP")), updates)
    if changed:
        _apply_in_transaction(changed, rows)
    return changed, rows


def _transactional_kinds() -> set[str]:
    return {kind for kind, info in enforcers.available().items() if info.transactional}


def _apply_in_transaction(changed: list[int], rows: dict) -> None:
    """Apply changed rows of routers whose enforcer writes only to this database, in this transaction.

    A row whose service moved from another router is left pending: taking it off the old
    router may need the network, which the push does outside any transaction. A failing
    apply is rolled back to its savepoint and leaves its rows pending for the retry job.
    """
    kinds = _transactional_kinds()
    if not kinds:
        return
    router_ids = {rows[sid].router_id for sid in changed if rows[sid].router_id is not None}
    routers = {r.id: r for r in Router.select().where(Router.id.in_(router_ids), Router.kind.in_(kinds),
                                                     Router.active)}
    by_router: dict[int, list[int]] = defaultdict(list)
    for sid in changed:
        row = rows[sid]
        if row.router_id in routers and row.id is not None:
            by_router[row.router_id].append(row.id)
    p = database.obj.param
    for router_id, ids in by_router.items():
        found = []
        for first in range(0, len(ids), 900):
            chunk = ids[first:first + 900]
            found += _rows(_ROW_SQL + f" WHERE e.id IN ({', '.join([p] * len(chunk))})",
                           tuple(chunk))
        here = [r for r in found if not (r[6] and r[5] not in (None, "removed")
                                         and _loads(r[6]).get("router_id") not in (None, router_id))]
        if here:
            with database.atomic():
                _push_router(routers[router_id], here, routers)


def refresh_customer(customer_id: int, today: dt.date | None = None) -> list[int]:
    """Recompute the desired router state of a customer's services; return the ids that changed.

    Call it inside the transaction that changed the account, then :func:`push_pending`
    with the ids after commit.
    """
    p = database.obj.param
    cid = int(customer_id)
    return _refresh(f"s.customer_id = {p}", (cid,), today,
                    (f"e.service_id IN (SELECT id FROM service WHERE customer_id = {p})", (cid,)))[0]


def refresh_services(service_ids, today: dt.date | None = None) -> list[int]:
    """Recompute the desired router state of the given services; return the ids that changed."""
    ids = [int(i) for i in service_ids]
    changed = []
    p = database.obj.param
    for start in range(0, len(ids), 900):
        chunk = tuple(ids[start:start + 900])
        marks = ", ".join([p] * len(chunk))
        changed += _refresh(f"s.id IN ({marks})", chunk, today, (f"e.service_id IN ({marks})", chunk))[0]
    return changed


def _refresh_router(router: Router, today: dt.date | None = None) -> tuple[list[int], dict]:
    p = database.obj.param
    return _refresh(f"s.router_id = {p}", (router.id,), today,
                    (f"e.router_id = {p} OR e.service_id IN (SELECT id FROM service WHERE router_id = {p})",
                     (router.id, router.id)))


def refresh_router(router: Router, today: dt.date | None = None) -> list[int]:
    """Recompute every service bound to ``router`` (and those that left it)."""
    return _refresh_router(router, today)[0]


def refresh_all(today: dt.date | None = None) -> list[int]:
    """Recompute the desired state of every service that has, or had, a router."""
    return _refresh("s.router_id IS NOT NULL OR s.id IN (SELECT service_id FROM enforcement)", (), today,
                    ("1 = 1", ()))[0]


# --- applying ------------------------------------------------------------------------

@dataclass
class PushResult:
    """What a push or a reconcile did: keys applied, keys failed (with why), routers unreachable."""

    applied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    def merge(self, other: PushResult) -> None:
        self.applied += other.applied
        self.failed.update(other.failed)
        self.unreachable.update(other.unreachable)


def _mark_applied(rows: list[tuple]) -> None:
    """Record rows ``(id, desired_state, desired_text, router_id)`` as applied, unless they changed since.

    A row whose desired state changed while its old state was on the way to the router
    is made due at once instead: whatever reached the router last, the newest state goes
    out again (this also covers pushes from other processes).
    """
    if not rows:
        return
    p = database.obj.param
    now = utcnow()
    applied_sql = (f"UPDATE enforcement SET applied_state = desired_state, applied = {p}, attempts = 0, "
                   f"next_attempt_at = NULL, last_error = NULL, updated_at = {p} "
                   f"WHERE id = {p} AND desired_state = {p} AND desired = {p}")
    again_sql = (f"UPDATE enforcement SET next_attempt_at = {p}, updated_at = {p} "
                 f"WHERE id = {p} AND (desired_state <> {p} OR desired <> {p})")
    applied, again = [], []
    for eid, state, text, router_id in rows:
        record = None if text is None else text[:-1] + f',"router_id":{int(router_id)}}}'
        applied.append((record, now, eid, state, text))
        again.append((now, now, eid, state, text))
    with database.atomic():
        cursor = database.obj.cursor()
        cursor.executemany(applied_sql, applied)
        cursor.executemany(again_sql, again)


def _mark_failed(rows: list[tuple], errors: dict[int, str]) -> None:
    """Count a failure on rows ``(id, attempts, desired_state, desired_text)`` and schedule the next try.

    A row whose desired state changed meanwhile is left alone: the new state is due now.
    """
    if not rows:
        return
    p = database.obj.param
    now = utcnow()
    params = [(attempts + 1, now + retry_delay(attempts + 1), errors[eid][:2000], now, eid, state, text)
              for eid, attempts, state, text in rows]
    with database.atomic():
        database.obj.cursor().executemany(
            f"UPDATE enforcement SET attempts = {p}, next_attempt_at = {p}, last_error = {p}, updated_at = {p} "
            f"WHERE id = {p} AND desired_state = {p} AND desired = {p}", params)


def _note_router(router: Router, error: str | None, reconciled: bool = False) -> None:
    if error is None and not reconciled and router.last_error is None and database.in_transaction():
        return  # nothing new to say, and the router's row stays unlocked for other transactions
    fields = {"last_error": error}
    if error is None:
        fields["last_seen_at"] = utcnow()
    if reconciled:
        fields["last_reconcile_at"] = utcnow()
    Router.update(**fields).where(Router.id == router.id).execute()


def _apply(router: Router, changes: list[Change]) -> tuple[set[str], dict[str, str], str | None]:
    """Apply ``changes`` on ``router``; returns (keys applied, keys failed, router-wide error)."""
    if not changes:
        return set(), {}, None
    try:
        result = enforcers.apply(router, changes)
    except PluginError as exc:
        if isinstance(exc.error, OSError):
            return set(), {}, f"router unreachable: {exc.error}"
        return set(), {}, str(exc)
    except OSError as exc:
        return set(), {}, f"router unreachable: {exc}"
    except Exception as exc:  # noqa: BLE001 - any enforcer failure leaves the changes pending
        return set(), {}, f"{type(exc).__name__}: {exc}"
    applied = set(result.applied)
    failed = {str(k): str(v) for k, v in dict(result.failed).items()}
    for change in changes:
        key = change.subscriber.key
        if key not in applied and key not in failed:
            failed[key] = "the enforcer did not report this change"
    return applied, failed, None


_ROW_SQL = ("SELECT e.id, e.service_id, e.router_id, e.desired_state, e.desired, e.applied_state, e.applied, "
            "e.attempts FROM enforcement e")
_PENDING_SQL = _ROW_SQL + " WHERE e.next_attempt_at IS NOT NULL AND e.next_attempt_at <= {p}"


def push_pending(service_ids=None, now: dt.datetime | None = None, limit: int = 5000) -> PushResult:
    """Apply pending changes now, router by router; returns what was applied and what failed.

    With ``service_ids``, only those services (a targeted push after a payment); a
    targeted push leaves routers whose last attempt failed to the retry job, so that one
    router that is down does not hold up the events of the others. Runs outside a
    transaction: router calls are never made while holding database locks.
    """
    p = database.obj.param
    now = now or utcnow()
    where, params = "", []
    if service_ids is not None:
        ids = [int(i) for i in service_ids]
        if not ids:
            return PushResult()
        where = f" AND e.service_id IN ({', '.join([p] * len(ids))})"
        params = ids
    found = _rows(f"SELECT DISTINCT e.router_id FROM enforcement e JOIN router r ON r.id = e.router_id "
                  f"WHERE r.active AND e.next_attempt_at IS NOT NULL AND e.next_attempt_at <= {p}{where}",
                  (now, *params))
    outcome = PushResult()
    if not found:
        return outcome
    routers = {r.id: r for r in Router.select().where(Router.id.in_([row[0] for row in found]))}
    for router in sorted(routers.values(), key=lambda r: r.name):
        if service_ids is not None and router.last_error:
            continue
        with _router_locks[router.id]:
            pending = _rows(_PENDING_SQL.format(p=p) + f" AND e.router_id = {p}{where} ORDER BY e.id "
                            f"LIMIT {int(limit)}", (now, router.id, *params))
            if pending:
                outcome.merge(_push_router(router, pending, routers))
    return outcome


def _push_router(router: Router, pending: list, routers: dict) -> PushResult:
    """Apply one router's pending rows (the caller holds the router's lock)."""
    outcome = PushResult()
    changes, moved = [], defaultdict(list)
    for _eid, _sid, _rid, state, desired, applied_state, applied, _attempts in pending:
        want = _parsed(desired)
        if applied and applied_state not in (None, "removed"):
            before = _loads(applied)
            old_router = before.get("router_id")
            if old_router is not None and old_router != router.id:
                moved[old_router].append(Change("remove", subscriber_from_dict(before)))
        changes.append(Change("remove" if state == "removed" else "set", want))
    for old_id, removals in moved.items():  # a service that moved: off the old router first
        old = routers.get(old_id) or Router.get_or_none(Router.id == old_id)
        if old is not None:
            with _router_locks[old.id]:
                _apply(old, removals)
    applied, failed, error = _apply(router, changes)
    if error:
        failed = {c.subscriber.key: error for c in changes}
        outcome.unreachable[router.name] = error
        log.warning("router %s: %s; %d change(s) kept pending", router.name, error, len(changes))
    _note_router(router, error)
    done, bad, errors = [], [], {}
    for eid, _sid, _rid, state, desired, _a_state, _applied, attempts in pending:
        key = _parsed(desired).key
        if key in applied:
            done.append((eid, state, desired, router.id))
            outcome.applied.append(key)
        else:
            bad.append((eid, attempts, state, desired))
            errors[eid] = failed.get(key, "not applied")
            outcome.failed[key] = errors[eid]
    _mark_applied(done)
    _mark_failed(bad, errors)
    return outcome


def _loads(text):
    return json.loads(text) if isinstance(text, str) else (text or {})


# --- full reconcile ------------------------------------------------------------------

@dataclass
class ReconcileResult:
    """One router's full reconcile: how much it holds and wants, what changed, how long it took."""

    router: str
    desired: int = 0
    read: int = 0
    changes: int = 0
    applied: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def reconcile(router: Router, today: dt.date | None = None, dry_run: bool = False) -> ReconcileResult:
    """Make ``router`` hold exactly what billing wants: read once, diff, apply only the difference.

    A dry run computes the same difference and changes nothing, in the database or on
    the router.
    """
    started = time.perf_counter()
    result = ReconcileResult(router=router.name)
    with _router_locks[router.id]:
        with database.atomic() as txn:
            _changed, rows = _refresh_router(router, today)
            if dry_run:
                txn.rollback()
        wanted: dict[str, tuple] = {}
        for row in rows.values():
            if row.text is None or row.router_id != router.id:
                continue
            want = _parsed(row.text)
            wanted[want.key] = (row, want)
        try:
            held = {s.key: s for s in enforcers.read_state(router)}
        except OSError as exc:
            result.error = f"router unreachable: {exc}"
        except Exception as exc:  # noqa: BLE001 - a missing or failing enforcer is this router's problem only
            result.error = str(exc)
        if result.error:
            if not dry_run:
                _note_router(router, result.error)
            result.seconds = time.perf_counter() - started
            return result
        result.read = len(held)
        changes, in_step = [], []
        for key, (row, want) in wanted.items():
            if row.state == "removed":
                if key in held:
                    changes.append(Change("remove", held[key]))
                elif row.applied_state != "removed" or row.next_attempt_at is not None:
                    in_step.append((row.id, row.state, row.text, router.id))
                continue
            result.desired += 1
            if held.get(key) != want:
                changes.append(Change("set", want))
            elif row.applied_state != row.state or row.next_attempt_at is not None:
                in_step.append((row.id, row.state, row.text, router.id))
        for key, sub in held.items():
            if key not in wanted:
                changes.append(Change("remove", sub))
        result.changes = len(changes)
        if dry_run:
            result.seconds = time.perf_counter() - started
            return result
        applied, failed, error = _apply(router, changes)
        if error:
            result.error = error
            failed = {c.subscriber.key: error for c in changes}
        result.applied = len(applied)
        result.failed = failed
        done, bad, errors = list(in_step), [], {}
        for change in changes:
            key = change.subscriber.key
            entry = wanted.get(key)
            if entry is None:
                continue
            row = entry[0]
            if key in applied:
                done.append((row.id, row.state, row.text, router.id))
            else:
                bad.append((row.id, row.attempts, row.state, row.text))
                errors[row.id] = failed.get(key, "not applied")
        _mark_applied(done)
        _mark_failed(bad, errors)
        _note_router(router, error, reconciled=error is None)
    result.seconds = time.perf_counter() - started
    return result


def reconcile_all(today: dt.date | None = None) -> list[ReconcileResult]:
    """Reconcile every active router, one after another; an unreachable one does not stop the rest."""
    return [reconcile(router, today) for router in Router.select().where(Router.active).order_by(Router.name)]


def pending(limit: int = 200) -> list[Enforcement]:
    """Changes not yet on their router (oldest first), with their attempts and last error."""
    return list(Enforcement.select().where(Enforcement.next_attempt_at.is_null(False))
                .order_by(Enforcement.updated_at).limit(limit))
