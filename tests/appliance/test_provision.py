"""appliance/provision.sh run for real on this machine, without systemd as PID 1.

The script installs the packages, the code, the configuration and the units; with
``WISPBILL_NO_SYSTEMD=1`` it calls no systemctl, and this test starts each unit's commands
itself, read from the installed unit files (drop-ins included), as the unit's user with
the unit's environment. Everything listens on loopback, on ports chosen free here.

It changes the machine (packages, /etc, /opt/wispbill, /var/lib/wispbill), so it runs only
as root on Debian, and only in CI (``.ci/run`` sets ``WISPBILL_NO_SKIP=1``; ``CI=true`` also
counts) or when asked with ``WISPBILL_TEST_PROVISION=1``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "appliance" / "provision.sh"
UNITS = Path("/etc/systemd/system")
SYSTEM_UNITS = Path("/lib/systemd/system")
WISPBILL = "/opt/wispbill/venv/bin/wispbill"
CONFIG = "/etc/wispbill/wispbill.toml"
RADIUS_LOG = Path("/var/log/wispbill/radius.log")
NAS_NAME = "provision-test-nas"
NAS_SECRET = "provision-test-secret"


def _problem() -> str | None:
    if os.geteuid() != 0:
        return "provisions this machine: needs root"
    if not Path("/etc/debian_version").exists():
        return "provisions this machine: needs Debian (apt-get, Debian's nginx and FreeRADIUS units)"
    if not ({os.environ.get("WISPBILL_NO_SKIP"), os.environ.get("WISPBILL_TEST_PROVISION")} & {"1"}
            or os.environ.get("CI") == "true"):
        return ("provisions this machine itself (packages, /etc, /opt/wispbill): runs in CI (.ci/run sets "
                "WISPBILL_NO_SKIP=1) or with WISPBILL_TEST_PROVISION=1")
    return None


pytestmark = pytest.mark.skipif(_problem() is not None, reason=_problem() or "")


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- units -------------------------------------------------------------------------------

class Unit:
    """A unit's [Service] as systemd would see it: the unit file, then its drop-ins in order."""

    LISTS = ("ExecStartPre", "ExecStart", "ExecStop", "ExecReload", "Environment")

    def __init__(self, name: str):
        self.name = name
        files = [d / name for d in (UNITS, SYSTEM_UNITS) if (d / name).exists()][:1]
        assert files, f"{name} is not installed"
        dropins = UNITS / f"{name}.d"
        files += sorted(dropins.glob("*.conf")) if dropins.is_dir() else []
        self.files = files
        self.values: dict[str, object] = {}
        for path in files:
            section = None
            for raw in path.read_text().splitlines():
                line = raw.strip()
                if not line or line.startswith(("#", ";")):
                    continue
                if line.startswith("["):
                    section = line
                    continue
                if section != "[Service]":
                    continue
                key, _, value = line.partition("=")
                if key in self.LISTS:
                    self.values.setdefault(key, [])
                    if value == "":
                        self.values[key] = []  # an empty assignment clears the list
                    else:
                        self.values[key].append(value)
                else:
                    self.values[key] = value

    def commands(self, key: str) -> list[list[str]]:
        """The command lines of ``key``, with systemd's ``-`` prefix (ignore failure) dropped."""
        return [shlex.split(c.lstrip("-@+!")) for c in self.values.get(key, [])]

    @property
    def environment(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        for line in self.values.get("Environment", []):
            for item in shlex.split(line):
                key, _, value = item.partition("=")
                env[key] = value
        return env

    @property
    def user(self) -> str:
        return str(self.values.get("User", "root"))

    def _prepare(self) -> dict:
        user = pwd.getpwnam(self.user)
        runtime = self.values.get("RuntimeDirectory")
        if runtime:
            path = Path("/run") / str(runtime)
            path.mkdir(exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)
        env = self.environment | {"HOME": user.pw_dir, "USER": user.pw_name}
        cwd = self.values.get("WorkingDirectory") or "/"

        def demote():
            os.setgid(user.pw_gid)
            os.initgroups(user.pw_name, user.pw_gid)
            os.setuid(user.pw_uid)

        return {"env": env, "cwd": str(cwd), "preexec_fn": demote if user.pw_uid != 0 else None}

    def start(self, log: Path) -> subprocess.Popen | None:
        """Run ExecStartPre, then ExecStart: kept running (simple, notify) or waited for (forking)."""
        options = self._prepare()
        for command in self.commands("ExecStartPre"):
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, **options)
            assert done.returncode == 0, f"{self.name} ExecStartPre {command}: {done.stdout}{done.stderr}"
        (command,) = self.commands("ExecStart")
        out = log.open("ab")
        if self.values.get("Type") == "forking":
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=60, **options)
            assert done.returncode == 0, f"{self.name}: {command} exited {done.returncode}: {log.read_text()}"
            return None
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                **options)

    def stop(self, process: subprocess.Popen | None) -> None:
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            return
        for command in self.commands("ExecStop"):
            subprocess.run(command, capture_output=True, timeout=30, **self._prepare())
        pidfile = self.values.get("PIDFile")
        if pidfile and Path(str(pidfile)).exists():
            try:
                os.kill(int(Path(str(pidfile)).read_text().split()[0]), 15)
            except (ProcessLookupError, ValueError):
                pass


# --- helpers -----------------------------------------------------------------------------

def provision(env: dict) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    assert done.returncode == 0, f"provision.sh exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    print(f"provision.sh took {seconds:.0f} s:\n{done.stdout}")
    return done.stdout, seconds


def changes(output: str) -> int:
    found = re.findall(r"^provision: (\d+) changes$", output, re.M)
    assert found, f"no summary line in:\n{output}"
    return int(found[-1])


def wispbill(*args, env=None, check=True) -> str:
    """``wispbill ARGS`` as the service user, with the appliance's configuration."""
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    done = subprocess.run(["runuser", "-u", "wispbill", "--", "env", "-C", "/var/lib/wispbill",
                           f"WISPBILL_CONFIG={CONFIG}", *extra, WISPBILL, *args],
                          capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, f"wispbill {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def get(url: str, timeout=2.0):
    context = ssl._create_unverified_context()  # the appliance's certificate is self-signed

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def wait_for(what, probe, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.2)
    pytest.fail(f"{what} not ready after {timeout}s (last error: {last})")


def radtest(user: str, password: str, port: int) -> str:
    done = subprocess.run(["radtest", "-t", "pap", user, password, f"127.0.0.1:{port}", "0", NAS_SECRET],
                          capture_output=True, text=True, timeout=30)
    return done.stdout + done.stderr


# --- the test ----------------------------------------------------------------------------

def subscriber() -> tuple[str, str, str]:
    """A PPPoE subscriber on the test NAS, made through the CLI, and its rad* rows written.

    Made before FreeRADIUS starts, since it reads the nas table then. Returns (tag, user, password).
    """
    tag = uuid.uuid4().hex[:8]
    user, password = f"pppoe-{tag}", f"pw-{tag}-secret"
    routers = json.loads(wispbill("routers", "list", "--json"))
    if NAS_NAME not in {r["name"] for r in routers}:
        wispbill("routers", "add", NAS_NAME, "--kind", "radius", "--host", "127.0.0.1",
                 "--password-env", "NAS_SECRET", "--option", "coa_port=3799", env={"NAS_SECRET": NAS_SECRET})
    customer = json.loads(wispbill("customers", "add", "--name", f"Appliance Test {tag}", "--currency", "USD",
                                   "--json"))
    wispbill("plans", "add", "--code", f"home-{tag}", "--name", "Home 10", "--kind", "internet", "--price", "20.00",
             "--currency", "USD", "--download-kbps", "10000", "--upload-kbps", "2000")
    service = json.loads(wispbill("services", "add", customer["account_number"], f"home-{tag}", "--json"))
    wispbill("services", "network", str(service["id"]), "--router", NAS_NAME, "--access", "pppoe",
             "--username", user, "--password-env", "PPP_PASSWORD", env={"PPP_PASSWORD": password})
    wispbill("routers", "reconcile", NAS_NAME)
    return tag, user, password


def test_provision_a_running_appliance_then_again_with_no_changes(tmp_path):
    ports = {"WISPBILL_HTTP_PORT": free_port(), "WISPBILL_HTTPS_PORT": free_port(), "WISPBILL_WEB_PORT": free_port(),
             "WISPBILL_PORTAL_PORT": free_port(),
             "WISPBILL_RADIUS_AUTH_PORT": free_port(socket.SOCK_DGRAM),
             "WISPBILL_RADIUS_ACCT_PORT": free_port(socket.SOCK_DGRAM)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WISPBILL_")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update({"WISPBILL_SOURCE": str(ROOT), "WISPBILL_NO_SYSTEMD": "1", "WISPBILL_RADIUS_LISTEN": "127.0.0.1",
                "WISPBILL_PORTAL_LISTEN": "127.0.0.1"})

    first, first_seconds = provision(env)
    changes(first)  # the summary line is there
    toml = Path(CONFIG).read_text()
    assert 'database_url = "sqlite:////var/lib/wispbill/wispbill.db"' in toml
    assert Path("/var/lib/wispbill/secret_key").stat().st_uid == pwd.getpwnam("wispbill").pw_uid
    assert "secret_key" not in toml.replace("/secret_key", "")

    tag, user, password = subscriber()

    running: list[tuple[Unit, subprocess.Popen | None]] = []
    log = tmp_path / "units.log"
    try:
        for name in ("wispbill-web.service", "wispbill-scheduler.service", "freeradius.service", "nginx.service"):
            unit = Unit(name)
            if name == "freeradius.service":
                assert unit.user == "wispbill" and unit.environment["WISPBILL_RADIUS_SQL"] == "sqlite"
                mark = RADIUS_LOG.stat().st_size if RADIUS_LOG.exists() else 0
            running.append((unit, unit.start(log)))
            if name == "freeradius.service":
                wait_for("FreeRADIUS", lambda: RADIUS_LOG.exists()
                         and "Ready to process requests" in RADIUS_LOG.read_bytes()[mark:].decode(errors="replace"))
        web = Unit("wispbill-web.service")
        assert web.environment["WISPBILL_TRUSTED_PROXIES"] == "1"
        assert web.environment["WISPBILL_SESSION_COOKIE_SECURE"] == "true"
        assert ["--host", "127.0.0.1"] == web.commands("ExecStart")[0][2:4]

        # The web app, directly and through nginx.
        direct = f"http://127.0.0.1:{ports['WISPBILL_WEB_PORT']}/healthz"
        status, _, body = wait_for("the web app", lambda: get(direct))
        assert status == 200 and json.loads(body)["database"]["ok"] is True, body
        https = f"https://127.0.0.1:{ports['WISPBILL_HTTPS_PORT']}"
        status, headers, body = wait_for("nginx", lambda: get(https + "/healthz"))
        assert status == 200 and json.loads(body)["database"]["ok"] is True, body
        assert "max-age" in headers.get("Strict-Transport-Security", "")
        # The portal port, straight to the app: every other path goes to the "please pay" page.
        portal = f"http://127.0.0.1:{ports['WISPBILL_PORTAL_PORT']}"
        status, headers, _ = get(portal + "/news/today")
        assert status == 302 and headers["Location"] == "/suspended"
        assert get(portal + "/suspended")[0] == 200
        http = f"http://127.0.0.1:{ports['WISPBILL_HTTP_PORT']}"
        assert get(http + "/healthz")[0] == 200
        status, headers, _ = get(http + "/admin/?x=1")
        assert status == 301 and headers["Location"] == f"{https}/admin/?x=1"
        # The app sees the HTTPS request nginx got (one trusted proxy): its cookie is Secure.
        status, headers, _ = get(https + "/auth/login")
        cookie = headers.get("Set-Cookie", "")
        assert status == 200 and "wispbill_session=" in cookie and "Secure" in cookie, cookie

        # FreeRADIUS answers from the appliance's database.
        auth_port = ports["WISPBILL_RADIUS_AUTH_PORT"]
        accepted = radtest(user, password, auth_port)
        assert "Received Access-Accept" in accepted, accepted + RADIUS_LOG.read_text()[-4000:]
        assert "Mikrotik-Rate-Limit" in accepted
        rejected = radtest(user, "wrong-password", auth_port)
        assert "Received Access-Reject" in rejected, rejected

        # The same settings again: nothing to do, and the files are left as they were.
        watched = [Path(CONFIG), UNITS / "wispbill-web.service", UNITS / "freeradius.service.d/wispbill.conf",
                   Path("/etc/nginx/sites-available/wispbill"), Path("/etc/wispbill/tls/wispbill.crt")]
        before = {p: p.stat().st_mtime_ns for p in watched}
        second, second_seconds = provision(env)
        assert changes(second) == 0, second
        assert {p: p.stat().st_mtime_ns for p in watched} == before
        assert second_seconds < first_seconds or second_seconds < 60
        assert get(https + "/healthz")[0] == 200

        # Backup, a change, restore: the data as it was at the backup.
        listed = wispbill("customers", "list", "--limit", "100000", "--json")
        archive = json.loads(wispbill("backup", "--json"))
        path = archive["path"]
        wispbill("customers", "add", "--name", f"After Backup {tag}", "--currency", "USD")
        assert wispbill("customers", "list", "--limit", "100000", "--json") != listed
        # As docs/appliance.md says: stop everything that writes the database (FreeRADIUS too).
        for unit, process in list(running):
            if unit.name != "nginx.service":
                unit.stop(process)
                running.remove((unit, process))
        wispbill("restore", path, "--yes")
        assert json.loads(wispbill("customers", "list", "--limit", "100000", "--json")) == json.loads(listed)

        # An upgrade: a newer source is installed over the old one, and the data stays.
        newer = tmp_path / "newer-source"
        shutil.copytree(ROOT, newer, ignore=shutil.ignore_patterns(".git", ".venv", "var", "build", "*.egg-info",
                                                                    "__pycache__", ".pytest_cache", ".hypothesis"))
        (newer / "core" / "upgrade_marker.py").write_text('"""A file only the newer source has."""\n')
        upgraded, _ = provision(env | {"WISPBILL_SOURCE": str(newer)})
        assert re.search(r"^provision: changed wispbill .* in /opt/wispbill/venv", upgraded, re.M), upgraded
        marker = subprocess.run(["/opt/wispbill/venv/bin/python", "-c", "import core.upgrade_marker"],
                                capture_output=True, text=True, timeout=60, cwd="/")  # not this tree's core
        assert marker.returncode == 0, marker.stderr
        assert json.loads(wispbill("customers", "list", "--limit", "100000", "--json")) == json.loads(listed)
        assert changes(provision(env | {"WISPBILL_SOURCE": str(newer)})[0]) == 0

        # The log rotation configuration parses (debug mode changes nothing).
        rotate = subprocess.run(["logrotate", "-d", "/etc/logrotate.d/wispbill"], capture_output=True, text=True,
                                timeout=30)
        assert rotate.returncode == 0 and "error" not in rotate.stderr.lower(), rotate.stderr
        print(f"first run {first_seconds:.0f} s, second run {second_seconds:.0f} s")
    finally:
        for unit, process in reversed(running):
            unit.stop(process)
        print(log.read_text(errors="replace")[-6000:] if log.exists() else "")


def test_provision_with_postgresql(tmp_path):
    """``WISPBILL_DB=postgresql`` on a first run: a local database owned by the service user, used
    by the web app and FreeRADIUS. The SQLite appliance of the other test is put back afterwards."""
    ports = {"WISPBILL_HTTP_PORT": free_port(), "WISPBILL_HTTPS_PORT": free_port(), "WISPBILL_WEB_PORT": free_port(),
             "WISPBILL_PORTAL_PORT": free_port(), "WISPBILL_RADIUS_AUTH_PORT": free_port(socket.SOCK_DGRAM),
             "WISPBILL_RADIUS_ACCT_PORT": free_port(socket.SOCK_DGRAM)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WISPBILL_")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update({"WISPBILL_SOURCE": str(ROOT), "WISPBILL_NO_SYSTEMD": "1", "WISPBILL_RADIUS_LISTEN": "127.0.0.1",
                "WISPBILL_PORTAL_LISTEN": "127.0.0.1", "WISPBILL_DB": "postgresql"})
    kept = {path: path.read_bytes() for path in (Path(CONFIG), Path("/etc/wispbill/admin-password")) if path.exists()}
    for path in kept:
        path.unlink()  # as on a new box: the database is chosen on the first run
    running: list[tuple[Unit, subprocess.Popen | None]] = []
    log = tmp_path / "units.log"
    try:
        first, _ = provision(env)
        assert 'database_url = "postgresql://wispbill@/wispbill?host=/var/run/postgresql"' in Path(CONFIG).read_text()
        _tag, user, password = subscriber()
        for name in ("wispbill-web.service", "freeradius.service"):
            unit = Unit(name)
            if name == "freeradius.service":
                assert unit.environment["WISPBILL_RADIUS_SQL"] == "postgresql"
                assert "dbname=wispbill" in unit.environment["WISPBILL_RADIUS_PG_CONNINFO"]
                mark = RADIUS_LOG.stat().st_size if RADIUS_LOG.exists() else 0
            running.append((unit, unit.start(log)))
            if name == "freeradius.service":
                wait_for("FreeRADIUS", lambda: RADIUS_LOG.exists()
                         and "Ready to process requests" in RADIUS_LOG.read_bytes()[mark:].decode(errors="replace"))
        status, _, body = wait_for("the web app", lambda: get(f"http://127.0.0.1:{ports['WISPBILL_WEB_PORT']}/healthz"))
        health = json.loads(body)
        assert status == 200 and health["database"]["ok"] is True and health["database"]["backend"] == "postgresql", body
        accepted = radtest(user, password, ports["WISPBILL_RADIUS_AUTH_PORT"])
        assert "Received Access-Accept" in accepted, accepted + RADIUS_LOG.read_text()[-4000:]
        second, _ = provision(env)
        assert changes(second) == 0, second
    finally:
        for unit, process in reversed(running):
            unit.stop(process)
        for path, content in kept.items():
            path.write_bytes(content)
        print(log.read_text(errors="replace")[-4000:] if log.exists() else "")

