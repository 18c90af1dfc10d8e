"""``wispbill bench web``: it measures every page it names, and refuses bad arguments."""

import json
import re

from click.testing import CliRunner

from core import bench_web
from core.cli import cli as command
from tests.conftest import SECRET


def cli(*args):
    """The command in-process, on no database of the suite's (the bench makes its own)."""
    return CliRunner().invoke(command, list(args), env={"WISPBILL_SECRET_KEY": SECRET}, catch_exceptions=False)


def test_bench_web_measures_each_page_and_ends_with_the_worst_p95(tmp_path, monkeypatch):
    monkeypatch.setenv("WISPBILL_DATA_DIR", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'web-bench.db'}"
    result = cli("bench", "web", "--subscribers", "30", "--requests", "10", "--database-url", url, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["subscribers"] == 30 and figures["requests"] == 10
    assert set(figures["latency"]) == set(bench_web.PAGES)
    for page in bench_web.PAGES:
        v = figures["latency"][page]
        assert 0 < v["p50"] <= v["p95"] <= v["max"], (page, v)
    assert figures["worst_p95_ms"] == round(max(v["p95"] for v in figures["latency"].values()), 1)
    assert figures["figures_ms"] > 0
    assert not (tmp_path / "web-bench.db").exists()  # the bench removes what it built


def test_bench_web_text_ends_with_the_worst_p95():
    f = bench_web.Figures(subscribers=1, database="sqlite", requests=10, build_seconds=1.0,
                          latency={p: {"p50": 1.0, "p95": 2.0 + i, "max": 9.0} for i, p in enumerate(bench_web.PAGES)})
    text = bench_web.lines(f)
    assert text[-1] == f"worst p95 ms: {2.0 + len(bench_web.PAGES) - 1:.1f}"
    assert text[-2].startswith("dashboard figures: 0.0 ms to compute afresh")
    assert re.fullmatch(r"dashboard: p50 1\.0 ms, p95 2\.0 ms, max 9\.0 ms", text[1])


def test_bench_web_refuses_bad_arguments(tmp_path):
    assert cli("bench", "web", "--subscribers", "0").exit_code == 2
    assert cli("bench", "web", "--subscribers", "5", "--requests", "3").exit_code == 2
    taken = tmp_path / "exists.db"
    taken.write_text("")
    result = cli("bench", "web", "--subscribers", "5", "--database-url", f"sqlite:///{taken}")
    assert result.exit_code == 2 and "already exists" in result.output
