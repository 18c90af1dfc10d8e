"""The lab router: a TCP server speaking the RouterOS API, with real state and failure controls.

    from appliance.lab.server import LabRouter

    with LabRouter(users={"admin": "secret"}, identity="lab") as lab:   # 127.0.0.1, a free port
        api = librouteros.connect("127.0.0.1", "admin", "secret", port=lab.port)
        ...
        lab.rows("/queue/simple")

One thread accepts, one thread serves each connection; every command runs under one
lock, so commands from several connections never interleave inside the state.
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable

from appliance.lab import schema
from appliance.lab.session import Session
from appliance.lab.state import RouterError, RouterState, format_id
from appliance.lab.wire import DEFAULT_MAX_WORD, ProtocolError, SentenceReader

log = logging.getLogger("appliance.lab")

RECV_SIZE = 256 * 1024


def version_tuple(version: str) -> tuple[int, ...]:
    """``"7.18.2"`` → ``(7, 18, 2)``; ``"7.19beta3 (testing)"`` → ``(7, 19)``."""
    out = []
    for part in version.split(" ")[0].split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        out.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(out)


def _attr_names(attrs: dict) -> dict[str, str]:
    # Python keyword arguments cannot hold dashes; RouterOS names never hold underscores.
    return {name.replace("_", "-"): str(value) for name, value in attrs.items()}


class _Connection:
    def __init__(self, sock: socket.socket, peer: str):
        self.sock = sock
        self.peer = peer
        self.closed = False
        self.thread: threading.Thread | None = None

    def shut(self, reset: bool = False) -> None:
        """Cut the connection from another thread; its own thread closes the socket."""
        self.closed = True
        try:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.sock.shutdown(socket.SHUT_RD)
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class LabRouter:
    """A stand-in MikroTik router on loopback.

    ``users`` maps user names to passwords (default ``{"admin": ""}``). ``version`` is
    what ``/system/resource`` reports and decides protocol details: ``!empty`` before the
    ``!done`` of a print without rows from 7.18 on (override with ``empty``), and the
    pre-6.43 challenge login below 6.45. ``state_file`` is where :meth:`save` writes.
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        identity: str = "MikroTik",
        version: str = "7.18",
        *,
        board_name: str = "CHR",
        empty: bool | None = None,
        state_file: str | os.PathLike | None = None,
        max_word: int = DEFAULT_MAX_WORD,
    ):
        self.users = dict(users) if users is not None else {"admin": ""}
        self.version = version
        self.board_name = board_name
        parsed = version_tuple(version)
        self.send_empty = parsed >= (7, 18) if empty is None else bool(empty)
        self.legacy_login = parsed < (6, 45)
        self.state_file = os.fspath(state_file) if state_file is not None else None
        self.max_word = max_word
        self.state = RouterState(identity)
        self.lock = threading.RLock()
        self.host: str | None = None
        self.port: int | None = None
        # counters for tests and benchmarks
        self.writes = 0
        self.kicks = 0
        self.kicked: list[dict[str, str]] = []
        self.commands = 0
        self.logins = 0
        self.accepted = 0
        self.dropped = 0
        self._conns: set[_Connection] = set()
        self._conns_lock = threading.Lock()
        self._life = threading.RLock()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._stall_until: float | None = None
        self._stall = threading.Condition()
        self._comeback: threading.Timer | None = None

    # -- life cycle ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the router listens."""
        return self._listener is not None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) it listens on (or last listened on)."""
        return self.host, self.port

    def start(self, host: str = "127.0.0.1", port: int | None = None) -> LabRouter:
        """Listen (in background threads); ``port=None`` reuses the last port, else 0 picks one."""
        with self._life:
            if self._listener is not None:
                raise RuntimeError("lab router already running")
            if port is None:
                port = self.port or 0
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            listener = socket.create_server((host, port), family=family, backlog=128)
            listener.setblocking(False)
            self._wake = socket.socketpair()
            self._listener = listener
            self.host, self.port = host, listener.getsockname()[1]
            self._accept_thread = threading.Thread(
                target=self._accept_loop, args=(listener, self._wake[1]), name=f"lab-router:{self.port}", daemon=True
            )
            self._accept_thread.start()
            log.info("lab router listening on %s:%s", self.host, self.port)
            return self

    def stop(self) -> None:
        """Stop listening and close every connection (the router is down)."""
        with self._life:
            if self._comeback is not None:
                self._comeback.cancel()
                self._comeback = None
            listener, wake, thread = self._listener, self._wake, self._accept_thread
            if listener is None:
                return
            wake[0].send(b"x")
            if thread is not threading.current_thread():
                thread.join(5)
            listener.close()
            self._listener = None  # only now: "not running" means connections are refused
            wake[0].close()
            wake[1].close()
            self._wake = None
            conns = self._cut_all(reset=False)
        me = threading.current_thread()
        for conn in conns:
            if conn.thread is not None and conn.thread is not me:
                conn.thread.join(5)
        log.info("lab router on port %s stopped", self.port)

    def down(self, seconds: float | None = None) -> None:
        """Go down now; with ``seconds``, come back on the same port after that long."""
        self.stop()
        if seconds is not None:
            timer = threading.Timer(seconds, self._come_back)
            timer.daemon = True
            with self._life:
                self._comeback = timer
            timer.start()

    def _come_back(self) -> None:
        with self._life:
            self._comeback = None
            if self._listener is not None:
                return
            try:
                self.start(self.host or "127.0.0.1", self.port)
            except OSError:
                log.exception("lab router could not come back on port %s", self.port)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, wait ``down_for`` seconds, start again on the same host and port."""
        host = self.host or "127.0.0.1"
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start(host, self.port)

    def __enter__(self) -> LabRouter:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- failure controls --------------------------------------------------------

    def drop(self, reset: bool = False) -> int:
        """Cut every open connection now (``reset``: with a TCP RST); returns how many."""
        conns = self._cut_all(reset)
        return len(conns)

    def _cut_all(self, reset: bool) -> list[_Connection]:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            conn.shut(reset)
        self.dropped += len(conns)
        with self._stall:
            self._stall.notify_all()
        return conns

    def stall(self, seconds: float | None = None) -> None:
        """Accept bytes but answer nothing for ``seconds`` (``None``: until :meth:`release`)."""
        with self._stall:
            self._stall_until = float("inf") if seconds is None else time.monotonic() + seconds
            self._stall.notify_all()

    def release(self) -> None:
        """End a stall; commands received meanwhile are then carried out and answered."""
        with self._stall:
            self._stall_until = None
            self._stall.notify_all()

    @property
    def stalled(self) -> bool:
        """True while a stall is in force."""
        until = self._stall_until
        return until is not None and until > time.monotonic()

    def _wait_while_stalled(self, conn: _Connection) -> None:
        with self._stall:
            while not conn.closed:
                until = self._stall_until
                if until is None:
                    return
                left = until - time.monotonic()
                if left <= 0:
                    self._stall_until = None
                    return
                self._stall.wait(None if left == float("inf") else left)

    def reboot(self, lose: Iterable[str] = ()) -> None:
        """Simulate a reboot: connections cut, sessions and dynamic rows gone, uptime reset,
        and every table in ``lose`` (menu paths) emptied, as if its entries were lost."""
        with self.lock:
            self.state.reboot(lose)
        self.drop()

    # -- state -------------------------------------------------------------------

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the state as JSON to ``path`` (default: ``state_file``)."""
        target = path if path is not None else self.state_file
        if target is None:
            raise ValueError("no path given and no state_file configured")
        with self.lock:
            self.state.save(target)

    def load(self, path: str | os.PathLike | None = None) -> None:
        """Replace the state with the JSON at ``path`` (default: ``state_file``)."""
        source = path if path is not None else self.state_file
        if source is None:
            raise ValueError("no path given and no state_file configured")
        state = RouterState.load(source)
        with self.lock:
            self.state = state

    @property
    def identity(self) -> str:
        return self.state.identity

    @identity.setter
    def identity(self, name: str) -> None:
        with self.lock:
            self.state.identity = name

    def rows(self, path: str) -> list[dict[str, str]]:
        """Copies of a table's rows, ``.id`` included, in print order."""
        with self.lock:
            table = self._table(path)
            return [dict(table.view(table.rows[n])) for n in sorted(table.rows)]

    def find(self, path: str, **attrs) -> list[dict[str, str]]:
        """The rows whose attributes equal all of ``attrs`` (``max_limit`` means ``max-limit``)."""
        wanted = _attr_names(attrs)
        return [row for row in self.rows(path) if all(row.get(k) == v for k, v in wanted.items())]

    def add_row(self, path: str, **attrs) -> str:
        """Add a row as the router's own operator would (read-only attributes allowed);
        returns its ``.id``. Raises :class:`RouterError` for a refusal, as the API would."""
        with self.lock:
            table = self._table(path)
            row = table.insert(table.normalise(_attr_names(attrs), allow_readonly=True))
            if table.menu.active:
                table.since[int(row[".id"][1:], 16)] = time.time()
            return row[".id"]

    def set_row(self, path: str, row_id: str, **attrs) -> None:
        """Change one row's attributes."""
        with self.lock:
            table = self._table(path)
            table.update(table.resolve(row_id), table.normalise(_attr_names(attrs), allow_readonly=True))

    def remove_row(self, path: str, *row_ids: str) -> None:
        """Remove rows as the router itself would (a session ending is not counted as a kick)."""
        with self.lock:
            table = self._table(path)
            table.delete(table.resolve_many(",".join(row_ids)))

    def connect_ppp(self, name: str, address: str, *, service: str = "pppoe", caller_id: str = "") -> str:
        """A PPP subscriber connects: a row in ``/ppp/active``; returns its ``.id``."""
        with self.lock:
            table = self._table(schema.PPP_ACTIVE.path)
            session = f"0x{0x81000000 + table.next_id:08X}"
            return self.add_row(
                schema.PPP_ACTIVE.path,
                name=name,
                address=address,
                service=service,
                caller_id=caller_id,
                session_id=session,
            )

    def connect_hotspot(self, user: str, address: str, *, mac_address: str = "", server: str = "hotspot1") -> str:
        """A hotspot subscriber logs in: a row in ``/ip/hotspot/active``; returns its ``.id``."""
        with self.lock:
            table = self._table(schema.HOTSPOT_ACTIVE.path)
            mac = mac_address or "02:00:00:%02X:%02X:%02X" % tuple((table.next_id >> s) & 0xFF for s in (16, 8, 0))
            return self.add_row(
                schema.HOTSPOT_ACTIVE.path, user=user, address=address, mac_address=mac, server=server
            )

    def _table(self, path: str):
        try:
            return self.state.table(path)
        except KeyError:
            raise KeyError(f"the lab router has no table {path!r}") from None

    # -- counters, used by the commands --------------------------------------------

    def count_command(self) -> None:
        with self.lock:
            self.commands += 1

    def count_login(self) -> None:
        with self.lock:
            self.logins += 1

    def count_write(self) -> None:
        self.writes += 1

    def count_kick(self, path: str, row: dict[str, str]) -> None:
        self.kicks += 1
        self.kicked.append({"path": path, **row})

    @property
    def connections(self) -> int:
        """How many API connections are open now."""
        with self._conns_lock:
            return len(self._conns)

    def stats(self) -> dict[str, int]:
        """The counters in one dict (also what ``/lab/stats`` answers)."""
        return {
            "writes": self.writes,
            "kicks": self.kicks,
            "commands": self.commands,
            "logins": self.logins,
            "connections": self.connections,
            "accepted": self.accepted,
            "dropped": self.dropped,
        }

    def resource(self) -> dict[str, str]:
        """What ``/system/resource/print`` shows."""
        version = self.version if " " in self.version else f"{self.version} (stable)"
        return {
            "uptime": self.state.uptime(),
            "version": version,
            "build-time": "2025-02-24 09:35:23",
            "factory-software": "7.1",
            "free-memory": "986234880",
            "total-memory": "1073741824",
            "cpu": "lab",
            "cpu-count": "1",
            "cpu-frequency": "2400",
            "cpu-load": "1",
            "free-hdd-space": "87101440",
            "total-hdd-space": "134217728",
            "write-sect-since-reboot": str(self.writes),
            "write-sect-total": str(self.writes),
            "architecture-name": "x86_64",
            "board-name": self.board_name,
            "platform": "MikroTik",
        }

    # -- serving -----------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is wake:
                        return
                    try:
                        sock, addr = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        return
                    self._open(sock, addr)

    def _open(self, sock: socket.socket, addr) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(sock, f"{addr[0]}:{addr[1]}")
        conn.thread = threading.Thread(target=self._serve, args=(conn,), name=f"lab-conn:{conn.peer}", daemon=True)
        with self._conns_lock:
            self._conns.add(conn)
            self.accepted += 1
        conn.thread.start()

    def _serve(self, conn: _Connection) -> None:
        sock = conn.sock
        session = Session(self, conn.peer)
        reader = SentenceReader(max_word=self.max_word)
        try:
            while not conn.closed:
                data = sock.recv(RECV_SIZE)
                if not data:
                    if reader.pending and not conn.closed:
                        log.info("lab router: %s left in the middle of a sentence", conn.peer)
                    return
                out: list[bytes] = []
                for words in reader.feed(data):
                    if self._stall_until is not None and words[0] != "/lab/release":
                        if out:
                            sock.sendall(b"".join(out))
                            out = []
                        self._wait_while_stalled(conn)
                    if conn.closed:
                        return
                    reply, after, close = session.handle(words)
                    out.append(reply)
                    if after is not None or close:
                        sock.sendall(b"".join(out))
                        out = []
                        if after is not None:
                            after()
                        if close:
                            return
                if out and not conn.closed:
                    sock.sendall(b"".join(out))
        except ProtocolError as exc:
            log.warning("lab router: dropping %s: %s", conn.peer, exc)
        except OSError as exc:
            if not conn.closed:
                log.info("lab router: connection %s failed: %s", conn.peer, exc)
        except Exception:
            log.exception("lab router: connection %s crashed", conn.peer)
        finally:
            conn.closed = True
            with self._conns_lock:
                self._conns.discard(conn)
            try:
                sock.close()
            except OSError:
                pass


__all__ = ["LabRouter", "RouterError", "format_id", "version_tuple"]
