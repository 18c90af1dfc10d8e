"""RADIUS accounting into usage: counters, duplicates, late packets, wraps, resets, days, batches."""

from __future__ import annotations

import datetime as dt
import logging
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.db import database
from core.models import Router, UsageRecord
from plugins.radius.usage import collect_samples, usage_by_day
from tests.factories import make_service

GW = 1 << 32
DAY = 86_400
T0 = int(dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone.utc).timestamp())  # a Monday morning, UTC
MIDNIGHT = int(dt.datetime(2026, 3, 3, tzinfo=dt.timezone.utc).timestamp())
MAR2, MAR3 = dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def packet(uid, status, t, st=0, c_in=0, c_out=0, user="alice", ig=None, og=None):
    """Append one accounting packet to the log; counters are split into octets and gigawords unless given."""
    p = database.param
    in_oct, in_gw = (c_in, ig) if ig is not None else (c_in % GW, c_in // GW)
    out_oct, out_gw = (c_out, og) if og is not None else (c_out % GW, c_out // GW)
    database.execute_sql(
        "INSERT INTO radius_acct_log (acctuniqueid, acctsessionid, username, nasipaddress, status, event_time,"
        " session_time, input_octets, input_gigawords, output_octets, output_gigawords, received_at)"
        f" VALUES ({', '.join([p] * 12)})",
        (uid, uid[:8], user, "10.0.0.1", status, t, st, in_oct, in_gw, out_oct, out_gw, t))


def subscriber(service, radius_user):
    p = database.param
    nas, _ = Router.get_or_create(name="nas-1", defaults={"kind": "radius", "host": "10.0.0.1"})
    database.execute_sql(
        f"INSERT INTO radius_subscriber (service_key, router_id, radius_user, state) VALUES ({p}, {p}, {p}, {p})",
        (f"svc-{service.id}", nas.id, radius_user, "active"))


def store(samples):
    """Store samples as ``core.usage.collect`` does: once per (source, external id)."""
    for s in samples:
        UsageRecord.insert(service=s.service_id, source=s.source, external_id=s.external_id,
                           period_start=s.period_start, period_end=s.period_end,
                           bytes_in=s.bytes_in, bytes_out=s.bytes_out).on_conflict_ignore().execute()


def collect(limit=50_000):
    with database.atomic():
        samples = collect_samples(limit)
        store(samples)
    return samples


def collect_all(limit):
    while collect(limit) or cursor() < last_log_id():
        pass


def cursor():
    row = database.execute_sql("SELECT value FROM radius_state WHERE name = 'usage_log_id'").fetchone()
    return row[0] if row else 0


def last_log_id():
    return database.execute_sql("SELECT COALESCE(MAX(id), 0) FROM radius_acct_log").fetchone()[0]


def totals(service):
    rows = UsageRecord.select().where(UsageRecord.service == service.id)
    return sum(r.bytes_in for r in rows), sum(r.bytes_out for r in rows)


def session_row(uid):
    return database.execute_sql(
        "SELECT service_id, session_time, input_octets, output_octets, event_time, stopped"
        f" FROM radius_usage_session WHERE acctuniqueid = {database.param}", (uid,)).fetchone()


@pytest.fixture
def svc(db):
    service = make_service(username="alice-svc")
    subscriber(service, "alice")
    return service


# --- counting ------------------------------------------------------------------------------

def test_start_interim_stop_add_up_to_the_final_counters(svc):
    packet("s1", "Start", T0)
    packet("s1", "Interim-Update", T0 + 300, 300, 1_000, 50_000)
    packet("s1", "Stop", T0 + 600, 600, 1_500, 90_000)
    samples = collect()
    assert [(s.service_id, s.bytes_in, s.bytes_out) for s in samples] == [(svc.id, 1_500, 90_000)]
    sample = samples[0]
    assert sample.source == "radius"
    first, last = database.execute_sql("SELECT MIN(id), MAX(id) FROM radius_acct_log").fetchone()
    assert sample.external_id == f"radacct:{first}-{last}:{svc.id}:2026-03-02"
    assert (sample.period_start, sample.period_end) == (dt.datetime(2026, 3, 2, 10), dt.datetime(2026, 3, 2, 10, 10))
    assert totals(svc) == (1_500, 90_000)
    service_id, st, c_in, c_out, event_time, stopped = session_row("s1")
    assert (service_id, st, c_in, c_out, event_time, bool(stopped)) == (svc.id, 600, 1_500, 90_000, T0 + 600, True)
    assert cursor() == last_log_id()
    assert collect() == []  # nothing new


def test_an_interim_without_a_start_counts_its_whole_counters(svc):
    packet("s1", "Interim-Update", T0 + 300, 300, 7_000, 8_000)
    collect()
    assert totals(svc) == (7_000, 8_000)


def test_duplicates_count_once(svc):
    packet("s1", "Start", T0)
    for _ in range(3):
        packet("s1", "Interim-Update", T0 + 300, 300, 1_000, 2_000)
    packet("s1", "Stop", T0 + 600, 600, 3_000, 4_000)
    packet("s1", "Stop", T0 + 600, 600, 3_000, 4_000)
    collect()
    packet("s1", "Stop", T0 + 600, 600, 3_000, 4_000)  # retransmitted after the batch
    collect()
    assert totals(svc) == (3_000, 4_000)


def test_late_packets_count_nothing(svc):
    packet("s1", "Start", T0)
    packet("s1", "Interim-Update", T0 + 600, 600, 6_000, 6_000)
    packet("s1", "Interim-Update", T0 + 300, 300, 3_000, 3_000)  # overtaken by the one above
    packet("s1", "Stop", T0 + 900, 900, 9_000, 9_500)
    packet("s1", "Interim-Update", T0 + 600, 600, 6_000, 6_000)  # after the Stop
    packet("s1", "Interim-Update", T0 + 900, 900, 8_000, 9_500)  # same second as the Stop, lower counter
    collect()
    assert totals(svc) == (9_000, 9_500)
    assert session_row("s1")[1:4] == (900, 9_000, 9_500)


def test_packets_after_a_stop_are_counted_by_the_same_rules(svc):
    packet("s1", "Stop", T0 + 600, 600, 1_000, 1_000)
    collect()
    packet("s1", "Interim-Update", T0 + 900, 900, 1_500, 1_200)
    packet("s1", "Stop", T0 + 900, 900, 1_600, 1_200)  # same second, more bytes
    collect()
    assert totals(svc) == (1_600, 1_200)
    assert bool(session_row("s1")[5]) is True


def test_gigawords_make_64_bit_counters(svc):
    packet("s1", "Start", T0)
    packet("s1", "Interim-Update", T0 + 300, 300, GW - 10, 5)
    packet("s1", "Interim-Update", T0 + 600, 600, 20, 6, ig=1, og=2)  # octets fell, gigawords rose
    packet("s1", "Stop", T0 + 900, 900, 3 * GW + 7, 2 * GW + 9)
    collect()
    assert totals(svc) == (3 * GW + 7, 2 * GW + 9)


def test_a_32_bit_counter_without_gigawords_wraps(svc):
    packet("s1", "Interim-Update", T0 + 300, 300, 4_000_000_000, 3_000_000_000)
    packet("s1", "Interim-Update", T0 + 600, 600, 100_000, 3_000_000_500)
    collect()
    assert totals(svc) == (100_000 + GW, 3_000_000_500)


def test_other_decreases_are_resets(svc):
    packet("s1", "Interim-Update", T0 + 300, 300, 1_000_000, 3 * GW + 10)
    packet("s1", "Interim-Update", T0 + 600, 600, 500, 40)  # lower half, and gigawords were sent
    collect()
    assert totals(svc) == (1_000_000 + 500, 3 * GW + 10 + 40)


def test_a_decrease_within_the_same_second_is_a_late_packet_not_a_wrap(svc):
    packet("s1", "Interim-Update", T0 + 300, 300, 4_000_000_000, 10)
    packet("s1", "Interim-Update", T0 + 300, 300, 100, 10)
    collect()
    assert totals(svc) == (4_000_000_000, 10)


def test_a_delta_across_midnight_is_split_by_seconds(svc):
    packet("s1", "Interim-Update", MIDNIGHT - 600, 300, 0, 0)
    packet("s1", "Interim-Update", MIDNIGHT + 300, 1_200, 901, 9_000)  # 600 s before midnight, 300 after
    samples = collect()
    by_day = {s.period_start.date(): s for s in samples}
    assert sorted(by_day) == [MAR2, MAR3]
    assert (by_day[MAR2].bytes_in, by_day[MAR2].bytes_out) == (600, 6_000)
    assert (by_day[MAR3].bytes_in, by_day[MAR3].bytes_out) == (301, 3_000)
    assert by_day[MAR2].period_end == dt.datetime(2026, 3, 3)
    assert by_day[MAR3].period_start == dt.datetime(2026, 3, 3) and by_day[MAR3].period_end == dt.datetime(
        2026, 3, 3, 0, 5)
    assert all(s.period_end >= s.period_start for s in samples)
    assert usage_by_day(svc.id, MAR2, dt.date(2026, 3, 4)) == [(MAR2, 600, 6_000), (MAR3, 301, 3_000)]


def test_a_first_interim_is_spread_from_the_session_start(svc):
    packet("s1", "Interim-Update", MIDNIGHT + 2 * DAY + 3_600, 3 * DAY, 3, 3_000_009)  # began on 2 March, 01:00
    samples = collect()
    assert [s.period_start.date() for s in samples] == [MAR2 + dt.timedelta(days=i) for i in range(4)]
    assert (samples[0].period_start, samples[-1].period_end) == (dt.datetime(2026, 3, 2, 1), dt.datetime(2026, 3, 5, 1))
    assert [s.bytes_out for s in samples] == [958_336, 1_000_003, 1_000_003, 41_667]
    assert sum(s.bytes_in for s in samples) == 3


def test_an_event_exactly_at_midnight_belongs_to_the_day_it_ends(svc):
    packet("s1", "Interim-Update", MIDNIGHT - 300, 300, 100, 100)
    packet("s1", "Interim-Update", MIDNIGHT, 600, 200, 200)
    samples = collect()
    assert [(s.period_start.date(), s.bytes_in) for s in samples] == [(MAR2, 200)]


# --- services ------------------------------------------------------------------------------

def test_sessions_map_by_radius_user_then_by_service_username(db):
    by_subscriber = make_service(username="bob")  # its own username is not what the NAS sends
    subscriber(by_subscriber, "bob@isp")
    by_username = make_service(username="carol")
    misleading = make_service(username="bob@isp")  # radius_subscriber wins over this one
    packet("b1", "Interim-Update", T0, 60, 10, 20, user="bob@isp")
    packet("c1", "Interim-Update", T0, 60, 30, 40, user="carol")
    collect()
    assert totals(by_subscriber) == (10, 20)
    assert totals(by_username) == (30, 40)
    assert totals(misleading) == (0, 0)


def test_unknown_users_are_skipped_and_the_cursor_advances(svc, caplog):
    packet("x1", "Start", T0, user="mallory")
    packet("x1", "Interim-Update", T0 + 300, 300, 100, 200, user="mallory")
    packet("x1", "Interim-Update", T0 + 600, 600, 300, 400, user="mallory")
    packet("s1", "Interim-Update", T0 + 600, 600, 5, 6)
    with caplog.at_level(logging.WARNING, logger="plugins.radius.usage"):
        samples = collect()
    assert [s.service_id for s in samples] == [svc.id]
    assert cursor() == last_log_id()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 accounting packet(s)" in warnings[0].getMessage()
    assert "mallory" in warnings[0].getMessage()
    service_id, st, c_in, c_out, _event, _stopped = session_row("x1")
    assert service_id is None and (st, c_in, c_out) == (600, 300, 400)
    assert UsageRecord.select().count() == 1


def test_a_user_provisioned_later_counts_from_then_on(db):
    packet("x1", "Interim-Update", T0 + 300, 300, 100, 200, user="dave")
    collect()
    service = make_service(username="dave")
    packet("x1", "Interim-Update", T0 + 600, 600, 150, 260, user="dave")
    collect()
    assert totals(service) == (50, 60)
    assert session_row("x1")[0] == service.id


def test_accounting_on_and_off_are_ignored(svc):
    packet("nas", "Accounting-On", T0, user="")
    packet("s1", "Interim-Update", T0 + 300, 300, 10, 10)
    packet("nas", "Accounting-Off", T0 + 400, 500, 999, 999, user="")
    collect()
    assert totals(svc) == (10, 10)
    assert cursor() == last_log_id()
    assert session_row("nas") is None


# --- batches and transactions --------------------------------------------------------------

def _busy_day(service_users):
    """Sessions of several users over midnight, with duplicates, late packets, a wrap and a reset."""
    for n, user in enumerate(service_users):
        uid = f"{user}-1"
        start = MIDNIGHT - 1_000 - 37 * n
        packet(uid, "Start", start, user=user)
        packet(uid, "Interim-Update", start + 600, 600, 1_000 * (n + 1), 3_000_000_000 + n, user=user)
        packet(uid, "Interim-Update", start + 1_200, 1_200, 2_000 * (n + 1), 4_100_000_000, user=user)
        packet(uid, "Interim-Update", start + 600, 600, 1_000 * (n + 1), 3_000_000_000 + n, user=user)
        packet(uid, "Interim-Update", start + 1_800, 1_800, 5_000 * (n + 1), 77, user=user)  # wrap
        packet(uid, "Interim-Update", start + 2_400, 2_400, 9, 90, user=user)  # reset
        packet(uid, "Stop", start + 3_000, 3_000, 19, 95, user=user)
        packet(uid, "Stop", start + 3_000, 3_000, 19, 95, user=user)


def test_many_small_batches_count_what_one_batch_counts(db):
    services = [make_service(username=f"u{n}") for n in range(3)]
    _busy_day([f"u{n}" for n in range(3)])
    collect_all(limit=3)
    small = [usage_by_day(s.id, MAR2, MAR3 + dt.timedelta(days=1)) for s in services]
    for table in ("usage_record", "radius_usage_session", "radius_state"):
        database.execute_sql(f"DELETE FROM {table}")
    collect()
    assert cursor() == last_log_id()
    assert [usage_by_day(s.id, MAR2, MAR3 + dt.timedelta(days=1)) for s in services] == small
    assert sum(b_in for _d, b_in, _o in small[0]) == 5_000 + 9 + 10
    assert sum(b_out for _d, _i, b_out in small[0]) == GW + 95  # wrapped once past 4,100,000,000


def test_external_ids_are_unique_and_name_the_batch(db):
    services = [make_service(username=f"u{n}") for n in range(2)]
    _busy_day(["u0", "u1"])
    ids = []
    while cursor() < last_log_id():
        ids += [s.external_id for s in collect(limit=5)]
    assert len(ids) == len(set(ids)) and all(i.startswith("radacct:") for i in ids)
    assert {int(i.split(":")[2]) for i in ids} == {s.id for s in services}


def test_a_rolled_back_batch_is_counted_again(svc):
    packet("s1", "Interim-Update", T0 + 300, 300, 10, 20)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        with database.atomic():
            store(collect_samples())
            raise Crash
    assert cursor() == 0 and session_row("s1") is None
    collect()
    assert totals(svc) == (10, 20)


def test_concurrent_collectors_count_each_packet_once(svc):
    for n in range(20):
        for k in range(8):
            packet(f"s{n}", "Stop" if k == 7 else "Interim-Update", T0 + 60 * k, 60 * k, 100 * k, 1_000 * k)
    last, errors = last_log_id(), []

    def work():
        try:
            database.connect(reuse_if_open=True)
            while cursor() < last:
                collect(limit=7)
        except Exception as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert totals(svc) == (20 * 700, 20 * 7_000)


def test_collecting_outside_a_transaction_is_refused(svc):
    packet("s1", "Interim-Update", T0 + 300, 300, 10, 20)
    with pytest.raises(RuntimeError, match="transaction"):
        collect_samples()
    assert cursor() == 0


def test_usage_by_day_sums_every_source(svc):
    packet("s1", "Interim-Update", T0 + 300, 300, 10, 20)
    collect()
    UsageRecord.create(service=svc.id, source="netflow", external_id="nf-1", period_start=dt.datetime(2026, 3, 2, 12),
                       period_end=dt.datetime(2026, 3, 2, 13), bytes_in=1, bytes_out=2)
    UsageRecord.create(service=svc.id, source="netflow", external_id="nf-2", period_start=dt.datetime(2026, 3, 4, 1),
                       period_end=dt.datetime(2026, 3, 4, 2), bytes_in=5, bytes_out=5)
    assert usage_by_day(svc.id, MAR2, dt.date(2026, 3, 4)) == [(MAR2, 11, 22)]
    assert usage_by_day(svc.id, MAR2, dt.date(2026, 3, 5)) == [(MAR2, 11, 22), (dt.date(2026, 3, 4), 5, 5)]


# --- property: order, duplicates and batches never change the total ------------------------

_step = st.tuples(st.integers(1, 3_600), st.integers(0, 3 * GW), st.integers(0, 2 * GW))


def test_any_order_duplicates_and_batches_count_the_final_counters(svc):
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(steps=st.lists(_step, min_size=0, max_size=6), data=st.data(),
           start=st.integers(MIDNIGHT - 4 * 3_600, MIDNIGHT + 60))
    def check(steps, data, start):
        for table in ("radius_acct_log", "usage_record", "radius_usage_session", "radius_state"):
            database.execute_sql(f"DELETE FROM {table}")
        packets, st_, c_in, c_out = [("Start", 0, 0, 0)], 0, 0, 0
        for n, (dt_, d_in, d_out) in enumerate(steps):
            st_, c_in, c_out = st_ + dt_, c_in + d_in, c_out + d_out
            packets.append(("Stop" if n == len(steps) - 1 else "Interim-Update", st_, c_in, c_out))
        order = list(data.draw(st.permutations(range(len(packets)))))
        for index, where in data.draw(st.lists(st.tuples(st.integers(0, len(packets) - 1), st.integers(0, 50)),
                                               max_size=4)):
            order.insert(where % (len(order) + 1), index)
        for i in order:
            status, s_time, p_in, p_out = packets[i]
            packet("p1", status, start + s_time, s_time, p_in, p_out)
        limits = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=len(order)))
        for limit in limits:
            collect(limit)
        collect_all(limit=50)
        assert totals(svc) == (c_in, c_out)

    check()
