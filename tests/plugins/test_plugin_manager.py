"""The plugin manager in-process: loading, refusing, blocking, calling and reporting plugins.

Nothing is installed here; plugins are the built-in modules or small objects defined in
the tests. ``tests/plugins/test_external_plugin.py`` covers real installed distributions.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from core import __version__, hookimpl, notify
from core.errors import NotFound, PluginError, ValidationError
from core.hooktypes import Delivery, Message, SettingSpec
from core.plugins import BUILTIN_PLUGINS, ENTRY_POINT_GROUP, PluginManager, build_manager

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def names(pm) -> set[str]:
    """Names of the registered plugins (pluggy also lists blocked names, with ``None``)."""
    return {name for name, plugin in pm.list_name_plugin() if plugin is not None}


def message(channel="log") -> Message:
    return Message(channel=channel, to="+254700000001", subject="Invoice INV-1", body="KES 2,500.00 due")


class Notifier:
    """A plugin that delivers ``channel`` (or every channel with ``None``) under ``name``."""

    def __init__(self, name, channel=None):
        self.name, self.channel = name, channel

    @hookimpl
    def notify(self, message):
        if self.channel is not None and message.channel != self.channel:
            return None
        return Delivery(notifier=self.name, reference=message.to)


class Raising:
    """A plugin whose ``notify`` and ``register_settings`` raise ``error``."""

    def __init__(self, error):
        self.error = error

    @hookimpl
    def notify(self, message):
        raise self.error

    @hookimpl
    def register_settings(self):
        raise self.error


class Declares:
    """A plugin declaring settings ``keys`` (or answering ``None`` when ``keys`` is None)."""

    def __init__(self, *keys):
        self.keys = keys

    @hookimpl
    def register_settings(self):
        if not self.keys:
            return None
        return [SettingSpec(key, key) for key in self.keys]


class Silent:
    """A notifier that never answers."""

    @hookimpl
    def notify(self, message):
        return None


# --- loading -----------------------------------------------------------------------

def test_builtins_load_with_their_source_and_version():
    pm = build_manager(entry_points=False)

    assert {"company_settings", "log_notifier"} <= names(pm)
    assert pm.sources["log_notifier"] == ("builtin", __version__)
    assert pm.failures == []


def test_builtin_that_fails_to_import_is_reported_and_the_others_load():
    pm = build_manager(builtins=("plugins.log_notifier", "plugins.does_not_exist", "plugins.company_settings"),
                       entry_points=False)

    assert [(f.name, f.source) for f in pm.failures] == [("does_not_exist", "builtin")]
    assert pm.failures[0].error.startswith("import failed: ModuleNotFoundError:")
    assert "plugins.does_not_exist" in pm.failures[0].error
    assert {"log_notifier", "company_settings"} <= names(pm)
    assert "does_not_exist" not in names(pm)
    assert notify.send(message("log"), pm=pm).notifier == "log_notifier"


def test_module_that_raises_while_importing_is_reported(monkeypatch):
    # The broken fixture's source directory on sys.path: its module raises ImportError itself.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # keep the fixture tree clean
    monkeypatch.syspath_prepend(str(FIXTURES / "wispbill-broken-plugin"))
    pm = build_manager(builtins=("wispbill_broken_plugin", "plugins.log_notifier"), entry_points=False)

    assert [f.name for f in pm.failures] == ["wispbill_broken_plugin"]
    assert "import failed: ImportError: " in pm.failures[0].error
    assert "frobnicator" in pm.failures[0].error
    assert "wispbill_broken_plugin" not in sys.modules
    assert "log_notifier" in names(pm)


def test_misspelt_hook_is_refused_with_a_failure_naming_the_hook():
    class Misspelt:
        @hookimpl
        def notfiy(self, message):
            return Delivery(notifier="misspelt")

        @hookimpl
        def register_settings(self):
            return [SettingSpec("misspelt.enabled", "enabled")]

    pm = PluginManager()

    assert pm.add(Misspelt(), "misspelt", "test") is False
    assert len(pm.failures) == 1
    failure = pm.failures[0]
    assert (failure.name, failure.source) == ("misspelt", "test")
    assert "unknown hook" in failure.error and "notfiy" in failure.error
    assert "register_settings" not in failure.error
    assert not pm.has_plugin("misspelt")
    # Refused as a whole: its valid hook is not called either.
    assert pm.call_all("register_settings") == ([], [])


def test_hook_with_wrong_arguments_is_refused():
    class WrongArgs:
        @hookimpl
        def notify(self, msg):  # the hook's argument is called ``message``
            return None

    pm = PluginManager()

    assert pm.add(WrongArgs(), "wrong_args", "test") is False
    assert [f.name for f in pm.failures] == ["wrong_args"]
    assert "msg" in pm.failures[0].error
    assert not pm.has_plugin("wrong_args")


def test_second_plugin_with_the_same_name_is_refused():
    pm = PluginManager()

    assert pm.add(Notifier("first"), "twin", "test") is True
    assert pm.add(Notifier("second"), "twin", "test") is False
    assert [f.name for f in pm.failures] == ["twin"]
    assert notify.send(message(), pm=pm).notifier == "first"


def test_entry_point_named_like_a_builtin_is_refused(monkeypatch):
    clash = importlib.metadata.EntryPoint(name="log_notifier", value="plugins.company_settings",
                                          group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [clash] if group == ENTRY_POINT_GROUP else [])

    pm = build_manager()

    assert [(f.name, f.error) for f in pm.failures] == [("log_notifier", "another plugin already has this name")]
    assert pm.failures[0].source == "entry point plugins.company_settings"
    assert pm.sources["log_notifier"] == ("builtin", __version__)


def test_blocked_plugins_are_not_loaded():
    pm = build_manager(blocked=("log_notifier",), entry_points=False)

    assert "log_notifier" not in names(pm)
    assert "company_settings" in names(pm)
    assert pm.failures == []  # disabled is not a failure
    assert [p.name for p in pm.report()] == sorted(
        name.rsplit(".", 1)[1] for name in BUILTIN_PLUGINS if not name.endswith("log_notifier"))
    with pytest.raises(NotFound):
        notify.send(message("log"), pm=pm)


def test_add_refuses_a_blocked_name():
    pm = build_manager(blocked=("mine",), entry_points=False)

    assert pm.add(Notifier("mine"), "mine", "test") is False
    assert not pm.has_plugin("mine")
    assert pm.failures == []


# --- calling -----------------------------------------------------------------------

def test_call_all_skips_a_raising_plugin_and_returns_the_other_answers():
    pm = PluginManager()
    pm.add(Declares("a.one"), "a", "test")
    pm.add(Raising(RuntimeError("settings table on fire")), "boom", "test")
    pm.add(Declares(), "quiet", "test")  # answers None: left out of the results
    pm.add(Declares("c.one", "c.two"), "c", "test")

    results, errors = pm.call_all("register_settings")

    assert [(plugin, [s.key for s in specs]) for plugin, specs in results] == [
        ("c", ["c.one", "c.two"]),
        ("a", ["a.one"]),
    ]
    assert len(errors) == 1
    error = errors[0]
    assert isinstance(error, PluginError)
    assert (error.plugin, error.hook) == ("boom", "register_settings")
    assert isinstance(error.error, RuntimeError)
    assert "'boom'" in str(error) and "settings table on fire" in str(error)


def test_call_first_lets_validation_error_through():
    pm = PluginManager()
    pm.add(Notifier("fallback"), "fallback", "test")
    pm.add(Raising(ValidationError("no phone number", field="to")), "strict", "test")

    with pytest.raises(ValidationError) as caught:
        pm.call_first("notify", message=message())
    assert not isinstance(caught.value, PluginError)
    assert caught.value.field == "to"


def test_call_first_skips_a_raising_plugin_when_another_answers():
    pm = PluginManager()
    pm.add(Notifier("steady"), "steady", "test")
    pm.add(Raising(ConnectionError("SMS gateway down")), "flaky", "test")  # asked first

    plugin, answer = pm.call_first("notify", message=message())

    assert plugin == "steady"
    assert answer == Delivery(notifier="steady", reference="+254700000001")


def test_call_first_raises_plugin_error_when_nobody_answers_and_one_failed():
    pm = PluginManager()
    pm.add(Silent(), "silent", "test")
    pm.add(Raising(ConnectionError("SMS gateway down")), "flaky", "test")

    with pytest.raises(PluginError) as caught:
        pm.call_first("notify", message=message())
    assert caught.value.plugin == "flaky"
    assert caught.value.hook == "notify"
    assert isinstance(caught.value.error, ConnectionError)


def test_call_first_returns_none_when_nobody_answers():
    pm = PluginManager()
    pm.add(Silent(), "silent", "test")

    assert pm.call_first("notify", message=message()) == (None, None)


# --- order -------------------------------------------------------------------------

def test_plugin_added_later_is_asked_before_a_builtin():
    pm = build_manager(entry_points=False)
    pm.add(Notifier("installed", channel="log"), "installed", "entry point installed", "2.0")

    assert pm.call_first("notify", message=message("log"))[0] == "installed"
    assert notify.send(message("log"), pm=pm).notifier == "installed"


def test_call_all_answers_come_latest_registered_first():
    pm = PluginManager()
    for name in ("first", "second", "third"):
        pm.add(Declares(f"{name}.key"), name, "test")

    results, _errors = pm.call_all("register_settings")

    assert [plugin for plugin, _answer in results] == ["third", "second", "first"]


# --- report ------------------------------------------------------------------------

def test_report_lists_source_version_and_hooks():
    class Extra:
        @hookimpl
        def register_settings(self):
            return []

        @hookimpl
        def notify(self, message):
            return None

        def helper(self):  # not a hook: not listed
            return None

    pm = build_manager(entry_points=False)
    pm.add(Extra(), "extra", "entry point extra_plugin (extra-plugin)", "9.9.1")
    pm.add(Raising(RuntimeError()), "raiser", "test")  # loaded, even if its hooks raise
    pm.add(type("Bad", (), {"notfiy": hookimpl(lambda self, message: None)})(), "bad", "test")  # refused

    report = {info.name: info for info in pm.report()}

    assert [info.name for info in pm.report()] == sorted(report)
    extra = report["extra"]
    assert (extra.source, extra.version, extra.hooks) == (
        "entry point extra_plugin (extra-plugin)", "9.9.1", ["notify", "register_settings"])
    assert (report["log_notifier"].source, report["log_notifier"].version, report["log_notifier"].hooks) == (
        "builtin", __version__, ["notify"])
    assert report["company_settings"].hooks == ["register_settings"]
    assert report["raiser"].hooks == ["notify", "register_settings"]
    assert "bad" not in report
    assert [f.name for f in pm.failures] == ["bad"]
