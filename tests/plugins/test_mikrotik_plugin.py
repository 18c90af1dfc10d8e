"""The MikroTik enforcer as a plugin: registration, settings, router options, setup script, CLI."""

from __future__ import annotations

import re
import sys

import click
import pytest
from click.testing import CliRunner

from core import enforcers
from core.errors import ValidationError
from core.hooktypes import SetupContext
from core.models import Router
from plugins import mikrotik
from plugins.mikrotik import settings as mk_settings

CONTEXT = SetupContext(portal_url="http://192.0.2.10:8080/suspended", portal_address="192.0.2.10", portal_port=8080,
                       walled_garden=("checkout.stripe.com", "api.safaricom.co.ke", "bad host; /system reboot"))


def make_router(**fields):
    values = {"name": "core-1", "kind": "mikrotik", "host": "192.0.2.1", "username": "api", "secret": "pw"}
    values.update(fields)
    return Router(**values)


def test_the_plugin_is_built_in_and_drives_mikrotik_routers(pm):
    assert enforcers.available(pm)["mikrotik"].label == "MikroTik RouterOS (API)"
    info = {p.name: p for p in pm.report()}["mikrotik"]
    assert info.source == "builtin"
    assert {"enforcer_describe", "enforcer_read_state", "enforcer_apply", "enforcer_check",
            "enforcer_setup_script", "register_settings", "register_commands"} <= set(info.hooks)
    assert not [f for f in pm.failures if f.name == "mikrotik"]


def test_settings_are_declared_and_checked():
    specs = {spec.key: spec for spec in mikrotik.register_settings()}
    assert specs["mikrotik.suspend_list"].default == "wispbill-suspended"
    assert specs["mikrotik.timeout_seconds"].default == 5.0
    assert specs["mikrotik.suspend_list"].parse(" late-payers ") == "late-payers"
    assert specs["mikrotik.timeout_seconds"].parse("0.5") == 0.5
    for bad in ("", "two words", "x" * 64, "semi;colon"):
        with pytest.raises(ValueError):
            specs["mikrotik.suspend_list"].parse(bad)
    for bad in ("soon", "0", "121"):
        with pytest.raises(ValueError):
            specs["mikrotik.timeout_seconds"].parse(bad)


def test_global_settings_apply_unless_a_router_overrides_them(db, pm):
    from core import settings

    settings.set_value("mikrotik.suspend_list", "late-payers")
    settings.set_value("mikrotik.timeout_seconds", "7.5")
    config = mk_settings.router_config(make_router())
    assert (config.layout.suspend_list, config.timeout) == ("late-payers", 7.5)
    config = mk_settings.router_config(make_router(options={"suspend_list": "cut-off", "timeout_seconds": 1}))
    assert (config.layout.suspend_list, config.timeout) == ("cut-off", 1.0)
    with pytest.raises(ValidationError):
        settings.set_value("mikrotik.suspend_list", "not a list")


def test_router_options_and_ports():
    plain = mk_settings.router_config(make_router(options={"suspend_list": "x", "timeout_seconds": 3}))
    assert (plain.port, plain.use_tls, plain.username, plain.password) == (8728, False, "api", "pw")
    tls = mk_settings.router_config(make_router(use_tls=True, options={"suspend_list": "x", "timeout_seconds": 3}))
    assert (tls.port, tls.use_tls, tls.tls_verify) == (8729, True, False)
    pinned = mk_settings.router_config(make_router(port=18729, use_tls=True, options={
        "suspend_list": "x", "timeout_seconds": 3, "tls_ca_file": "/etc/ssl/router.pem",
        "ppp_profile": {"local-address": "10.255.0.1", "dns-server": "1.1.1.1"}}))
    assert (pinned.port, pinned.tls_verify, pinned.tls_ca_file) == (18729, True, "/etc/ssl/router.pem")
    assert pinned.layout.profile_base == (("dns-server", "1.1.1.1"), ("local-address", "10.255.0.1"))
    # Options given on the command line (wispbill routers add --option NAME=VALUE) arrive as text.
    typed = mk_settings.router_config(make_router(use_tls=True, options={
        "suspend_list": "x", "timeout_seconds": "2.5", "tls_verify": "false",
        "ppp_profile": "local-address=10.255.0.1; dns-server=1.1.1.1,8.8.8.8"}))
    assert (typed.timeout, typed.tls_verify) == (2.5, False)
    assert typed.layout.profile_base == (("dns-server", "1.1.1.1,8.8.8.8"), ("local-address", "10.255.0.1"))
    for options in ({"ppp_profile": {"rate-limit": "1M/1M"}}, {"ppp_profile": "fast"}, {"suspend_list": "a b"},
                    {"timeout_seconds": 0}, {"tls_verify": "maybe"}, {"ppp_profile": 3}):
        with pytest.raises(ValueError):
            mk_settings.router_config(make_router(options={"suspend_list": "x", "timeout_seconds": 3, **options}))


def _script(**options) -> str:
    router = make_router(options={"suspend_list": "late-payers", "timeout_seconds": 3, **options})
    return mikrotik.enforcer_setup_script(router=router, context=CONTEXT)


_GUARD = re.compile(r"^:if \(\[:len \[find (?P<find>.+?)\]\] = 0\) do=\{ (?P<body>.*) \}$")


def _words(text: str) -> set[str]:
    return set(re.findall(r'[a-z-]+=(?:"[^"]*"|\S+)', text))


def test_hook_enforcer_setup_script(pm):
    router = make_router(options={"suspend_list": "late-payers", "timeout_seconds": 3})
    plugin, text = pm.call_first("enforcer_setup_script", router=router, context=CONTEXT)
    assert plugin == "mikrotik" and text == _script()
    assert pm.call_first("enforcer_setup_script", router=make_router(kind="snmp"), context=CONTEXT) == (None, None)

    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    menus = [line for line in lines if line.startswith("/")]
    assert menus == ["/ip firewall address-list", "/ip firewall nat", "/ip firewall filter", "/ppp profile"]
    commands = [line for line in lines if not line.startswith("/")]
    # Pasted twice, nothing is added twice: every add is guarded by a find of what it adds.
    for line in commands:
        match = _GUARD.match(line)
        assert match, line
        assert _words(match["find"]) <= _words(match["body"]), line
    comments = re.findall(r'comment=("[^"]*"|\S+)', text)
    assert comments and all(c.strip('"').startswith("wispbill") for c in comments)

    nat = next(line for line in commands if "action=dst-nat" in line)
    for word in ("chain=dstnat", "src-address-list=late-payers", "protocol=tcp", "dst-port=80",
                 "to-addresses=192.0.2.10", "to-ports=8080", "dst-address-list=!wispbill-garden"):
        assert word in nat
    assert "place-before=[:pick $top 0]" in nat  # above the operator's own dst-nat rules

    filters = commands[commands.index(nat) + 1:]
    drop = filters[0]
    assert "chain=forward src-address-list=late-payers action=drop" in drop
    assert "place-before=[:pick $top 0]" in drop  # above fasttrack
    accepts = [line for line in filters[1:] if "action=accept" in line]
    assert len(accepts) == 4
    assert all('place-before=[find comment="wispbill: suspended: drop the rest"]' in line for line in accepts)
    assert any("protocol=udp dst-port=53" in line for line in accepts)
    assert any("protocol=tcp dst-port=53" in line for line in accepts)
    assert any("dst-address=192.0.2.10 action=accept" in line for line in accepts)
    assert any("dst-address-list=wispbill-garden action=accept" in line for line in accepts)

    garden = [line for line in commands if "list=wispbill-garden address=" in line]
    hosts = [re.search(r"add list=wispbill-garden address=(\S+)", line)[1] for line in garden]
    assert hosts == ["checkout.stripe.com", "api.safaricom.co.ke"]
    assert "reboot" not in "\n".join(commands)  # a host that is not a host name stays out of the commands
    assert "# not a host name, left out of the walled garden: 'bad host; /system reboot'" in text

    profiles = [line for line in commands if "add name=wispbill-" in line]
    assert any("name=wispbill-suspended comment=wispbill address-list=late-payers" in line for line in profiles)
    assert any("name=wispbill-unlimited" in line for line in profiles)


def test_setup_script_profiles_carry_the_routers_base_attributes():
    text = _script(ppp_profile={"local-address": "10.255.0.1", "remote-address": "pppoe pool"})
    line = next(line for line in text.splitlines() if "add name=wispbill-suspended" in line)
    assert "local-address=10.255.0.1" in line and 'remote-address="pppoe pool"' in line


def test_register_commands_adds_the_lab_group_and_the_bench():
    group = click.Group("root")
    group.add_command(click.Group("bench"))
    mikrotik.register_commands(cli=group)
    assert "lab" in group.commands and "enforce" in group.commands["bench"].commands
    result = CliRunner().invoke(group, ["lab", "router", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_register_commands_without_the_lab_adds_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "appliance.lab.cli", None)  # import fails as if not installed
    group = click.Group("root")
    mikrotik.register_commands(cli=group)
    assert "lab" not in group.commands


def test_script_strings_stay_on_one_line_whatever_they_hold():
    from plugins.mikrotik.script import _quote

    assert _quote('a "b" $c\\d') == '"a \\"b\\" \\$c\\\\d"'
    sneaky = _quote("x\n/ip firewall filter remove [find]\r\t?\x01")
    assert "\n" not in sneaky and "\r" not in sneaky
    assert sneaky == '"x\\n/ip firewall filter remove [find]\\r\\t\\?\\01"'
