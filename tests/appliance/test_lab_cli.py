"""``lab router``: the click command in-process and as a real child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import librouteros
import pytest
from click.testing import CliRunner

from appliance.lab.cli import lab

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_router_command():
    result = CliRunner().invoke(lab, ["--help"])
    assert result.exit_code == 0
    assert "router" in result.output
    result = CliRunner().invoke(lab, ["router", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--host", "--user", "--password", "--state", "--identity"):
        assert option in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["router", "--port", "70000"],
        ["router", "--port", "eighty"],
        ["router", "--bogus"],
        ["nothing"],
    ],
)
def test_bad_arguments_are_usage_errors(args):
    result = CliRunner().invoke(lab, args)
    assert result.exit_code == 2, result.output


def test_an_unreadable_state_file_is_a_usage_error(tmp_path):
    state = tmp_path / "state.json"
    state.write_text("[1, 2")
    result = CliRunner().invoke(lab, ["router", "--port", "0", "--state", str(state)])
    assert result.exit_code == 2
    assert "--state" in result.output


def _run_router(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from appliance.lab.cli import lab; lab()", "router", "--port", "0", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("lab router listening on 127.0.0.1:"), line + proc.stderr.read()
    return proc, int(line.rsplit(":", 1)[1])


def _stop(proc: subprocess.Popen, sig: int) -> str:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return out


def test_runs_as_a_process_answers_librouteros_and_saves_on_sigterm(tmp_path):
    state = tmp_path / "state.json"
    proc, port = _run_router("--user", "ops", "--password", "pw", "--identity", "tower-3", "--state", str(state))
    try:
        api = librouteros.connect("127.0.0.1", "ops", "pw", port=port, timeout=5)
        assert list(api.path("system", "identity")) == [{"name": "tower-3"}]
        api.path("ip", "firewall", "address-list").add(list="suspended", address="10.0.0.7")
        api.close()
    finally:
        out = _stop(proc, signal.SIGTERM)
    assert "state saved" in out
    saved = json.loads(state.read_text())
    rows = saved["tables"]["/ip/firewall/address-list"]["rows"]
    assert [(r["list"], r["address"]) for r in rows] == [("suspended", "10.0.0.7")]

    # started again with the same file, it has the entry back; SIGINT stops it cleanly too
    proc, port = _run_router("--user", "ops", "--password", "pw", "--state", str(state))
    try:
        api = librouteros.connect("127.0.0.1", "ops", "pw", port=port, timeout=5)
        assert [r["address"] for r in api.path("ip", "firewall", "address-list")] == ["10.0.0.7"]
        assert list(api.path("system", "identity")) == [{"name": "tower-3"}]
        api.close()
    finally:
        _stop(proc, signal.SIGINT)

    # an explicit --identity wins over the saved one
    proc, port = _run_router("--user", "ops", "--password", "pw", "--state", str(state), "--identity", "tower-4")
    try:
        api = librouteros.connect("127.0.0.1", "ops", "pw", port=port, timeout=5)
        assert list(api.path("system", "identity")) == [{"name": "tower-4"}]
        api.close()
    finally:
        _stop(proc, signal.SIGTERM)
