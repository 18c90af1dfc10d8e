"""Every shell script in the project passes shellcheck."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "var", "build", "node_modules", "__pycache__"}


def shell_scripts() -> list[Path]:
    """Files ending in .sh, and files whose first line names a POSIX shell or bash."""
    found = []
    for path in ROOT.rglob("*"):
        if not path.is_file() or SKIP_DIRS & set(path.relative_to(ROOT).parts):
            continue
        if path.suffix == ".sh":
            found.append(path)
            continue
        try:
            with path.open("rb") as handle:
                first = handle.readline(100)
        except OSError:
            continue
        if first.startswith(b"#!") and (first.rstrip().endswith((b"/sh", b"/bash", b" sh", b" bash"))):
            found.append(path)
    return sorted(found)


def test_the_scripts_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
    assert {"appliance/provision.sh", ".ci/run"} <= names


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (Debian package 'shellcheck')")
@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shellcheck_passes(script):
    result = subprocess.run(["shellcheck", "--external-sources", str(script)], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_a_real_problem(tmp_path):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package 'shellcheck')")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nrm -rf $1/*\n")
    result = subprocess.run(["shellcheck", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "SC2086" in result.stdout
