"""``wispbill bench payments``: signed webhooks through the WSGI app, checked and measured."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from core.errors import ValidationError
from gateways.stripe import bench


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-c", "from core.cli import main; main()", "bench", "payments", *args],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def bench_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WISPBILL_")}
    env["WISPBILL_DATA_DIR"] = str(tmp_path)
    return env


def test_the_bench_records_each_distinct_event_once_and_prints_its_figures(bench_env, db_url):
    url = None if db_url.startswith("sqlite") else db_url.split("?")[0]
    args = ["--customers", "60", "--notifications", "60", "--redeliver", "0.25"]
    done = _run(*args, *(["--database-url", url] if url else []), env=bench_env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"webhooks/s: \d+", lines[-1])
    recorded = next(line for line in lines if line.startswith("recorded:"))
    redelivered = int(re.search(r"\((\d+) of them redeliveries\)", done.stdout).group(1))
    assert redelivered > 0
    assert recorded == f"recorded: {60 - redelivered} payments, {60 - redelivered} invoices paid"
    as_json = _run("--customers", "10", "--notifications", "10", "--json", env=bench_env)
    figures = json.loads(as_json.stdout)
    assert figures["payments"] == figures["invoices_paid"] == 10 - figures["redeliveries"]
    assert 0 < figures["median_ms"] <= figures["p99_ms"] <= figures["max_ms"]


def test_bad_bench_arguments_exit_2(bench_env):
    for args, message in ((["--redeliver", "1.5"], "--redeliver"), (["--customers", "0"], "--customers"),
                          (["--customers", "3", "--notifications", "50"], "need as many customers"),
                          (["--database-url", "mysql://x"], "--database-url")):
        done = _run(*args, env=bench_env)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)


def test_the_plan_mixes_redeliveries_in():
    order = bench._plan(list(range(100)), 100, 0.3, seed=4)
    assert len(order) == 100 and sorted(set(order)) == list(range(len(set(order))))
    assert 10 < 100 - len(set(order)) < 50
    with pytest.raises(ValidationError, match="need as many customers"):
        bench._plan(list(range(5)), 100, 0.0, seed=1)
