"""Connections to RouterOS routers: one per router and thread, kept and reused.

librouteros logs in; after that every command goes through :meth:`Link.command` (or
:meth:`Link.commands`, several sent at once), which reads the reply straight from a
buffered socket (see :mod:`plugins.mikrotik.wire`: a print of ten thousand rows costs a
few reads, not three system calls a word) and turns it into plain ``dict[str, str]``
rows, or leaves them encoded for the reader. A ``!trap`` comes back as
:class:`TrapError` and leaves the connection usable; anything else that goes wrong (a
timeout, a closed socket, a reply that cannot be read) throws the connection away, since
the next reply might belong to this command, and is raised as an ``OSError`` so that the
core retries later.
"""

from __future__ import annotations

import ssl
import threading
import weakref

import librouteros
from librouteros.exceptions import LibRouterosError, TrapError

from plugins.mikrotik.settings import RouterConfig
from plugins.mikrotik.wire import ENCODING, Reply, Wire, attributes, encode

_BAD_LOGIN = "invalid user name or password"


class LoginRefused(Exception):
    """The router refused our user name and password (not an ``OSError``: retrying will not help)."""


class Link:
    """One logged-in API connection to a router, with what it last saw there.

    ``seen`` is the last full read (see :mod:`plugins.mikrotik.reader`) and ``profiles``
    the managed PPP profiles; both belong to this connection and go with it, so that
    ``.id`` values learnt before a reboot are never used after one.
    """

    def __init__(self, config: RouterConfig, key=None):
        self.config = config
        self.key = key  # the router's key in this process (see router_key); None for a one-off link
        self.writes = 0  # add/set/unset/remove commands sent through this link
        self.api = None
        self.wire: Wire | None = None
        self.seen = None
        self.profiles: dict | None = None
        self.untested = False

    # -- opening and closing -----------------------------------------------------

    def open(self) -> Link:
        """Connect and log in; raises ``OSError`` when unreachable, :class:`LoginRefused` when refused."""
        self.close()
        c = self.config
        try:
            api = librouteros.connect(c.host, c.username, c.password, port=c.port, timeout=c.timeout,
                                      encoding=ENCODING, ssl_wrapper=_tls_wrapper(c) if c.use_tls else None)
        except TrapError as exc:
            message = str(exc.message)
            if message.startswith(_BAD_LOGIN):
                raise LoginRefused(f"login refused by {c.label}: {_BAD_LOGIN}") from None
            raise LoginRefused(f"login refused by {c.label}: {message}") from None
        except OSError:
            raise
        except (LibRouterosError, ValueError) as exc:
            raise ConnectionError(f"router {c.label}: {exc}") from exc
        self.wire = Wire(api.protocol.transport.sock)
        api.protocol.transport = self.wire
        self.api = api
        self.seen = None
        self.profiles = None
        self.untested = False
        return self

    def close(self) -> None:
        """Close the socket (quietly) and forget what was seen through it."""
        api, self.api, self.wire = self.api, None, None
        self.seen = None
        self.profiles = None
        if api is not None:
            try:
                api.close()
            except Exception:  # noqa: BLE001 - closing a broken socket may fail; it is gone either way
                pass

    @property
    def is_open(self) -> bool:
        return self.api is not None

    # -- commands ----------------------------------------------------------------

    def command(self, cmd: str, *words: str, raw: bool = False) -> list:
        """Send one command and return its ``!re`` rows (and the ``!done`` attributes, such as ``ret``).

        With ``raw``, each row is the bytes of its attribute words (see
        :func:`~plugins.mikrotik.wire.attributes`). Raises :class:`TrapError` for a refusal (the
        connection stays), ``OSError`` for anything else (the connection is closed first).
        """
        return self._run(lambda: self._exchange(cmd, words, raw))

    def commands(self, batch, known=None) -> list:
        """Send the commands of ``batch`` (each its words, the command first) together.

        Returns for each its raw rows, or its :class:`TrapError` (not raised). ``known`` holds
        rows of earlier replies, read faster when they come again (see
        :meth:`~plugins.mikrotik.wire.Wire.reply`). ``OSError`` as for :meth:`command`.
        """
        return self._run(lambda: self._exchange_many(batch, known))

    def _run(self, call):
        if self.api is None:
            self.open()
        if self.untested:
            try:
                return self._guarded(call)
            except ConnectionError:
                self.open()  # closed by the router while idle (a reboot): once more, on a new connection
        return self._guarded(call)

    def _guarded(self, call):
        try:
            return call()
        except TrapError:
            self.untested = False
            raise
        except BaseException as exc:
            self.close()
            if isinstance(exc, Exception):
                raise _as_os_error(exc, self.config) from exc
            raise

    def _exchange(self, cmd: str, words, raw: bool) -> list:
        self.wire.write(encode((cmd, *words)))
        result = _result(self.wire.reply(), raw)
        self.untested = False
        if isinstance(result, TrapError):
            raise result
        return result

    def _exchange_many(self, batch, known) -> list:
        wire = self.wire
        if not batch:
            return []
        wire.write(encode(batch[0]))
        # The rest goes once the first answer has begun, so that the router builds those
        # replies while this side is still reading the first.
        if len(batch) > 1:
            wire.wait()
            wire.write(b"".join(encode(words) for words in batch[1:]))
        results = [_result(wire.reply(known), True) for _ in batch]
        self.untested = False
        return results

    def print(self, path: str, proplist, *query: str, raw: bool = False) -> list:
        """Rows of ``path`` with only the attributes in ``proplist``, filtered by ``query`` words."""
        return self.command(f"{path}/print", "=.proplist=" + ",".join(proplist), *query, raw=raw)

    def add(self, path: str, attrs: dict) -> str:
        """Add an entry; returns its ``.id``."""
        self.writes += 1
        rows = self.command(f"{path}/add", *_words(attrs))
        return str(rows[-1].get("ret", "")) if rows else ""

    def set(self, path: str, entry_id: str, attrs: dict) -> None:
        """Change attributes of entry ``entry_id``."""
        self.writes += 1
        self.command(f"{path}/set", f"=.id={entry_id}", *_words(attrs))

    def unset(self, path: str, entry_id: str, name: str) -> None:
        """Return attribute ``name`` of entry ``entry_id`` to its default."""
        self.writes += 1
        self.command(f"{path}/unset", f"=.id={entry_id}", f"=value-name={name}")

    def remove(self, path: str, entry_ids) -> None:
        """Remove the entries (one command for all of them)."""
        ids = ",".join(entry_ids)
        if ids:
            self.writes += 1
            self.command(f"{path}/remove", f"=.id={ids}")


def _result(reply: Reply, raw: bool):
    """A reply's rows (the ``!done`` words last when it has any), or a :class:`TrapError` for a refusal."""
    if reply.traps:
        messages = [t.get("message", "unknown error") for t in reply.traps]
        category = reply.traps[0].get("category")
        return TrapError("; ".join(messages), int(category) if category and category.isdigit() else None)
    rows = reply.rows if raw else [attributes(row) for row in reply.rows]
    if reply.done:
        done = encode(reply.done)[:-1]
        rows.append(done if raw else attributes(done))
    return rows


def _words(attrs: dict) -> list[str]:
    return [f"={name}={value}" for name, value in attrs.items()]


def _as_os_error(exc: BaseException, config: RouterConfig) -> OSError:
    if isinstance(exc, OSError):
        return exc
    return ConnectionError(f"router {config.label}: {exc or type(exc).__name__}")


def _tls_wrapper(config: RouterConfig):
    if config.tls_verify:
        context = ssl.create_default_context(cafile=config.tls_ca_file)
    else:
        # RouterOS' api-ssl often runs with a self-signed certificate or none at all
        # (anonymous Diffie-Hellman): encrypt without checking who answers.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.set_ciphers("DEFAULT:ADH:@SECLEVEL=0")
        except ssl.SSLError:
            pass
    host = config.host if config.tls_verify else None
    return lambda sock: context.wrap_socket(sock, server_hostname=host)


# --- one connection per router and thread ------------------------------------------

_local = threading.local()
_all_links: weakref.WeakSet = weakref.WeakSet()
_all_lock = threading.Lock()


def router_key(router) -> object:
    """What identifies a router across hook calls: its id, or its name for an unsaved row."""
    return router.id if getattr(router, "id", None) is not None else ("name", router.name, router.host)


def link_for(router, config: RouterConfig) -> Link:
    """This thread's connection to ``router``, opened when there is none or its details changed."""
    links = _local.__dict__.setdefault("links", {})
    key = router_key(router)
    link = links.get(key)
    if link is not None and link.config.identity == config.identity and link.is_open:
        link.config = config
        link.untested = True
        return link
    if link is not None:
        link.close()
    link = Link(config, key)
    link.open()
    links[key] = link
    with _all_lock:
        _all_links.add(link)
    return link


# Per router: how many applies have written to it through any connection of this process.
# A full read kept on one connection is trusted only while this has not moved on.
_generations: dict = {}
_generations_lock = threading.Lock()


def generation(key) -> int:
    """The write generation of the router with key ``key``."""
    with _generations_lock:
        return _generations.get(key, 0)


def wrote(link: Link, seen) -> None:
    """Record that an apply through ``link`` wrote to its router; its own read stays trusted."""
    with _generations_lock:
        current = _generations.get(link.key, 0)
        _generations[link.key] = current + 1
        if seen is not None and seen.generation == current:
            seen.generation = current + 1  # its entries were updated as the writes went


def discard(router) -> None:
    """Close this thread's connection to ``router``, if any."""
    link = _local.__dict__.get("links", {}).pop(router_key(router), None)
    if link is not None:
        link.close()


def close_all() -> None:
    """Close every kept connection of every thread (tests, shutdown)."""
    with _all_lock:
        links = list(_all_links)
    for link in links:
        link.close()
