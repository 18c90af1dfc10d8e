"""One API connection's conversation: login, tags, traps, ``/quit``.

:meth:`Session.handle` takes a sentence (a list of words) and returns the reply bytes,
an action to run once they are sent, and whether to close the connection.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import TYPE_CHECKING

from appliance.lab.commands import Commands
from appliance.lab.state import RouterError
from appliance.lab.wire import encode_sentence, encode_sentences

if TYPE_CHECKING:
    from appliance.lab.server import LabRouter

log = logging.getLogger("appliance.lab")

BAD_LOGIN = "invalid user name or password (6)"
# RouterOS closes a connection that keeps sending commands without logging in.
MAX_COMMANDS_BEFORE_LOGIN = 8


def parse_sentence(words: list[str]) -> tuple[str, dict[str, str], list[str], str | None, list[str]]:
    """Split a sentence into command, attributes, query words, ``.tag`` and stray words."""
    command = words[0]
    attrs: dict[str, str] = {}
    queries: list[str] = []
    tag: str | None = None
    stray: list[str] = []
    for word in words[1:]:
        first = word[:1]
        if first == "=":
            name, _, value = word[1:].partition("=")
            attrs[name] = value
        elif first == "?":
            queries.append(word)
        elif word.startswith(".tag="):
            tag = word[5:]
        elif first == ".":
            # .id / .proplist written as API attributes rather than =.id=
            name, _, value = word.partition("=")
            attrs[name] = value
        else:
            stray.append(word)
    return command, attrs, queries, tag, stray


def _encode(sentences: list[list[str]], tag: str | None) -> bytes:
    return encode_sentences(sentences, () if tag is None else (".tag=" + tag,))


def _trap(exc: RouterError) -> list[list[str]]:
    words = ["!trap"]
    if exc.category is not None:
        words.append(f"=category={exc.category}")
    words.append(f"=message={exc.message}")
    return [words, ["!done"]]


class Session:
    """The state of one connection: who logged in, and the legacy login challenge."""

    def __init__(self, router: LabRouter, peer: str = "?"):
        self.router = router
        self.peer = peer
        self.user: str | None = None
        self.before_login = 0
        self._challenge: bytes | None = None
        self._commands = Commands(router)

    def handle(self, words: list[str]):
        """Reply bytes, an action to run after sending them (or ``None``), and whether to close."""
        command, attrs, queries, tag, stray = parse_sentence(words)
        router = self.router
        router.count_command()
        if command == "/quit":
            return encode_sentence(["!fatal", "session terminated on request"]), None, True
        if self.user is None and command not in ("/login", "/lab/release"):
            self.before_login += 1
            if self.before_login > MAX_COMMANDS_BEFORE_LOGIN:
                return encode_sentence(["!fatal", "not logged in"]), None, True
            return _encode(_trap(RouterError("not logged in")), tag), None, False
        if stray:
            return _encode(_trap(RouterError("unknown parameter", 1)), tag), None, False
        if command == "/login":
            return _encode(self._login(attrs), tag), None, False
        try:
            with router.lock:
                sentences, after = self._commands.run(command, attrs, queries)
        except RouterError as exc:
            return _encode(_trap(exc), tag), None, False
        except Exception:
            log.exception("lab router: %s failed", command)
            return _encode(_trap(RouterError("internal error")), tag), None, False
        return _encode(sentences, tag), after, False

    def _login(self, attrs: dict[str, str]) -> list[list[str]]:
        router = self.router
        name = attrs.get("name")
        if name is None and not attrs and router.legacy_login:
            # Before 6.43 a bare /login asked for a challenge.
            self._challenge = os.urandom(16)
            return [["!done", f"=ret={self._challenge.hex()}"]]
        expected = router.users.get(name or "")
        ok = False
        if expected is not None and "response" in attrs and self._challenge is not None:
            digest = hashlib.md5(b"\x00" + expected.encode() + self._challenge, usedforsecurity=False)
            ok = attrs["response"] == "00" + digest.hexdigest()
            self._challenge = None
        elif expected is not None and "response" not in attrs:
            ok = attrs.get("password", "") == expected
        if not ok:
            self.before_login += 1
            log.info("lab router: login failed for %r from %s", name, self.peer)
            return _trap(RouterError(BAD_LOGIN))
        self.user = name
        router.count_login()
        return [["!done"]]
