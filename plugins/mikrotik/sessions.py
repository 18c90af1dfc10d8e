"""Ending live sessions (PPP and hotspot) whose user's entries changed, in a few commands per apply.

An apply gathers the user names whose sessions must end; once its changes are written,
one print asks for the active sessions of just those users (a query of up to
:data:`CHUNK` names) and one remove ends them all. Names whose sessions could not be
ended because the connection failed are owed to the router: the next apply to it ends
them first, since its retry finds the entries in place and has nothing to kick for.
"""

from __future__ import annotations

import threading

from librouteros.exceptions import TrapError

from plugins.mikrotik.connection import Link
from plugins.mikrotik.reader import print_menu

PPP_ACTIVE, HOTSPOT_ACTIVE = "/ppp/active", "/ip/hotspot/active"
FIELDS = {PPP_ACTIVE: "name", HOTSPOT_ACTIVE: "user"}  # the user name's attribute in each menu
CHUNK = 64  # names per print

_owed: dict = {}  # router key -> {path: [names]}
_owed_lock = threading.Lock()


def _gone(exc: TrapError) -> bool:
    return "no such item" in str(exc.message).lower()


class Kicks:
    """The sessions one apply is to end, by menu and user name, with the changes that asked for each."""

    def __init__(self, router):
        self.router = router
        self.names: dict[str, dict[str, list[str]]] = {path: {} for path in FIELDS}
        with _owed_lock:
            owed = _owed.pop(router, {})
        for path, names in owed.items():
            for name in names:
                self.names[path].setdefault(name, [])

    def add(self, path: str, name: str | None, key: str) -> None:
        """End the sessions of user ``name`` in ``path`` (for the change of ``key``)."""
        if name:
            self.names[path].setdefault(name, []).append(key)

    def end(self, link: Link) -> dict[str, str]:
        """End the gathered sessions; returns a failure message per change whose kick the router refused."""
        failed = {}
        for path, names in self.names.items():
            while names:
                chunk = list(names)[:CHUNK]
                try:
                    end_sessions(link, path, chunk)
                except TrapError as exc:
                    for name in chunk:
                        for key in names[name]:
                            failed[key] = f"router {link.config.label} refused: {exc}"
                for name in chunk:
                    del names[name]
        return failed

    def owe(self) -> None:
        """Keep what was not ended (the connection failed first) for the next apply to this router."""
        left = {path: list(names) for path, names in self.names.items() if names}
        if not left:
            return
        with _owed_lock:
            owed = _owed.setdefault(self.router, {})
            for path, names in left.items():
                have = owed.setdefault(path, [])
                have.extend(name for name in names if name not in have)


def end_sessions(link: Link, path: str, names: list[str]) -> None:
    """End every live session in ``path`` of the users ``names`` (one print, one remove)."""
    field = FIELDS[path]
    query = [f"?{field}={name}" for name in names]
    if len(names) > 1:
        query.append("?#" + "|" * (len(names) - 1))
    rows = print_menu(link, path, (".id", field), *query)
    wanted = set(names)
    ids = [row[".id"] for row in rows if row.get(".id") and row.get(field) in wanted]
    if not ids:
        return
    try:
        link.remove(path, ids)
    except TrapError as exc:
        if not _gone(exc):
            raise
        # One of them ended by itself meanwhile, and a list with a gone id removes nothing.
        for one in ids:
            try:
                link.remove(path, [one])
            except TrapError as exc:
                if not _gone(exc):
                    raise
