"""Reading what a router holds: every managed menu printed once, entries grouped by subscriber key.

The prints (the four menus and the managed PPP profiles) are sent together. Only
entries whose comment starts with ``wispbill:`` count; the operator's own entries are
skipped on sight. Rows stay encoded, as the bytes the router sent, until something
needs them as dicts: a row with the same bytes as in the last read is known by them
(its key, and with its subscriber's other rows its state) without being decoded again.
What the read found is kept on the connection (:class:`Seen`) so that the apply that
follows a reconcile's read needs no lookups of its own.

Rebuilding a subscriber's state from its entries is a pure function of those entries
(and of its managed profile and the router's names), so its answers are remembered per
router, both from reads (by the rows' bytes) and from applies (by what the entries were
written to say, whatever the order of words): a reconcile of a router where little
changed since rebuilds only the subscribers whose entries did. A router that prints a
value otherwise than it was written just misses the memo and is rebuilt.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from librouteros.exceptions import TrapError

from plugins.mikrotik.connection import Link, generation, router_key
from plugins.mikrotik.mapping import (
    ADDRESS,
    HOTSPOT,
    KINDS,
    PATHS,
    PROFILE_COMMENT,
    PROFILE_PATH,
    PROPLISTS,
    QUEUE,
    SECRET,
    Held,
    key_of,
    profile_for,
    state_from,
)
from plugins.mikrotik.wire import attribute, attributes, encode, words_of

# How long a full read may stand in for lookups. Changes made through the same
# connection keep it up to date, and a change through another connection of this process
# ends the trust at once; one made from elsewhere in the meantime is caught by the
# router's own refusals ("no such item", "already have such name") or the next reconcile.
TRUST_SECONDS = 30.0
PROFILE_PROPLIST = (".id", "name", "rate-limit", "address-list", "comment")
_PROFILE_QUERY = f"?comment={PROFILE_COMMENT}"
_COMMENT = b"=comment="
_ID_WORD = "=.id="
# The biggest menus first: the router builds the later replies while the first is read.
_READ_ORDER = (SECRET, QUEUE, HOTSPOT, ADDRESS)
_INDEX = {kind: KINDS.index(kind) for kind in KINDS}


def _listed(found) -> list:
    """A key's rows of one kind as :class:`Seen` keeps them (a row, a list of rows, or ``None``) as a list."""
    if found is None:
        return []
    return found if type(found) is list else [found]


@dataclass
class Seen:
    """What one full read found on a router: each key's entries (encoded rows), and when.

    ``found`` has one dict per kind (in the order of ``KINDS``) from key to its row, or to
    a list of its rows when it has several: a read of a router in step makes no
    containers per row or key, which keeps the garbage collector out of it.
    """

    at: float
    router: object = None  # the router's key, for its write generation
    generation: int = 0
    found: tuple = field(default_factory=lambda: ({}, {}, {}, {}))
    rows: dict[str, Held] = field(default_factory=dict)  # decoded on demand, or as applies left them
    stale: set = field(default_factory=set)  # keys to look up again (a change failed half-way)

    def fresh(self) -> bool:
        """Young enough, and nobody else in this process has written to the router since."""
        return time.monotonic() - self.at < TRUST_SECONDS and self.generation == generation(self.router)

    def keys(self) -> dict:
        """Every key the read found an entry of (a dict, for its order)."""
        return dict.fromkeys(itertools.chain(*self.found))

    def held(self, key: str) -> Held | None:
        """The entries of ``key`` as the read found them (or as applies since have left them)."""
        found = self.rows.get(key)
        if found is None and any(key in rows for rows in self.found):
            found = self.rows[key] = Held(*([attributes(row) for row in _listed(rows.get(key))]
                                            for rows in self.found))
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
        if _missing_menu(exc):
            return []
        raise


def _missing_menu(exc: TrapError) -> bool:
    return "no such command" in str(exc.message)


def profile_proplist(link: Link) -> tuple[str, ...]:
    """The profile attributes to read: the plugin's own and the operator's base ones."""
    return PROFILE_PROPLIST + tuple(name for name, _ in link.config.layout.profile_base)


def _profiles_print(link: Link) -> tuple[str, ...]:
    return (f"{PROFILE_PATH}/print", "=.proplist=" + ",".join(profile_proplist(link)), _PROFILE_QUERY)


def _keep_profiles(link: Link, rows) -> dict[str, dict]:
    link.profiles = {row.get("name", ""): row for row in rows}
    return link.profiles


def load_profiles(link: Link) -> dict[str, dict]:
    """The managed PPP profiles by name (one print), kept on the connection."""
    rows = print_menu(link, PROFILE_PATH, profile_proplist(link), _PROFILE_QUERY)
    return _keep_profiles(link, rows)


# Per router: each row's bytes as last read -> the key in its comment (None: not ours).
_row_keys: dict = {}


def _key_in(row: bytes) -> str | None:
    return key_of(attribute(row, _COMMENT))


def read_held(link: Link) -> Seen:
    """Print every managed menu and the managed profiles (sent together) and group the plugin's entries by key."""
    suspend_list = link.config.layout.suspend_list
    batch = [(f"{PATHS[kind]}/print", "=.proplist=" + ",".join(PROPLISTS[kind]),
              *((f"?list={suspend_list}",) if kind == ADDRESS else ())) for kind in _READ_ORDER]
    batch.append(_profiles_print(link))
    with _memo_lock:
        known_keys = _row_keys.get(link.key, {})
    replies = link.commands(batch, known_keys)
    for reply in replies:
        if isinstance(reply, TrapError) and not _missing_menu(reply):
            raise reply
    keys: dict[bytes, str | None] = {}
    found = ({}, {}, {}, {})
    missing = object()
    for kind, rows in zip(_READ_ORDER, replies):
        if isinstance(rows, TrapError):
            continue
        by_key = found[_INDEX[kind]]
        for row in rows:
            # A row the last read saw is not decoded again: its bytes give its key.
            key = known_keys.get(row, missing)
            if key is missing:
                key = _key_in(row)
            keys[row] = key
            if key is None:
                continue
            have = by_key.get(key)
            if have is None:
                by_key[key] = row
            elif type(have) is list:
                have.append(row)
            else:
                by_key[key] = [have, row]
    profiles = replies[-1]
    _keep_profiles(link, [] if isinstance(profiles, TrapError) else [attributes(row) for row in profiles])
    with _memo_lock:
        _row_keys[link.key] = keys
    link.seen = Seen(time.monotonic(), link.key, generation(link.key), found)
    return link.seen


# Per router: (layout, {key: memo entry}). An entry is (the rows as read, or as an apply
# expects a print to show them; the signature of what an apply wrote, or None; the managed
# profile the state depends on; that profile's row; the state).
_memo: dict = {}
_memo_lock = threading.Lock()


def signature(rows_by_kind) -> tuple:
    """What a subscriber's entries say, per kind, whatever the order of words (``.id`` left out);
    each row is its words (as decoded strings)."""
    return tuple(tuple(frozenset(w for w in words if not w.startswith(_ID_WORD)) for words in rows)
                 for rows in rows_by_kind)


def _written(held: Held) -> tuple[tuple, tuple]:
    """The rows a print of entries left as ``held`` by an apply shows when the router keeps the
    order of the ``.proplist`` (as :class:`Seen` keeps them), and the signature it has in any order."""
    rows, words = [], []
    for kind in KINDS:
        proplist = PROPLISTS[kind]
        kind_words = [[f"={name}={row[name]}" for name in proplist if name in row] for row in held.get(kind)]
        encoded = [encode(w)[:-1] for w in kind_words]
        rows.append(None if not encoded else encoded[0] if len(encoded) == 1 else encoded)
        words.append(kind_words)
    return tuple(rows), signature(words)


def _entry(rows, mark, state, profiles, copies: dict) -> tuple:
    """A memo entry: a PPPoE state also depends on its managed profile being as it was."""
    if state is None or (state.extra or {}).get("access") != "pppoe":
        return (rows, mark, None, None, state)
    name = profile_for(state.state, state.rate).name
    if name not in copies:
        row = profiles.get(name)
        copies[name] = None if row is None else dict(row)
    return (rows, mark, name, copies[name], state)


def read_state(link: Link) -> list:
    """Every subscriber the plugin manages on the router, as :class:`~core.hooktypes.SubscriberState`."""
    seen = read_held(link)
    layout, profiles = link.config.layout, link.profiles
    with _memo_lock:
        memo_layout, remembered = _memo.get(link.key, (None, {}))
    if memo_layout != layout:
        remembered = {}
    states, now, copies = [], {}, {}
    same_profile: dict = {}  # (name, id of a remembered profile row) -> whether it is still so
    queues, listed, secrets, users = seen.found
    for key in seen.keys():
        rows = (queues.get(key), listed.get(key), secrets.get(key), users.get(key))
        known = remembered.get(key)
        if known is not None:
            if known[0] != rows:
                if known[1] is not None and known[1] == signature(
                        [[words_of(row) for row in _listed(kind_rows)] for kind_rows in rows]):
                    known = (rows, None) + known[2:]  # as an apply wrote it, in another order
                else:
                    known = None
        if known is not None and known[2] is not None:
            check = (known[2], id(known[3]))
            same = same_profile.get(check)
            if same is None:
                same = same_profile[check] = profiles.get(known[2]) == known[3]
            if not same:
                known = None
        if known is None:
            known = _entry(rows, None, state_from(key, seen.held(key), layout, profiles), profiles, copies)
        now[key] = known
        if known[4] is not None:
            states.append(known[4])
    with _memo_lock:
        _memo[link.key] = (layout, now)
    return states


def remember(link: Link, changed: dict) -> None:
    """After an apply: ``changed`` maps each key it wrote to what it left there (an empty ``Held``: nothing)."""
    if not changed or link.profiles is None:
        return
    layout, profiles, copies = link.config.layout, link.profiles, {}
    with _memo_lock:
        memo_layout, remembered = _memo.get(link.key, (None, {}))
        if memo_layout != layout:
            remembered = {}
        for key, held in changed.items():
            if held.empty():
                remembered.pop(key, None)
            else:
                remembered[key] = _entry(*_written(held), state_from(key, held, layout, profiles), profiles,
                                         copies)
        _memo[link.key] = (layout, remembered)


def forget(router) -> None:
    """Drop what is remembered about ``router``'s entries."""
    with _memo_lock:
        _memo.pop(router_key(router), None)
        _row_keys.pop(router_key(router), None)
