"""Third-party plugins installed as real distributions and found through their entry points.

The fixture distributions under ``tests/fixtures/`` are built and installed with pip
into a temporary directory (offline, with the venv's own setuptools and wheel). The
``wispbill`` command then runs in a subprocess with that directory on ``PYTHONPATH``, so
``importlib.metadata`` discovers them exactly as it would after ``pip install``:

* ``wispbill-example-plugin`` (entry point ``example``): a setting and an ``example``
  notifier that appends to the file named by ``WISPBILL_EXAMPLE_OUTBOX``;
* ``wispbill-broken-plugin`` (``broken``): its module raises ImportError;
* ``wispbill-misspelt-plugin`` (``misspelt``): implements the non-existent hook ``notfiy``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import __version__
from core.errors import PluginError
from core.hooktypes import Delivery, Message

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
DISTRIBUTIONS = ("wispbill-example-plugin", "wispbill-broken-plugin", "wispbill-misspelt-plugin")
MODULES = ("wispbill_example_plugin", "wispbill_broken_plugin", "wispbill_misspelt_plugin")
SECRET = "0123456789abcdef0123456789abcdef"  # 32 characters
BUILD_TOOL_MISSING = re.compile(
    r"No module named '?(pip|setuptools|wheel)'?|BackendUnavailable|Cannot import 'setuptools\.build_meta'",
)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """A directory holding the three fixture distributions, installed by pip."""
    base = tmp_path_factory.mktemp("external-plugins")
    # Build from copies so that setuptools' build/ and *.egg-info never land in the source tree.
    sources = []
    for dist in DISTRIBUTIONS:
        copy = base / "src" / dist
        shutil.copytree(FIXTURES / dist, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        sources.append(str(copy))
    site = base / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
               "--target", str(site), *sources]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        tools_missing = [m for m in ("setuptools", "wheel") if importlib.util.find_spec(m) is None]
        if tools_missing or BUILD_TOOL_MISSING.search(output):
            pytest.skip(f"cannot build the fixture plugins (missing build tool): {output[-2000:]}")
        pytest.fail(f"pip install of the fixture plugins failed:\n{output}")
    for module in MODULES:
        assert (site / f"{module}.py").is_file(), f"pip did not install {module}.py:\n{output}"
    return site


def run_wispbill(site: Path, tmp_path: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    """Run ``python -m core.cli ARGS`` with ``site`` on PYTHONPATH and a clean wispbill environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WISPBILL_")}
    env.update(PYTHONPATH=str(site), WISPBILL_DATA_DIR=str(tmp_path / "data"), WISPBILL_SECRET_KEY=SECRET)
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)


def plugins_json(site: Path, tmp_path: Path, **extra_env: str) -> dict:
    done = run_wispbill(site, tmp_path, "plugins", "--json", **extra_env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["name"]: row for row in rows}


# --- the real command in a subprocess ------------------------------------------------

def test_installed_plugin_is_listed_with_its_version_source_and_hooks(plugin_site, tmp_path):
    loaded = by_name(plugins_json(plugin_site, tmp_path)["plugins"])

    assert "example" in loaded, loaded
    example = loaded["example"]
    assert example["version"] == "1.2.3"
    assert example["hooks"] == ["notify", "register_settings"]
    assert example["source"].startswith("entry point wispbill_example_plugin")
    assert "wispbill-example-plugin" in _canonical(example["source"])


def test_bad_plugins_are_reported_by_name_and_the_rest_still_load(plugin_site, tmp_path):
    listing = plugins_json(plugin_site, tmp_path)
    loaded, failed = by_name(listing["plugins"]), by_name(listing["failed"])

    assert set(failed) == {"broken", "misspelt"}
    assert failed["broken"]["error"].startswith("import failed: ImportError:")
    assert "frobnicator" in failed["broken"]["error"]
    assert "wispbill-broken-plugin" in _canonical(failed["broken"]["source"])
    assert "unknown hook" in failed["misspelt"]["error"]
    assert "notfiy" in failed["misspelt"]["error"]
    assert "wispbill-misspelt-plugin" in _canonical(failed["misspelt"]["source"])

    assert "broken" not in loaded and "misspelt" not in loaded
    assert {"company_settings", "log_notifier", "example"} <= set(loaded)
    assert loaded["log_notifier"] == {"name": "log_notifier", "source": "builtin", "version": __version__,
                                      "hooks": ["notify"]}
    assert loaded["company_settings"]["hooks"] == ["register_settings"]


def test_disabling_a_plugin_by_name_leaves_it_out(plugin_site, tmp_path):
    listing = plugins_json(plugin_site, tmp_path, WISPBILL_DISABLE_PLUGINS="example")
    loaded, failed = by_name(listing["plugins"]), by_name(listing["failed"])

    assert "example" not in loaded
    assert "example" not in failed  # disabled is not a failure
    assert {"company_settings", "log_notifier"} <= set(loaded)


def test_disabling_the_bad_plugins_clears_the_failures(plugin_site, tmp_path):
    listing = plugins_json(plugin_site, tmp_path, WISPBILL_DISABLE_PLUGINS="broken, misspelt")

    assert listing["failed"] == []
    assert "example" in by_name(listing["plugins"])


def test_text_listing_shows_the_plugin_and_a_failed_line(plugin_site, tmp_path):
    done = run_wispbill(plugin_site, tmp_path, "plugins")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(re.fullmatch(r"example 1\.2\.3 \[entry point wispbill_example_plugin .*\]", line) for line in lines), lines
    assert "    hooks: notify, register_settings" in lines
    failed = [line for line in lines if line.startswith("FAILED ")]
    assert any(line.startswith("FAILED broken [") and "ImportError" in line for line in failed), lines
    assert any(line.startswith("FAILED misspelt [") and "notfiy" in line for line in failed), lines


def test_without_the_installed_distributions_there_is_no_example_plugin(tmp_path):
    """Control: the plugins above come from the pip-installed directory, not from the source tree."""
    empty_site = tmp_path / "empty-site"
    empty_site.mkdir()
    listing = plugins_json(empty_site, tmp_path)

    assert "example" not in by_name(listing["plugins"])
    assert listing["failed"] == []


# --- the installed plugin's hooks, called in-process ---------------------------------

@pytest.fixture
def installed_pm(plugin_site):
    """A manager built with the installed distributions importable; sys.path and sys.modules restored after."""
    from core.plugins import build_manager

    sys.path.insert(0, str(plugin_site))
    importlib.invalidate_caches()
    try:
        yield build_manager()
    finally:
        sys.path.remove(str(plugin_site))
        for module in MODULES:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()


def test_in_process_manager_loads_example_and_reports_the_bad_ones(installed_pm):
    assert installed_pm.has_plugin("example")
    assert installed_pm.sources["example"][1] == "1.2.3"
    assert {f.name for f in installed_pm.failures} == {"broken", "misspelt"}
    assert not installed_pm.has_plugin("misspelt")


def test_example_notifier_is_called_and_writes_the_outbox(installed_pm, tmp_path, monkeypatch):
    from core import notify

    outbox = tmp_path / "outbox.jsonl"
    monkeypatch.setenv("WISPBILL_EXAMPLE_OUTBOX", str(outbox))

    first = notify.send(Message(channel="example", to="+254700000001", subject="Invoice INV-1",
                                body="KES 2,500.00 due on 1 July"), pm=installed_pm)
    second = notify.send(Message(channel="example", to="ops@example.net", subject="Router down",
                                 body="tower-3 unreachable"), pm=installed_pm)

    assert isinstance(first, Delivery) and first.notifier == "example"
    assert first.reference != second.reference
    records = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
    assert records == [
        {"to": "+254700000001", "subject": "Invoice INV-1", "body": "KES 2,500.00 due on 1 July"},
        {"to": "ops@example.net", "subject": "Router down", "body": "tower-3 unreachable"},
    ]


def test_example_notifier_leaves_other_channels_to_other_plugins(installed_pm, tmp_path, monkeypatch):
    from core import notify

    outbox = tmp_path / "outbox.jsonl"
    monkeypatch.setenv("WISPBILL_EXAMPLE_OUTBOX", str(outbox))

    delivery = notify.send(Message(channel="log", to="staff", subject="hello", body="body"), pm=installed_pm)

    assert delivery.notifier == "log_notifier"
    assert not outbox.exists()


def test_example_notifier_failure_is_reported_as_a_plugin_error(installed_pm, monkeypatch):
    from core import notify

    monkeypatch.delenv("WISPBILL_EXAMPLE_OUTBOX", raising=False)

    with pytest.raises(PluginError) as caught:
        notify.send(Message(channel="example", to="x", subject="s", body="b"), pm=installed_pm)
    assert caught.value.plugin == "example"
    assert "WISPBILL_EXAMPLE_OUTBOX" in str(caught.value)


def test_example_setting_is_declared(installed_pm):
    from core import settings

    specs = settings.declared(installed_pm)

    assert "example.greeting" in specs
    greeting = specs["example.greeting"]
    assert greeting.default == "Hello"
    assert greeting.parse("  Jambo ") == "Jambo"
    with pytest.raises(ValueError):
        greeting.parse("   ")
    assert "company.name" in specs  # the built-in's settings are still there
    assert "misspelt.enabled" not in specs  # a refused plugin contributes nothing


def test_in_process_cleanup_leaves_no_trace(plugin_site):
    """The fixture above must not leak: later tests see no installed plugin."""
    from core.plugins import build_manager

    assert str(plugin_site) not in sys.path
    assert not any(module in sys.modules for module in MODULES)
    pm = build_manager()
    assert not pm.has_plugin("example")
