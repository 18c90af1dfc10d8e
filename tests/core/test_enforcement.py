"""The enforcement core against an in-memory enforcer: desired state, pushes, retries, reconcile as a diff.

The MikroTik plugin's own tests drive the lab router; these check the core's side of the
contract on both databases.
"""

from __future__ import annotations

import datetime as dt

import pytest

from core import enforcement, routers
from core.db import database
from core.hooktypes import ApplyResult, EnforcerInfo, SubscriberState
from core.models import Customer, DunningPolicy, Enforcement, Router, Service
from core import hookimpl
from tests.factories import make_plan, make_service

DAY = dt.date(2026, 3, 1)


class MemoryRouter:
    """An enforcer that keeps each router's subscribers in a dict and can be made to fail."""

    def __init__(self):
        self.held: dict[str, dict[str, SubscriberState]] = {}
        self.down: set[str] = set()
        self.refuse: set[str] = set()
        self.calls: list[tuple[str, list]] = []
        self.reads = 0

    @hookimpl
    def enforcer_describe(self):
        return EnforcerInfo("memory", "In-memory router")

    @hookimpl
    def enforcer_read_state(self, router):
        if router.kind != "memory":
            return None
        if router.name in self.down:
            raise ConnectionRefusedError("connection refused")
        self.reads += 1
        return list(self.held.get(router.name, {}).values())

    @hookimpl
    def enforcer_apply(self, router, changes):
        if router.kind != "memory":
            return None
        if router.name in self.down:
            raise TimeoutError("timed out")
        self.calls.append((router.name, list(changes)))
        table = self.held.setdefault(router.name, {})
        applied, failed = [], {}
        for change in changes:
            key = change.subscriber.key
            if key in self.refuse:
                failed[key] = "failure: input does not match any value of profile"
                continue
            if change.action == "remove":
                table.pop(key, None)
            else:
                table[key] = change.subscriber
            applied.append(key)
        return ApplyResult(applied=tuple(applied), failed=failed)

    def writes(self) -> int:
        return sum(len(changes) for _name, changes in self.calls)


@pytest.fixture
def memory(pm, db):
    plugin = MemoryRouter()
    pm.add(plugin, "memory", "test")
    return plugin


def _router(name="tower-1"):
    return routers.add(name=name, kind="memory", host="127.0.0.1")


def _bound(router, *, plan=None, customer=None, **network):
    service = make_service(customer=customer, plan=plan, status="active")
    network.setdefault("access", "pppoe")
    if network["access"] in ("pppoe", "hotspot"):
        network.setdefault("username", f"user{service.id}")
        network.setdefault("password", "s3cret")
    return routers.bind_service(service, router=router, **network)


def _set_state(customer, state):
    with database.atomic():
        Customer.update(state=state).where(Customer.id == customer.id).execute()
        return enforcement.refresh_customer(customer.id, DAY)


def _row(service) -> Enforcement:
    return Enforcement.get(Enforcement.service == service.id)


def test_binding_a_service_makes_it_pending_and_a_push_puts_it_on_the_router(memory):
    router = _router()
    service = _bound(router, ip_address="10.1.0.5")
    row = _row(service)
    assert row.desired_state == "active" and row.applied_state is None and row.next_attempt_at is not None

    result = enforcement.push_pending()
    held = memory.held["tower-1"][f"svc-{service.id}"]
    assert result.applied == [f"svc-{service.id}"] and not result.failed
    assert held == SubscriberState(f"svc-{service.id}", "active", "10.1.0.5", (10_000, 2_000),
                                   {"access": "pppoe", "username": f"user{service.id}", "password": "s3cret",
                                    "mac": None})
    row = _row(service)
    assert row.applied_state == "active" and row.next_attempt_at is None and row.attempts == 0
    assert enforcement.push_pending().applied == []  # nothing left to do


def test_account_states_map_to_router_states_and_throttle_never_exceeds_the_plan(memory):
    router = _router()
    slow_plan = make_plan(download_kbps=400, upload_kbps=100)
    service = _bound(router, plan=slow_plan)
    fast = _bound(router)
    key, fast_key = f"svc-{service.id}", f"svc-{fast.id}"

    assert _set_state(service.customer, "throttled") == [service.id]
    _set_state(fast.customer, "throttled")
    enforcement.push_pending()
    assert memory.held["tower-1"][key].state == "throttled"
    assert memory.held["tower-1"][key].rate == (400, 100)  # the policy's 512/256 would be faster
    assert memory.held["tower-1"][fast_key].rate == (512, 256)

    _set_state(service.customer, "suspended")
    enforcement.push_pending()
    assert memory.held["tower-1"][key].state == "suspended" and memory.held["tower-1"][key].rate == (400, 100)

    assert _set_state(service.customer, "reminded") == [service.id]  # reminded still has access
    enforcement.push_pending()
    assert memory.held["tower-1"][key].state == "active"
    assert _set_state(service.customer, "active") == []  # same router state: nothing to push

    _set_state(service.customer, "terminated")
    enforcement.push_pending()
    assert key not in memory.held["tower-1"] and _row(service).applied_state == "removed"


def test_a_customer_policy_sets_the_throttle_rate(memory):
    router = _router()
    service = _bound(router)
    gentle = DunningPolicy.create(name="gentle", throttle_download_kbps=2_000, throttle_upload_kbps=1_000)
    Customer.update(dunning_policy=gentle).where(Customer.id == service.customer_id).execute()
    _set_state(service.customer, "throttled")
    enforcement.push_pending()
    assert memory.held["tower-1"][f"svc-{service.id}"].rate == (2_000, 1_000)


def test_access_state_rules():
    a = enforcement.access_state
    assert a("active", "postpaid", None, None, "active", DAY) == "active"
    assert a("active", "postpaid", None, None, "terminated", DAY) == "removed"
    assert a("cancelled", "postpaid", None, None, "active", DAY) == "removed"
    assert a("pending", "postpaid", None, None, "active", DAY) == "removed"
    assert a("active", "postpaid", DAY, None, "active", DAY) == "removed"  # end date is the first day without
    assert a("active", "postpaid", DAY + dt.timedelta(days=1), None, "active", DAY) == "active"
    assert a("suspended", "postpaid", None, None, "active", DAY) == "suspended"
    assert a("active", "prepaid", None, DAY, "active", DAY) == "suspended"  # paid up to yesterday
    assert a("active", "prepaid", None, DAY + dt.timedelta(days=1), "active", DAY) == "active"
    assert a("active", "prepaid", None, DAY + dt.timedelta(days=1), "throttled", DAY) == "throttled"
    assert a("active", "postpaid", None, DAY, "active", DAY) == "active"  # paid_through only counts for prepaid


def test_an_expired_prepaid_service_is_suspended_and_renewed_when_paid_through_moves(memory):
    router = _router()
    service = _bound(router, access="static", ip_address="10.1.0.9")
    Service.update(billing_mode="prepaid", paid_through=DAY).where(Service.id == service.id).execute()
    with database.atomic():
        assert enforcement.refresh_services([service.id], DAY) == [service.id]
    enforcement.push_pending()
    assert memory.held["tower-1"][f"svc-{service.id}"].state == "suspended"
    Service.update(paid_through=DAY + dt.timedelta(days=30)).where(Service.id == service.id).execute()
    with database.atomic():
        enforcement.refresh_services([service.id], DAY)
    enforcement.push_pending()
    assert memory.held["tower-1"][f"svc-{service.id}"].state == "active"


def test_an_unreachable_router_keeps_changes_pending_with_backoff_and_they_land_when_it_returns(memory):
    router = _router()
    service = _bound(router, access="dhcp", ip_address="10.1.0.7")
    memory.down.add("tower-1")

    result = enforcement.push_pending()
    assert result.applied == [] and "tower-1" in result.unreachable
    row = _row(service)
    assert row.attempts == 1 and "router unreachable" in row.last_error
    first_wait = row.next_attempt_at
    assert Router.get_by_id(router.id).last_error.startswith("router unreachable")
    assert [e.service_id for e in enforcement.pending()] == [service.id]

    assert enforcement.push_pending().applied == []  # not due yet: no second attempt
    assert _row(service).attempts == 1
    enforcement.push_pending(now=first_wait + dt.timedelta(seconds=1))
    second = _row(service)
    assert second.attempts == 2 and second.next_attempt_at - first_wait > dt.timedelta(seconds=5)

    memory.down.clear()
    result = enforcement.push_pending(now=second.next_attempt_at + dt.timedelta(seconds=1))
    assert result.applied == [f"svc-{service.id}"]
    assert _row(service).attempts == 0 and _row(service).last_error is None
    assert Router.get_by_id(router.id).last_error is None
    assert enforcement.pending() == []


def test_a_change_the_router_refuses_fails_alone(memory):
    router = _router()
    good, bad = _bound(router), _bound(router)
    memory.refuse.add(f"svc-{bad.id}")
    result = enforcement.push_pending()
    assert result.applied == [f"svc-{good.id}"]
    assert result.failed == {f"svc-{bad.id}": "failure: input does not match any value of profile"}
    assert _row(bad).attempts == 1 and "input does not match" in _row(bad).last_error
    assert _row(good).next_attempt_at is None


def test_reconcile_is_a_diff_and_a_second_pass_writes_nothing(memory):
    router = _router()
    services = [_bound(router) for _ in range(5)]
    memory.held["tower-1"] = {"svc-9999": SubscriberState("svc-9999", "suspended")}  # left over: not wanted

    first = enforcement.reconcile(router, DAY)
    assert first.error is None and first.desired == 5 and first.read == 1 and first.changes == 6
    assert set(memory.held["tower-1"]) == {f"svc-{s.id}" for s in services}
    assert enforcement.pending() == []
    writes = memory.writes()

    second = enforcement.reconcile(router, DAY)
    assert second.changes == 0 and second.read == 5 and memory.writes() == writes

    _set_state(services[0].customer, "suspended")
    third = enforcement.reconcile(router, DAY)
    assert third.changes == 1 and memory.writes() == writes + 1
    assert Router.get_by_id(router.id).last_reconcile_at is not None


def test_reconcile_repairs_a_router_that_lost_its_state(memory):
    router = _router()
    services = [_bound(router) for _ in range(3)]
    enforcement.push_pending()
    memory.held["tower-1"].clear()  # rebooted without its lists

    repaired = enforcement.reconcile(router, DAY)
    assert repaired.changes == 3 and len(memory.held["tower-1"]) == 3
    assert {k for k in memory.held["tower-1"]} == {f"svc-{s.id}" for s in services}


def test_reconcile_of_an_unreachable_router_reports_and_changes_nothing(memory):
    router = _router()
    _bound(router)
    memory.down.add("tower-1")
    result = enforcement.reconcile(router, DAY)
    assert result.error.startswith("router unreachable") and result.changes == 0
    assert Router.get_by_id(router.id).last_reconcile_at is None
    assert len(enforcement.pending()) == 1


def test_a_dry_run_counts_changes_without_making_them(memory):
    router = _router()
    _bound(router)
    result = enforcement.reconcile(router, DAY, dry_run=True)
    assert result.changes == 1 and memory.calls == []


def test_moving_a_service_takes_it_off_the_old_router(memory):
    one, two = _router("tower-1"), _router("tower-2")
    service = _bound(one)
    enforcement.push_pending()
    routers.bind_service(service, router=two)
    enforcement.push_pending()
    assert f"svc-{service.id}" not in memory.held["tower-1"]
    assert f"svc-{service.id}" in memory.held["tower-2"]

    routers.bind_service(Service.get_by_id(service.id), unbind=True)
    enforcement.push_pending()
    assert f"svc-{service.id}" not in memory.held["tower-2"]
    assert _row(service).applied_state == "removed"


def test_a_change_made_while_a_push_was_on_its_way_stays_pending(memory):
    router = _router()
    service = _bound(router)
    customer = service.customer

    class Meddler(MemoryRouter):
        @hookimpl
        def enforcer_describe(self):
            return EnforcerInfo("meddling", "Changes billing mid-push")

        @hookimpl
        def enforcer_apply(self, router, changes):
            if router.kind != "meddling":
                return None
            _set_state(customer, "suspended")  # a dunning step lands between read and write
            return ApplyResult(applied=tuple(c.subscriber.key for c in changes))

    from core.plugins import get_manager

    get_manager().add(Meddler(), "meddler", "test")
    Router.update(kind="meddling").where(Router.id == router.id).execute()
    enforcement.push_pending()
    row = _row(service)
    assert row.desired_state == "suspended" and row.next_attempt_at is not None  # still to push


def test_binding_refuses_bad_network_details_and_writes_nothing(memory):
    router = _router()
    service = make_service(status="active")
    from core.errors import NotFound, ValidationError

    with pytest.raises(ValidationError, match="needs a username"):
        routers.bind_service(service, router=router, access="pppoe")
    with pytest.raises(ValidationError, match="needs the subscriber's IP address"):
        routers.bind_service(service, router=router, access="dhcp")
    with pytest.raises(ValidationError, match="not an IP address"):
        routers.bind_service(service, router=router, access="static", ip_address="10.0.0.300")
    with pytest.raises(ValidationError, match="not a MAC address"):
        routers.bind_service(service, router=router, access="static", ip_address="10.0.0.3", mac_address="zz")
    with pytest.raises(NotFound):
        routers.bind_service(service, router="nowhere", access="static", ip_address="10.0.0.3")
    assert Service.get_by_id(service.id).router_id is None
    assert Enforcement.select().count() == 0


def test_routers_add_refuses_unknown_kinds_bad_names_and_duplicates(memory):
    from core.errors import ValidationError

    _router("tower-1")
    with pytest.raises(ValidationError, match="no enforcer for router kind 'cisco'"):
        routers.add(name="edge", kind="cisco", host="127.0.0.1")
    with pytest.raises(ValidationError, match="router name"):
        routers.add(name="bad name", kind="memory", host="127.0.0.1")
    with pytest.raises(ValidationError, match="already exists"):
        routers.add(name="tower-1", kind="memory", host="127.0.0.1")
    with pytest.raises(ValidationError, match="port"):
        routers.add(name="edge", kind="memory", host="127.0.0.1", port="99999")
    assert Router.select().count() == 1
    assert "secret" not in routers.as_dict(Router.get())


def test_service_events_refresh_and_push(memory):
    router = _router()
    service = _bound(router)
    enforcement.push_pending()
    Service.update(status="cancelled").where(Service.id == service.id).execute()
    from core.hooktypes import DomainEvent
    from core.plugins import get_manager
    from core.clock import utcnow

    get_manager().hook.handle_event(event=DomainEvent(1, "service.cancelled", {"service_id": service.id},
                                                      utcnow()))
    assert f"svc-{service.id}" not in memory.held["tower-1"]


def test_a_stale_push_that_lands_after_a_newer_one_is_pushed_again(memory):
    router = _router()
    service = _bound(router)
    customer = service.customer

    class Overtaken(MemoryRouter):
        @hookimpl
        def enforcer_describe(self):
            return EnforcerInfo("overtaken", "Overtaken by another pusher")

        @hookimpl
        def enforcer_apply(self, router, changes):
            if router.kind != "overtaken":
                return None
            # Another process changes the account and pushes the newer state first.
            _set_state(customer, "suspended")
            row = _row(service)
            Enforcement.update(applied_state=row.desired_state, next_attempt_at=None).where(
                Enforcement.id == row.id).execute()
            return ApplyResult(applied=tuple(c.subscriber.key for c in changes))  # then the old state lands

    from core.plugins import get_manager

    get_manager().add(Overtaken(), "overtaken", "test")
    Router.update(kind="overtaken").where(Router.id == router.id).execute()
    enforcement.push_pending()
    row = _row(service)
    assert row.desired_state == "suspended" and row.next_attempt_at is not None  # the newest goes out again


def test_a_failure_of_an_old_state_does_not_delay_a_newer_one(memory):
    router = _router()
    service = _bound(router)
    customer = service.customer

    class FailsLate(MemoryRouter):
        @hookimpl
        def enforcer_describe(self):
            return EnforcerInfo("fails_late", "Fails after a change")

        @hookimpl
        def enforcer_apply(self, router, changes):
            if router.kind != "fails_late":
                return None
            _set_state(customer, "suspended")
            return ApplyResult(failed={c.subscriber.key: "busy" for c in changes})

    from core.plugins import get_manager

    get_manager().add(FailsLate(), "fails_late", "test")
    Router.update(kind="fails_late").where(Router.id == router.id).execute()
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    enforcement.push_pending()
    row = _row(service)
    assert row.attempts == 0 and row.next_attempt_at <= before + dt.timedelta(seconds=1)  # due now, no backoff


def test_a_dry_run_writes_nothing_to_the_database_either(memory):
    router = _router()
    service = _bound(router)
    enforcement.push_pending()
    Customer.update(state="suspended").where(Customer.id == service.customer_id).execute()  # not refreshed
    result = enforcement.reconcile(router, DAY, dry_run=True)
    assert result.changes == 1
    row = _row(service)
    assert row.desired_state == "active" and row.next_attempt_at is None
    assert Router.get_by_id(router.id).last_reconcile_at is None


def test_reconcile_all_goes_on_past_a_router_without_an_enforcer(memory):
    broken = routers.add(name="a-broken", kind="memory", host="127.0.0.1")
    Router.update(kind="gone").where(Router.id == broken.id).execute()
    good = _router("b-good")
    _bound(good)
    results = {r.router: r for r in enforcement.reconcile_all(DAY)}
    assert "no enforcer" in results["a-broken"].error
    assert results["b-good"].error is None and results["b-good"].changes == 1


def test_a_targeted_push_leaves_a_failing_router_to_the_retry_job(memory):
    down, up = _router("tower-down"), _router("tower-up")
    slow, fast = _bound(down), _bound(up)
    memory.down.add("tower-down")
    enforcement.push_pending()  # the retry job finds tower-down unreachable
    calls = len(memory.calls)
    result = enforcement.push_pending([slow.id, fast.id], now=_row(slow).next_attempt_at + dt.timedelta(seconds=1))
    assert result.unreachable == {} and len(memory.calls) == calls  # tower-down not tried again by the event
    assert _row(fast).next_attempt_at is None


def test_rows_of_an_inactive_router_are_not_pushed(memory):
    off = _router("tower-off")
    service = _bound(off)
    Router.update(active=False).where(Router.id == off.id).execute()
    assert enforcement.push_pending().applied == [] and memory.calls == []
    assert _row(service).attempts == 0


class TableRouter:
    """A transactional enforcer: it keeps subscribers in a table of this database, as an AAA server's tables."""

    def __init__(self):
        self.fail_next = False
        self.in_transaction: list[bool] = []

    @hookimpl
    def enforcer_describe(self):
        return EnforcerInfo("table", "Subscribers in a table", transactional=True)

    @hookimpl
    def enforcer_read_state(self, router):
        if router.kind != "table":
            return None
        rows = database.obj.execute_sql("SELECT key, state FROM t_aaa").fetchall()
        return [SubscriberState(key, state) for key, state in rows]

    @hookimpl
    def enforcer_apply(self, router, changes):
        if router.kind != "table":
            return None
        self.in_transaction.append(database.in_transaction())
        p = database.obj.param
        with database.atomic():
            for change in changes:
                key = change.subscriber.key
                database.obj.execute_sql(f"DELETE FROM t_aaa WHERE key = {p}", (key,))
                if change.action == "set":
                    database.obj.execute_sql(f"INSERT INTO t_aaa (key, state) VALUES ({p}, {p})",
                                             (key, change.subscriber.state))
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("the table refused the write")
        return ApplyResult(applied=tuple(c.subscriber.key for c in changes))


@pytest.fixture
def table(pm, db):
    db.execute_sql("CREATE TABLE t_aaa (key VARCHAR(40) PRIMARY KEY, state VARCHAR(20))")
    plugin = TableRouter()
    pm.add(plugin, "table", "test")
    return plugin


def _table_rows():
    return dict(database.obj.execute_sql("SELECT key, state FROM t_aaa").fetchall())


def test_a_transactional_enforcer_is_applied_inside_the_change_and_rolls_back_with_it(table):
    router = routers.add(name="aaa", kind="table", host="127.0.0.1")
    service = _bound(router)
    key = f"svc-{service.id}"
    assert _table_rows() == {key: "active"} and table.in_transaction == [True]
    assert _row(service).next_attempt_at is None and _row(service).applied_state == "active"

    with pytest.raises(RuntimeError, match="payment failed"):
        with database.atomic():
            Customer.update(state="suspended").where(Customer.id == service.customer_id).execute()
            enforcement.refresh_customer(service.customer_id, DAY)
            assert _table_rows() == {key: "suspended"}
            raise RuntimeError("payment failed")
    assert _table_rows() == {key: "active"} and _row(service).desired_state == "active"


def test_a_failing_transactional_apply_keeps_the_change_and_leaves_the_row_pending(table):
    router = routers.add(name="aaa", kind="table", host="127.0.0.1")
    service = _bound(router)
    key = f"svc-{service.id}"
    table.fail_next = True
    _set_state(Customer.get_by_id(service.customer_id), "suspended")  # commits: the account change is kept
    assert Customer.get_by_id(service.customer_id).state == "suspended"
    assert _table_rows() == {key: "active"}  # the enforcer's half-done write was rolled back alone
    row = _row(service)
    assert row.next_attempt_at is not None and "the table refused the write" in row.last_error

    result = enforcement.push_pending(now=row.next_attempt_at)  # the retry job, outside any transaction
    assert result.applied == [key] and table.in_transaction[-1] is False
    assert _table_rows() == {key: "suspended"} and _row(service).next_attempt_at is None
