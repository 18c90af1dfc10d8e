"""Reading what a router holds: every managed menu printed once, entries grouped by subscriber key.

Only entries whose comment starts with ``wispbill:`` count; the operator's own entries
are skipped on sight. Rows stay as the words the router sent until something needs them
as dicts. What the read found is kept on the connection (:class:`Seen`) so that the apply
that follows a reconcile's read needs no lookups of its own.

Rebuilding a subscriber's state from its entries is a pure function of those entries
(and of its managed profile and the router's names), so its answers are remembered per
router by what the entries say, both from reads and from applies (the entries as they
were written): a reconcile of a router where little changed since rebuilds only the
subscribers whose entries did. A router that prints a value otherwise than it was
written just misses the memo and is rebuilt.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from librouteros.exceptions import TrapError

from plugins.mikrotik.connection import Link, generation, row_of, router_key
from plugins.mikrotik.mapping import (
    ADDRESS,
    KINDS,
    PATHS,
    PREFIX,
    PROFILE_COMMENT,
    PROFILE_PATH,
    PROPLISTS,
    Held,
    profile_for,
    state_from,
)

# How long a full read may stand in for lookups. Changes made through the same
# connection keep it up to date, and a change through another connection of this process
# ends the trust at once; one made from elsewhere in the meantime is caught by the
# router's own refusals ("no such item", "already have such name") or the next reconcile.
TRUST_SECONDS = 30.0
PROFILE_PROPLIST = (".id", "name", "rate-limit", "address-list", "comment")
_COMMENT = "=comment="
_MARKED = _COMMENT + PREFIX
_ID_WORD = "=.id="


@dataclass
class Seen:
    """What one full read found on a router: each key's entries (as words), and when."""

    at: float
    router: object = None  # the router's key, for its write generation
    generation: int = 0
    raw: dict[str, tuple] = field(default_factory=dict)  # key -> one list of rows (words) per kind
    marks: dict[str, tuple] = field(default_factory=dict)  # key -> the rows' words as sets, per kind
    rows: dict[str, Held] = field(default_factory=dict)  # parsed on demand, or as applies left them
    stale: set = field(default_factory=set)  # keys to look up again (a change failed half-way)

    def fresh(self) -> bool:
        """Young enough, and nobody else in this process has written to the router since."""
        return time.monotonic() - self.at < TRUST_SECONDS and self.generation == generation(self.router)

    def held(self, key: str) -> Held | None:
        """The entries of ``key`` as the read found them (or as applies since have left them)."""
        found = self.rows.get(key)
        if found is None and key in self.raw:
            found = self.rows[key] = Held(*([row_of(words) for words in rows] for rows in self.raw[key]))
        return found

    def keep(self, key: str, held: Held) -> None:
        """Record what ``key`` holds after a change."""
        self.rows[key] = held
        self.stale.discard(key)


def print_menu(link: Link, path: str, proplist, *query: str, raw: bool = False) -> list:
    """A print of a menu; a router without that menu (no hotspot, no PPP) holds nothing there."""
    try:
        return link.print(path, proplist, *query, raw=raw)
    except TrapError as exc:
        if "no such command" in str(exc.message):
            return []
        raise


def profile_proplist(link: Link) -> tuple[str, ...]:
    """The profile attributes to read: the plugin's own and the operator's base ones."""
    return PROFILE_PROPLIST + tuple(name for name, _ in link.config.layout.profile_base)


def load_profiles(link: Link) -> dict[str, dict]:
    """The managed PPP profiles by name (one print), kept on the connection."""
    rows = print_menu(link, PROFILE_PATH, profile_proplist(link), f"?comment={PROFILE_COMMENT}")
    link.profiles = {row.get("name", ""): row for row in rows}
    return link.profiles


def read_held(link: Link) -> Seen:
    """Print every managed menu once and group the plugin's entries by key."""
    suspend_list = link.config.layout.suspend_list
    raw: dict[str, tuple] = {}
    marks: dict[str, tuple] = {}
    start = len(_MARKED)
    for index, kind in enumerate(KINDS):
        query = (f"?list={suspend_list}",) if kind == ADDRESS else ()
        guess = PROPLISTS[kind].index("comment")
        for words in print_menu(link, PATHS[kind], PROPLISTS[kind], *query, raw=True):
            # The comment is usually where the .proplist put it; look further only when it is not.
            note = words[guess] if guess < len(words) else ""
            if not note.startswith(_COMMENT):
                note = next((word for word in words if word.startswith(_COMMENT)), "")
            if not note.startswith(_MARKED):
                continue
            key = note[start:].split(" ", 1)[0]
            if not key:
                continue
            entry = raw.get(key)
            if entry is None:
                entry = raw[key] = ([], [], [], [])
                marks[key] = ([], [], [], [])
            entry[index].append(words)
            marks[key][index].append(frozenset(words[1:]) if words[0].startswith(_ID_WORD)
                                     else frozenset(w for w in words if not w.startswith(_ID_WORD)))
    load_profiles(link)
    link.seen = Seen(time.monotonic(), link.key, generation(link.key), raw, marks)
    return link.seen


# Per router: (layout, {key: (signature of its entries, profile it depends on, that profile's row, state)}).
_memo: dict = {}
_memo_lock = threading.Lock()


def signature(rows_by_kind) -> tuple:
    """What a subscriber's entries say, per kind, whatever the order of words (``.id`` left out);
    :func:`read_held` makes the same for what it reads."""
    return tuple(tuple(frozenset(w for w in words if not w.startswith(_ID_WORD)) for words in rows)
                 for rows in rows_by_kind)


def _written(held: Held) -> tuple:
    """The signature a print of entries left as ``held`` by an apply would have."""
    return signature([[f"={name}={value}" for name, value in row.items() if name in PROPLISTS[kind]]
                      for row in held.get(kind)] for kind in KINDS)


def _entry(mark, state, profiles) -> tuple:
    """A memo entry: a PPPoE state also depends on its managed profile being as it was."""
    if state is None or (state.extra or {}).get("access") != "pppoe":
        return (mark, None, None, state)
    name = profile_for(state.state, state.rate).name
    row = profiles.get(name)
    return (mark, name, None if row is None else dict(row), state)


def _recall(known, mark, profiles):
    if known is None or known[0] != mark:
        return None
    if known[1] is not None and profiles.get(known[1]) != known[2]:
        return None
    return known


def read_state(link: Link) -> list:
    """Every subscriber the plugin manages on the router, as :class:`~core.hooktypes.SubscriberState`."""
    seen = read_held(link)
    layout, profiles = link.config.layout, link.profiles
    with _memo_lock:
        memo_layout, remembered = _memo.get(link.key, (None, {}))
    if memo_layout != layout:
        remembered = {}
    states, now = [], {}
    for key, rows in seen.marks.items():
        mark = tuple(map(tuple, rows))
        known = _recall(remembered.get(key), mark, profiles)
        if known is None:
            known = _entry(mark, state_from(key, seen.held(key), layout, profiles), profiles)
        now[key] = known
        if known[3] is not None:
            states.append(known[3])
    with _memo_lock:
        _memo[link.key] = (layout, now)
    return states


def remember(link: Link, changed: dict) -> None:
    """After an apply: ``changed`` maps each key it wrote to what it left there (an empty ``Held``: nothing)."""
    if not changed or link.profiles is None:
        return
    layout, profiles = link.config.layout, link.profiles
    with _memo_lock:
        memo_layout, remembered = _memo.get(link.key, (None, {}))
        if memo_layout != layout:
            remembered = {}
        for key, held in changed.items():
            if held.empty():
                remembered.pop(key, None)
            else:
                remembered[key] = _entry(_written(held), state_from(key, held, layout, profiles), profiles)
        _memo[link.key] = (layout, remembered)


def forget(router) -> None:
    """Drop what is remembered about ``router``'s entries."""
    with _memo_lock:
        _memo.pop(router_key(router), None)
