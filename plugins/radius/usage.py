"""Usage from RADIUS accounting: the packets FreeRADIUS appends to ``radius_acct_log``.

:func:`collect_samples` reads the log past a cursor (``radius_state`` row
``usage_log_id``) and turns it into bytes per service per UTC day. Each session
(``acctuniqueid``) keeps the cumulative counters last counted in
``radius_usage_session``; a packet counts what its counters add to those:

- counters are 64-bit: ``gigawords << 32 | octets``; input is the subscriber's upload
  (``bytes_in``), output their download (``bytes_out``);
- the first packet seen of a session counts from zero;
- a duplicate (same session time and counters) counts nothing, and so does a late
  packet (a lower session time, or the same one with a lower counter): a later
  cumulative counter already covers it. Packets after a Stop follow the same rules;
- a counter that goes down while the session time advances has wrapped when no
  gigawords were sent for it (0 both times) and its previous value was in the upper
  half of the 32-bit range (delta ``new + 2**32 - old``); any other decrease is a reset
  of the NAS's counters (delta ``new``);
- a delta is spread over the UTC days of the interval since the session's previous
  counted event (for a first packet: since the session started), in proportion to
  seconds and in integers that add up to it exactly.

Sessions are mapped to services by User-Name: ``radius_subscriber.radius_user``, else
``service.username``. Packets of sessions with no service count for nobody, but the
session's counters still advance: a user given a service later counts from then on.
Accounting-On/Off and other statuses are skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from core.bulk import insert_rows, is_sqlite, to_date, update_rows
from core.db import database
from core.hooktypes import UsageSample

log = logging.getLogger(__name__)

SOURCE = "radius"
CURSOR = "usage_log_id"
COUNTED_STATUSES = frozenset({"Start", "Interim-Update", "Alive", "Stop"})
DAY = 86_400
WRAP = 1 << 32
_HALF = 1 << 31
SETTLE_SECONDS = 5  # a log row is counted once it is this old (see _settled)
_LOOKUP_CHUNK = 500
_EPOCH = dt.datetime(1970, 1, 1)

_SESSION_COLUMNS = ("acctuniqueid", "service_id", "username", "session_time", "input_octets",
                    "output_octets", "event_time", "stopped")
_SESSION_UPDATE = (("service_id", "BIGINT"), ("session_time", "BIGINT"), ("input_octets", "BIGINT"),
                   ("output_octets", "BIGINT"), ("event_time", "BIGINT"), ("stopped", "BOOLEAN"))

# One session's state while a batch runs; the list is mutated in place.
_ST, _IN, _OUT, _ET, _STOPPED, _SVC, _USER, _SEEN, _NEW, _DIRTY = range(10)


def collect_samples(limit: int = 50_000) -> list[UsageSample]:
    """Count the next ``limit`` accounting packets; return usage per service per UTC day.

    Must run inside a transaction, the one that stores the samples: the session
    counters and the cursor advance in it too, so nothing is lost or counted twice.
    """
    db = database.obj
    if not db.in_transaction():
        raise RuntimeError("collect_samples must run inside a transaction")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    p = db.param
    cursor = _lock_cursor(db)
    rows = db.execute_sql(
        "SELECT l.id, l.acctuniqueid, l.username, l.status, l.event_time, l.session_time,"
        " l.input_octets, l.input_gigawords, l.output_octets, l.output_gigawords,"
        " s.acctuniqueid, s.service_id, s.session_time, s.input_octets, s.output_octets, s.event_time, s.stopped"
        " , l.received_at"
        " FROM radius_acct_log l LEFT JOIN radius_usage_session s ON s.acctuniqueid = l.acctuniqueid"
        f" WHERE l.id > {p} ORDER BY l.id LIMIT {p}", (cursor, limit)).fetchall()
    rows = _settled(rows, time.time() - SETTLE_SECONDS)
    if not rows:
        return []
    sessions = _sessions(rows)
    _map_services(db, sessions)
    usage, skipped = _count(rows, sessions)
    _save_sessions(db, sessions)
    db.execute_sql(f"UPDATE radius_state SET value = {p} WHERE name = {p}", (rows[-1][0], CURSOR))
    if skipped:
        users = sorted({s[_USER] for s in sessions.values() if s[_SVC] is None})
        log.warning("radius usage: %d accounting packet(s) of %d unknown user(s) skipped (%s%s)", skipped,
                    len(users), ", ".join(repr(u) for u in users[:5]), ", ..." if len(users) > 5 else "")
    return _samples(rows[0][0], rows[-1][0], usage)


def usage_by_day(service_id: int, start: dt.date, end: dt.date) -> list[tuple[dt.date, int, int]]:
    """``(day, bytes_in, bytes_out)`` of a service for each UTC day from ``start`` up to, not including, ``end``.

    Sums every source's usage records by the day their period starts (as billing
    does); days without usage are left out.
    """
    p = database.param
    lo = dt.datetime.combine(start, dt.time())
    hi = dt.datetime.combine(end, dt.time())
    found = database.execute_sql(
        "SELECT period_start, bytes_in, bytes_out FROM usage_record"
        f" WHERE service_id = {p} AND period_start >= {p} AND period_start < {p}", (service_id, lo, hi))
    days: dict[dt.date, list[int]] = {}
    for period_start, bytes_in, bytes_out in found.fetchall():
        day = to_date(period_start)
        acc = days.setdefault(day, [0, 0])
        acc[0] += bytes_in
        acc[1] += bytes_out
    return [(day, b_in, b_out) for day, (b_in, b_out) in sorted(days.items())]


# --- steps of a batch ---------------------------------------------------------------------

def _settled(rows, cutoff: float) -> list:
    """The rows up to (not including) the first one logged after ``cutoff``.

    On PostgreSQL ids are handed out before their inserts commit, so a row with a lower
    id can become visible after one with a higher id. Stopping at the first recent row
    keeps the cursor from passing a row that is still on its way.
    """
    for n, row in enumerate(rows):
        if row[-1] is not None and row[-1] > cutoff:
            return rows[:n]
    return rows


def _lock_cursor(db) -> int:
    """The id of the last log row counted, locking the cursor against a concurrent collection."""
    p = db.param
    db.execute_sql(f"INSERT INTO radius_state (name, value) VALUES ({p}, 0) ON CONFLICT (name) DO NOTHING",
                   (CURSOR,))
    # SQLite transactions take the write lock at BEGIN; PostgreSQL needs the row lock.
    lock = "" if is_sqlite(db) else " FOR UPDATE"
    return int(db.execute_sql(f"SELECT value FROM radius_state WHERE name = {p}{lock}", (CURSOR,)).fetchone()[0])


def _sessions(rows) -> dict[str, list]:
    """The state of every session in the batch, as stored before it."""
    sessions: dict[str, list] = {}
    counted = COUNTED_STATUSES
    for row in rows:
        uid = row[1]
        if uid in sessions or row[3] not in counted:
            continue
        if row[10] is None:
            sessions[uid] = [0, 0, 0, 0, False, None, row[2], False, True, True]
        else:
            sessions[uid] = [row[12], row[13], row[14], row[15], bool(row[16]), row[11], row[2], True, False, False]
    return sessions


def _map_services(db, sessions: dict[str, list]) -> None:
    """Give sessions without a service the one their User-Name belongs to, where there is one."""
    wanted = {s[_USER] for s in sessions.values() if s[_SVC] is None and s[_USER]}
    if not wanted:
        return
    found = _services_for(db, wanted)
    for s in sessions.values():
        if s[_SVC] is None:
            svc = found.get(s[_USER])
            if svc is not None:
                s[_SVC] = svc
                s[_DIRTY] = True


def _services_for(db, usernames: set[str]) -> dict[str, int]:
    """User-Name -> service id: by ``radius_subscriber``, then by the service's own username."""
    p = db.param
    names = sorted(usernames)
    keyed: dict[str, int] = {}
    for chunk in _chunks(names):
        marks = ", ".join([p] * len(chunk))
        for user, key in db.execute_sql(
                f"SELECT radius_user, service_key FROM radius_subscriber WHERE radius_user IN ({marks})", chunk):
            prefix, _, number = (key or "").partition("-")
            if prefix == "svc" and number.isdigit():
                keyed[user] = int(number)
    existing: set[int] = set()
    for chunk in _chunks(sorted(set(keyed.values()))):
        marks = ", ".join([p] * len(chunk))
        existing.update(r[0] for r in db.execute_sql(f"SELECT id FROM service WHERE id IN ({marks})", chunk))
    found = {user: svc for user, svc in keyed.items() if svc in existing}
    rest = [n for n in names if n not in found]
    for chunk in _chunks(rest):
        marks = ", ".join([p] * len(chunk))
        found.update(db.execute_sql(f"SELECT username, id FROM service WHERE username IN ({marks})", chunk))
    return found


def _count(rows, sessions: dict[str, list]) -> tuple[dict, int]:
    """Run the packets through their sessions: ``{(service_id, day): [in, out, first, last]}`` and packets skipped."""
    usage: dict[tuple[int, int], list[int]] = {}
    skipped = 0
    counted = COUNTED_STATUSES
    for row in rows:
        status = row[3]
        if status not in counted:
            continue
        s = sessions[row[1]]
        t1, st = row[4], row[5]
        ig, og = row[7], row[9]
        c_in = ig << 32 | row[6]
        c_out = og << 32 | row[8]
        if status == "Stop" and not s[_STOPPED]:
            s[_STOPPED] = s[_DIRTY] = True
        if s[_SEEN]:
            prev_st, p_in, p_out = s[_ST], s[_IN], s[_OUT]
            if st < prev_st:
                continue
            if st == prev_st:
                if c_in < p_in or c_out < p_out or (c_in == p_in and c_out == p_out):
                    continue  # a late packet from the same second, or a duplicate
                d_in, d_out = c_in - p_in, c_out - p_out
            else:
                d_in = c_in - p_in if c_in >= p_in else _decrease(p_in, c_in, ig)
                d_out = c_out - p_out if c_out >= p_out else _decrease(p_out, c_out, og)
            t0 = s[_ET]
        else:
            s[_SEEN] = True
            d_in, d_out = c_in, c_out
            t0 = t1 - st
        s[_ST], s[_IN], s[_OUT], s[_ET] = st, c_in, c_out, t1
        s[_DIRTY] = True
        if not (d_in or d_out):
            continue
        svc = s[_SVC]
        if svc is None:
            skipped += 1
            continue
        if t0 > t1:
            t0 = t1  # the NAS's clock went back: count it all at this packet
        first_day = t0 // DAY
        last_day = (t1 - 1) // DAY if t1 > t0 else t1 // DAY
        if first_day == last_day:
            acc = usage.get((svc, last_day))
            if acc is None:
                usage[(svc, last_day)] = [d_in, d_out, t0, t1]
            else:
                acc[0] += d_in
                acc[1] += d_out
                if t0 < acc[2]:
                    acc[2] = t0
                if t1 > acc[3]:
                    acc[3] = t1
        else:
            _split(usage, svc, t0, t1, first_day, last_day, d_in, d_out)
    return usage, skipped


def _decrease(old: int, new: int, gigawords: int) -> int:
    """What a counter that went down from ``old`` to ``new`` counted: a 32-bit wrap or a reset."""
    if gigawords == 0 and _HALF <= old < WRAP:
        return new + WRAP - old
    return new


def _split(usage: dict, svc: int, t0: int, t1: int, first_day: int, last_day: int, d_in: int, d_out: int) -> None:
    """Spread a delta over the UTC days from ``t0`` to ``t1`` by seconds, parts summing exactly to it."""
    total = t1 - t0
    done = done_in = done_out = 0
    for day in range(first_day, last_day + 1):
        lo = max(t0, day * DAY)
        hi = min(t1, (day + 1) * DAY)
        done += hi - lo
        part_in = d_in * done // total - done_in
        part_out = d_out * done // total - done_out
        done_in += part_in
        done_out += part_out
        if not (part_in or part_out):
            continue
        acc = usage.get((svc, day))
        if acc is None:
            usage[(svc, day)] = [part_in, part_out, lo, hi]
        else:
            acc[0] += part_in
            acc[1] += part_out
            acc[2] = min(acc[2], lo)
            acc[3] = max(acc[3], hi)


def _save_sessions(db, sessions: dict[str, list]) -> None:
    """Write the sessions the batch changed: new ones inserted, the others updated, in bulk."""
    new, changed = [], []
    for uid, s in sessions.items():
        if s[_NEW]:
            new.append((uid, s[_SVC], s[_USER], s[_ST], s[_IN], s[_OUT], s[_ET], s[_STOPPED]))
        elif s[_DIRTY]:
            changed.append((s[_SVC], s[_ST], s[_IN], s[_OUT], s[_ET], s[_STOPPED], uid))
    insert_rows(db, "radius_usage_session", _SESSION_COLUMNS, new)
    update_rows(db, "radius_usage_session", "acctuniqueid", _SESSION_UPDATE, changed, key_type="VARCHAR(32)")


def _samples(first_id: int, last_id: int, usage: dict) -> list[UsageSample]:
    samples = []
    for (svc, day), (b_in, b_out, lo, hi) in sorted(usage.items()):
        date = (_EPOCH + dt.timedelta(days=day)).date()
        samples.append(UsageSample(
            source=SOURCE, external_id=f"radacct:{first_id}-{last_id}:{svc}:{date.isoformat()}", service_id=svc,
            period_start=_EPOCH + dt.timedelta(seconds=lo), period_end=_EPOCH + dt.timedelta(seconds=hi),
            bytes_in=b_in, bytes_out=b_out))
    return samples


def _chunks(values: list):
    for i in range(0, len(values), _LOOKUP_CHUNK):
        yield tuple(values[i:i + _LOOKUP_CHUNK])

