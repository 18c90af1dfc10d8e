"""``wispbill routers`` and ``services network`` against the lab router: the commands as an operator types them."""

from __future__ import annotations

import json

import pytest

from appliance.lab.server import LabRouter
from core import settings
from core.db import connection
from core.models import AuditEvent, Enforcement, Router, Service
from plugins.mikrotik import connection as mikrotik_connection
from tests.factories import make_service


@pytest.fixture
def lab():
    router = LabRouter(users={"billing": "tower-secret"}, identity="tower-1-core").start(port=0)
    yield router
    mikrotik_connection.close_all()
    router.stop()


@pytest.fixture
def tower(cli, lab, monkeypatch):
    monkeypatch.setenv("TOWER_PW", "tower-secret")
    result = cli("routers", "add", "tower-1", "--kind", "mikrotik", "--host", "127.0.0.1", "--port", str(lab.port),
                 "--username", "billing", "--password-env", "TOWER_PW", "--option", "timeout_seconds=2")
    assert result.exit_code == 0, result.output
    return result


def test_add_list_and_test_a_router_without_ever_showing_its_password(db, cli, lab, tower):
    assert f"added router tower-1 (mikrotik at 127.0.0.1:{lab.port})" in tower.output
    listed = cli("routers", "list", "--json")
    rows = json.loads(listed.output)
    assert [r["name"] for r in rows] == ["tower-1"] and rows[0]["options"] == {"timeout_seconds": "2"}
    assert "tower-secret" not in listed.output and "secret" not in rows[0]
    assert "tower-secret" not in cli("routers", "list").output
    with connection():
        audit = AuditEvent.get(AuditEvent.action == "router.create")
        assert "tower-secret" not in json.dumps(audit.after)

    checked = cli("routers", "test", "tower-1")
    assert checked.exit_code == 0 and checked.output.startswith("tower-1: tower-1-core, version 7.18")


def test_refusals_exit_2_and_write_nothing(db, cli, lab, monkeypatch):
    monkeypatch.delenv("NOPE", raising=False)
    cases = [
        (["routers", "add", "edge", "--kind", "cisco", "--host", "127.0.0.1", "--no-password"], "no enforcer"),
        (["routers", "add", "edge", "--kind", "mikrotik", "--host", "127.0.0.1", "--port", "70000",
          "--no-password"], "port"),
        (["routers", "add", "edge", "--kind", "mikrotik", "--host", "127.0.0.1", "--password-env", "NOPE"],
         "NOPE is not set"),
        (["routers", "add", "bad name", "--kind", "mikrotik", "--host", "127.0.0.1", "--no-password"], "router name"),
        (["routers", "add", "edge", "--kind", "mikrotik", "--host", "127.0.0.1", "--no-password", "--option", "x"],
         "NAME=VALUE"),
        (["routers", "test", "nowhere"], "no router 'nowhere'"),
        (["routers", "reconcile"], "name one router"),
        (["services", "network", "abc", "--router", "x"], "not a service id"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    with connection():
        assert Router.select().count() == 0


def test_unreachable_and_refused_routers_exit_1_with_one_line(db, cli, lab, tower, monkeypatch):
    lab.stop()
    down = cli("routers", "test", "tower-1")
    assert down.exit_code == 1 and "cannot be reached" in down.output and "Traceback" not in down.output
    lab.start()
    monkeypatch.setenv("WRONG", "guess")
    cli("routers", "add", "tower-2", "--kind", "mikrotik", "--host", "127.0.0.1", "--port", str(lab.port),
        "--username", "billing", "--password-env", "WRONG")
    refused = cli("routers", "test", "tower-2")
    assert refused.exit_code == 1 and "invalid user name or password" in refused.output


def test_bind_reconcile_and_pending(db, cli, lab, tower, monkeypatch):
    with connection():
        service = make_service(status="active")
    monkeypatch.setenv("PPP_PW", "ppp-secret")
    bound = cli("services", "network", str(service.id), "--router", "tower-1", "--access", "pppoe",
                "--username", "amina", "--password-env", "PPP_PW", "--json")
    assert bound.exit_code == 0, bound.output
    assert json.loads(bound.output)["router"] == "tower-1" and "ppp-secret" not in bound.output
    pending = json.loads(cli("routers", "pending", "--json").output)
    assert [p["service_id"] for p in pending] == [service.id] and pending[0]["desired_state"] == "active"

    dry = cli("routers", "reconcile", "tower-1", "--dry-run")
    assert dry.exit_code == 0 and "would change 1" in dry.output and lab.rows("/ppp/secret") == []
    first = cli("routers", "reconcile", "tower-1")
    assert first.exit_code == 0 and "changed 1" in first.output
    assert [s["name"] for s in lab.rows("/ppp/secret")] == ["amina"]
    again = cli("routers", "reconcile", "--all", "--json")
    assert json.loads(again.output)[0]["changes"] == 0
    assert json.loads(cli("routers", "pending", "--json").output) == []

    refused = cli("services", "network", str(service.id), "--access", "dhcp")
    assert refused.exit_code == 2 and "needs the subscriber's IP address" in refused.output
    with connection():
        assert Service.get_by_id(service.id).access == "pppoe"
        assert Enforcement.get(Enforcement.service == service.id).next_attempt_at is None


def test_a_reconcile_that_cannot_reach_its_router_exits_1(db, cli, lab, tower):
    lab.stop()
    result = cli("routers", "reconcile", "tower-1")
    assert result.exit_code == 1 and "not reconciled: router unreachable" in result.output


def test_script_needs_the_portal_address_then_prints_the_redirect(db, cli, lab, tower):
    missing = cli("routers", "script", "tower-1")
    assert missing.exit_code == 2 and "web.portal_url" in missing.output
    assert cli("settings", "set", "web.portal_url", "http://billing.example.net:8081").exit_code == 2
    for sneaky in ("http://10.0.0.2:8081#\n/ip firewall filter remove [find]\n#", "http://10.0.0.2:8081/?x=1",
                   "http://admin:pw@10.0.0.2:8081", "http://10.0.0.2:8081/ tail"):
        refused = cli("settings", "set", "web.portal_url", sneaky)
        assert refused.exit_code == 2, sneaky
    assert cli("settings", "set", "web.portal_url", "http://10.0.0.2:8081/").exit_code == 0
    script = cli("routers", "script", "tower-1")
    assert script.exit_code == 0
    assert "to-addresses=10.0.0.2" in script.output and "to-ports=8081" in script.output
    assert "checkout.stripe.com" in script.output  # the walled garden of the built-in gateways
    assert "remove [find]" not in script.output
    with connection():
        assert settings.get("web.portal_url") == "http://10.0.0.2:8081"
