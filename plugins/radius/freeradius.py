"""The appliance's FreeRADIUS run on loopback against a wispbill database, and radclient to talk to it.

Used by ``wispbill bench radius`` and by the tests.

:class:`FreeRadius` starts ``freeradius -f`` with ``appliance/freeradius`` as its configuration,
unchanged, and chooses the database and ports through the ``WISPBILL_RADIUS_*`` variables,
exactly as the appliance does. FreeRADIUS reads its clients from the ``nas`` table only when
it starts, so insert the NAS rows first.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import appliance

CONFIG_DIR = Path(appliance.__file__).resolve().parent / "freeradius"


def _program(name: str) -> str:
    """``name`` on PATH, else in /usr/sbin (where Debian puts freeradius) or /usr/bin."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin") or name


FREERADIUS = _program("freeradius")
RADCLIENT = _program("radclient")
POSTGRESQL_DRIVER = Path("/usr/lib/freeradius/rlm_sql_postgresql.so")
HOST = "127.0.0.1"


def freeradius_problem(dialect: str = "sqlite") -> str | None:
    """Why the real FreeRADIUS cannot run these tests for ``dialect``, or ``None`` when it can."""
    for program, package in ((FREERADIUS, "freeradius"), (RADCLIENT, "freeradius-utils")):
        if shutil.which(program) is None:
            return f"{Path(program).name} is not installed (Debian package {package})"
    if dialect == "postgresql" and not POSTGRESQL_DRIVER.exists():
        return f"{POSTGRESQL_DRIVER} is missing (Debian package freeradius-postgresql)"
    if os.geteuid() != 0:
        return "the FreeRADIUS tests need root: radclient reads /etc/freeradius/3.0/dictionary (mode 0640, freerad)"
    return None


def free_udp_port() -> int:
    """A UDP port on loopback that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def conninfo(url: str) -> str:
    """The libpq key=value connection string for a ``postgresql://`` URL (search_path options kept)."""
    parts = urllib.parse.urlsplit(url)
    values = {"host": parts.hostname, "port": parts.port, "user": parts.username,
              "password": urllib.parse.unquote(parts.password) if parts.password else None,
              "dbname": parts.path.lstrip("/") or None}
    for key, value in urllib.parse.parse_qsl(parts.query):
        values[key] = value
    quoted = []
    for key, value in values.items():
        if value is None:
            continue
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        quoted.append(f"{key}='{text}'")
    return " ".join(quoted)


def database_environment(url: str) -> dict[str, str]:
    """The ``WISPBILL_RADIUS_SQL*`` variables that point FreeRADIUS at the wispbill database ``url``."""
    if url.startswith("sqlite:///"):
        path = Path(urllib.parse.unquote(url[len("sqlite:///"):].split("?", 1)[0])).resolve()
        return {"WISPBILL_RADIUS_SQL": "sqlite", "WISPBILL_RADIUS_SQLITE_FILE": str(path)}
    if url.startswith(("postgresql://", "postgres://")):
        return {"WISPBILL_RADIUS_SQL": "postgresql", "WISPBILL_RADIUS_PG_CONNINFO": conninfo(url)}
    raise ValueError(f"FreeRADIUS cannot use {url!r}")


@dataclass
class Reply:
    """What radclient got back: the packet type (``None`` when nothing valid came) and the attributes."""

    code: str | None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    output: str = ""

    def get(self, name: str) -> str | None:
        """The first value of attribute ``name``, or ``None``."""
        return next((value for key, value in self.attributes if key == name), None)

    def all(self, name: str) -> list[str]:
        """Every value of attribute ``name``, in order."""
        return [value for key, value in self.attributes if key == name]


def _radclient_value(value) -> str:
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if text.startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in text[2:]):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_radclient(output: str) -> Reply:
    """The reply in radclient ``-x`` output: the ``Received <Type> Id ...`` line and its indented attributes."""
    code, attributes, inside = None, [], False
    for line in output.splitlines():
        if line.startswith("Received ") and " Id " in line:
            code, inside = line.split()[1], True
            continue
        if inside and line[:1] in ("\t", " ") and " = " in line:
            name, _, value = line.strip().partition(" = ")
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            attributes.append((name, value))
        elif line.strip():
            inside = False
    return Reply(code, attributes, output)


class FreeRadius:
    """One ``freeradius -f`` process with the appliance's configuration, its output kept as it comes.

    ``db_url`` is a wispbill database URL (``sqlite:///path`` or ``postgresql://...``, the
    search_path option included). The server logs to its stdout, kept in :attr:`lines`;
    ``workdir`` is only where a log file would go.
    """

    def __init__(self, db_url: str, workdir: Path, auth_port: int | None = None, acct_port: int | None = None,
                 reject_delay: int = 0, debug: bool = True):
        self.db_url = db_url
        self.workdir = Path(workdir)
        self.auth_port = auth_port or free_udp_port()
        self.acct_port = acct_port or free_udp_port()
        self.reject_delay = reject_delay
        self.debug = debug
        self.process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._reading = False
        self.lines: list[str] = []
        self._changed = threading.Condition()

    @property
    def environment(self) -> dict[str, str]:
        """The variables the configuration reads (see ``appliance/freeradius/radiusd.conf``)."""
        return {
            "WISPBILL_RADIUS_LISTEN": HOST,
            "WISPBILL_RADIUS_AUTH_PORT": str(self.auth_port),
            "WISPBILL_RADIUS_ACCT_PORT": str(self.acct_port),
            "WISPBILL_RADIUS_LOG_DESTINATION": "stdout",
            "WISPBILL_RADIUS_LOG_FILE": str(self.workdir / "radius.log"),
            "WISPBILL_RADIUS_REJECT_DELAY": str(self.reject_delay),
            **database_environment(self.db_url),
        }

    def start(self, timeout: float = 20.0) -> FreeRadius:
        """Start the server and return once it is ready to process requests; raise with its output if it is not."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("WISPBILL_RADIUS_")}
        env.update(self.environment)
        # -l stdout as well: errors found while parsing come before the log{} section applies.
        command = [FREERADIUS, "-f", "-l", "stdout", "-d", str(CONFIG_DIR)] + (["-xx"] if self.debug else [])
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, errors="replace")
        self._reading = True
        self._reader = threading.Thread(target=self._read, name="freeradius-output", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any("Ready to process requests" in line for line in self.lines):
                if self.process.poll() is not None and not self._reading:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.1))
            else:
                return self
        self.stop()
        raise RuntimeError(f"FreeRADIUS did not start (exit {self.process.returncode}):\n{self.output[-6000:]}")

    def _read(self):
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._reading = False
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything the server has logged so far."""
        with self._changed:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """A position in the output, for :meth:`output_since`."""
        with self._changed:
            return len(self.lines)

    def output_since(self, mark: int) -> str:
        """What the server has logged since :meth:`mark` returned ``mark``."""
        with self._changed:
            return "\n".join(self.lines[mark:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after five seconds)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        self.process.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- radclient ------------------------------------------------------------------

    def radclient(self, kind: str, attributes: list[tuple[str, object]], secret: str,
                  timeout: float = 2.0, retries: int = 1) -> Reply:
        """Send one packet with radclient (``kind`` is auth, acct or status) and parse its reply."""
        port = self.acct_port if kind == "acct" else self.auth_port
        text = "\n".join(f"{name} = {_radclient_value(value)}" for name, value in attributes) + "\n"
        run = subprocess.run([RADCLIENT, "-x", "-t", str(timeout), "-r", str(retries), f"{HOST}:{port}", kind, secret],
                             input=text, capture_output=True, text=True, timeout=timeout * (retries + 1) + 10)
        return parse_radclient(run.stdout + run.stderr)

    def auth(self, user: str, password: str | None = None, *, secret: str, method: str = "pap",
             attributes: list[tuple[str, object]] = (), message_authenticator: bool = True, **options) -> Reply:
        """An Access-Request for ``user``: ``method`` pap, chap or mschap (MS-CHAPv1 computed by radclient)."""
        packet: list[tuple[str, object]] = [("User-Name", user), ("NAS-IP-Address", HOST)]
        if password is not None:
            packet.append(({"pap": "User-Password", "chap": "CHAP-Password", "mschap": "MS-CHAP-Password"}[method],
                           password))
        if message_authenticator:
            packet.append(("Message-Authenticator", "0x00"))
        packet.extend(attributes)
        return self.radclient("auth", packet, secret, **options)

    def acct(self, status: str, *, secret: str, user: str | None = None, session_id: str | None = None,
             attributes: list[tuple[str, object]] = (), **options) -> Reply:
        """An Accounting-Request of ``status`` (Start, Interim-Update, Stop, Accounting-On, ...)."""
        packet: list[tuple[str, object]] = [("Acct-Status-Type", status), ("NAS-IP-Address", HOST)]
        if user is not None:
            packet.append(("User-Name", user))
        if session_id is not None:
            packet.append(("Acct-Session-Id", session_id))
        packet.extend(attributes)
        return self.radclient("acct", packet, secret, **options)

    def answers_from(self, source: str, timeout: float = 1.0) -> bool:
        """Whether an Access-Request sent from loopback address ``source`` gets any answer at all."""
        user = b"nobody"
        body = bytes([1, 2 + len(user)]) + user
        packet = bytes([1, 1]) + (20 + len(body)).to_bytes(2, "big") + os.urandom(16) + body
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(timeout)
            s.sendto(packet, (HOST, self.auth_port))
            try:
                s.recvfrom(4096)
            except (TimeoutError, socket.timeout):
                return False
        return True
