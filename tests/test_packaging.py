"""The built wheel carries everything a non-editable install needs, and that install works."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Build from a copy so that no build/ folder, stale or new, touches the source tree.
    source = tmp_path_factory.mktemp("source") / "wispbill"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out),
         str(source)],
        capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    return next(out.glob("wispbill-*.whl"))


def test_wheel_contains_templates_static_migrations_and_entry_points(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ROOT.joinpath("templates").rglob("*.html"):
        assert template.relative_to(ROOT).as_posix() in names
    for sql in ROOT.joinpath("core/migrations").glob("*.sql"):
        assert sql.relative_to(ROOT).as_posix() in names
    for sql in ROOT.joinpath("plugins/radius/migrations").glob("*.sql"):
        assert sql.relative_to(ROOT).as_posix() in names
    assert "plugins/radius/dictionary" in names
    for path in ROOT.joinpath("appliance/freeradius").rglob("*"):  # the FreeRADIUS configuration
        if path.is_file():
            assert path.relative_to(ROOT).as_posix() in names
    assert "core/web/static/vendor/htmx/htmx.min.js" in names
    assert "core/web/static/vendor/htmx/LICENSE" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "wispbill = core.cli:main" in text


def test_installed_wheel_serves_pages_from_its_own_files(wheel, tmp_path):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                              str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    script = (
        "import core, sys\n"
        "from core.web import create_app\n"
        f"assert core.__file__.startswith({str(target)!r}), core.__file__\n"
        f"app = create_app({{'DATA_DIR': {str(tmp_path)!r}, 'SECRET_KEY': 'x' * 32}})\n"
        "c = app.test_client()\n"
        "page = c.get('/auth/login')\n"
        "assert page.status_code == 200 and b'Sign in' in page.data, page.status_code\n"
        "assert c.get('/static/vendor/htmx/htmx.min.js').status_code == 200\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("ok")
