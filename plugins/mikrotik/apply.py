"""Applying changes: each subscriber's entries made to match its desired state, in few round trips.

For each change the entries held for its key come from the connection's last full read
when it is fresh, else from lookups (a print by queue name, by secret comment or name,
by hotspot user name, and one print of the suspend list per call). Then, entry by
entry: add what is missing, set what differs, remove what should not be there. The live
sessions to end (a PPP profile or a hotspot user's access changed) are gathered and
ended once the changes are written: one print of the sessions of those users, one remove.

A refusal (``!trap``) fails that change only. A connection error is raised: the changes
not yet reported stay pending in the core and are retried (repeating a change is
harmless).
"""

from __future__ import annotations

from librouteros.exceptions import TrapError

from core.hooktypes import ApplyResult, Change, SubscriberState
from plugins.mikrotik import sessions
from plugins.mikrotik.connection import Link, wrote
from plugins.mikrotik.mapping import (
    ADDRESS,
    HOTSPOT,
    PATHS,
    PROFILE_PATH,
    PROPLISTS,
    QUEUE,
    SECRET,
    Entries,
    Held,
    Profile,
    Unenforceable,
    differences,
    entries_for,
    key_of,
    queue_name,
    truth,
)
from plugins.mikrotik.reader import load_profiles, print_menu, profile_proplist, read_held, remember

# From this many changes in one call, one full read is cheaper than lookups per change.
BATCH_READ = 16
PPP_ACTIVE, HOTSPOT_ACTIVE = sessions.PPP_ACTIVE, sessions.HOTSPOT_ACTIVE
# The suspend list goes first: a suspension stops traffic, and a restore lets it through, at once.
_ORDER = (ADDRESS, QUEUE, SECRET, HOTSPOT)
_NAMED = {QUEUE: "queue", SECRET: "PPP secret", HOTSPOT: "hotspot user"}


class Conflict(Exception):
    """An entry the operator made is in the way (same queue name, same PPP user name)."""


def _is(exc: TrapError, *texts: str) -> bool:
    message = str(exc.message).lower()
    return any(text in message for text in texts)


class Applier:
    """Applies changes through one connection."""

    def __init__(self, link: Link):
        self.link = link
        self.layout = link.config.layout
        self._listed: dict[str, list] | None = None
        self._left: dict[str, Held] = {}  # what each change left on the router
        self._kicks: sessions.Kicks | None = None

    # -- entry point ------------------------------------------------------------------

    def apply(self, changes: list[Change]) -> ApplyResult:
        """Apply every change; refusals are reported per key, connection errors raised."""
        seen = self.link.seen
        writes = self.link.writes
        self._kicks = sessions.Kicks(self.link.key)  # with the sessions an earlier apply could not end
        try:
            if len(changes) >= BATCH_READ and (seen is None or not seen.fresh()):
                read_held(self.link)
            result = self._apply_each(changes)
            failed = self._kicks.end(self.link)
            if failed:
                result = ApplyResult(applied=tuple(key for key in result.applied if key not in failed),
                                     failed={**result.failed, **failed})
            return result
        finally:
            self._kicks.owe()
            if self.link.writes != writes:
                wrote(self.link, self.link.seen)
            if self.link.is_open:
                remember(self.link, self._left)

    def _apply_each(self, changes: list[Change]) -> ApplyResult:
        applied, failed = [], {}
        for change in changes:
            sub = change.subscriber
            try:
                if change.action == "remove":
                    self.remove(sub)
                elif change.action == "set":
                    self.set(sub)
                else:
                    raise Unenforceable(f"unknown action {change.action!r}")
            except (Unenforceable, Conflict) as exc:
                failed[sub.key] = str(exc)
                continue
            except TrapError as exc:
                failed[sub.key] = f"router {self.link.config.label} refused: {exc}"
                self._forget(sub.key)
                self._left.pop(sub.key, None)
                continue
            applied.append(sub.key)
        return ApplyResult(applied=tuple(applied), failed=failed)

    # -- what is there ------------------------------------------------------------------

    def _fresh_seen(self):
        seen = self.link.seen
        return seen if seen is not None and seen.fresh() else None

    def _forget(self, key: str) -> None:
        """After a refusal part of a change may be done: look the key up again next time."""
        seen = self._fresh_seen()
        if seen is not None:
            seen.stale.add(key)
        self._listed = None

    def held_for(self, sub: SubscriberState) -> Held:
        """The entries of ``sub.key`` on the router (from the fresh read, else looked up)."""
        seen = self._fresh_seen()
        if seen is not None and sub.key not in seen.stale:
            found = seen.held(sub.key) or Held()
            return Held(list(found.queue), list(found.address), list(found.secret), list(found.hotspot))
        return self.lookup_key(sub.key, (sub.extra or {}).get("username"))

    def lookup_key(self, key: str, username: str | None) -> Held:
        """Look the entries of ``key`` up on the router (three prints, plus the suspend list once)."""
        return Held(queue=self._lookup(QUEUE, key, username), address=self._lookup(ADDRESS, key, username),
                    secret=self._lookup(SECRET, key, username), hotspot=self._lookup(HOTSPOT, key, username))

    def _lookup(self, kind: str, key: str, username: str | None, again: bool = False) -> list:
        """The entries of one kind for ``key``; ``again`` reads the suspend list anew."""
        link = self.link
        if kind == ADDRESS:
            if self._listed is None or again:
                self._listed = {}
                rows = print_menu(link, PATHS[ADDRESS], PROPLISTS[ADDRESS], f"?list={self.layout.suspend_list}")
                for row in rows:
                    found = key_of(row.get("comment"))
                    if found is not None:
                        self._listed.setdefault(found, []).append(row)
            return list(self._listed.get(key, ()))
        if kind == QUEUE:
            rows = print_menu(link, PATHS[QUEUE], PROPLISTS[QUEUE], f"?name={queue_name(key)}")
        elif kind == SECRET:
            query = [f"?comment=wispbill:{key}"]
            if username:
                query += [f"?name={username}", "?#|"]
            rows = print_menu(link, PATHS[SECRET], PROPLISTS[SECRET], *query)
        else:
            if not username:
                return []
            rows = print_menu(link, PATHS[HOTSPOT], PROPLISTS[HOTSPOT], f"?name={username}")
        return [row for row in rows if key_of(row.get("comment")) == key]

    def _remember(self, key: str, held: Held) -> None:
        self._left[key] = held
        seen = self._fresh_seen()
        if seen is not None:
            seen.keep(key, held)
        if self._listed is not None:
            self._listed[key] = list(held.address)

    # -- set ----------------------------------------------------------------------------

    def set(self, sub: SubscriberState) -> None:
        """Make the router hold ``sub``."""
        want = entries_for(sub, self.layout)
        held = self.held_for(sub)
        if want.profile is not None:
            self.ensure_profile(want.profile)
        now = Held()
        for kind in _ORDER:
            now_rows = self.sync(kind, sub.key, held.get(kind), want.get(kind), want)
            now.get(kind).extend(now_rows)
        self._remember(sub.key, now)
        self._kick_after_set(sub.key, held, want)

    def sync(self, kind: str, key: str, rows: list, wanted: dict | None, want: Entries) -> list:
        """Make the entries of one kind match ``wanted``; returns the rows as they now are."""
        if wanted is None:
            self._remove(kind, key, rows)
            return []
        # Of several entries (one made under an old user name, say), keep the closest.
        rows = sorted(rows, key=lambda row: len(differences(kind, row, wanted)[0]))
        keep, extra = (rows[0], rows[1:]) if rows else (None, [])
        if extra:
            self._remove(kind, key, extra)
        if keep is None:
            return self._add(kind, key, wanted, want)
        try:
            return [self._update(kind, keep, wanted, want)]
        except TrapError as exc:
            if not _is(exc, "no such item"):
                raise
        # The entry went away since it was read (a reboot, an operator): look again.
        found = self._lookup(kind, key, _username(kind, wanted), again=True)
        if found:
            return [self._update(kind, found[0], wanted, want)]
        return self._add(kind, key, wanted, want)

    def _update(self, kind: str, row: dict, wanted: dict, want: Entries) -> dict:
        to_set, to_unset = differences(kind, row, wanted)
        path = PATHS[kind]
        if to_set:
            self._write(lambda: self.link.set(path, row[".id"], to_set), kind, want)
        for name in to_unset:
            self.link.unset(path, row[".id"], name)
        now = {**row, **to_set}
        for name in to_unset:
            now.pop(name, None)
        return now

    def _add(self, kind: str, key: str, wanted: dict, want: Entries) -> list:
        path = PATHS[kind]
        try:
            new_id = self._write(lambda: self.link.add(path, wanted), kind, want)
        except TrapError as exc:
            if not _is(exc, "already"):
                raise
            return self._after_duplicate(kind, key, wanted, want)
        return [{".id": new_id, **wanted}]

    def _after_duplicate(self, kind: str, key: str, wanted: dict, want: Entries) -> list:
        """An add refused as a duplicate: ours (added elsewhere meanwhile) is updated, the operator's left alone."""
        link = self.link
        if kind == ADDRESS:
            rows = link.print(PATHS[ADDRESS], PROPLISTS[ADDRESS], f"?list={wanted['list']}",
                              f"?address={wanted['address']}")
            ours = [row for row in rows if key_of(row.get("comment")) == key]
            # The operator's own entry already lists the address: it is suspended either way.
            return [self._update(kind, ours[0], wanted, want)] if ours else []
        name = wanted["name"]
        rows = link.print(PATHS[kind], PROPLISTS[kind], f"?name={name}")
        ours = [row for row in rows if key_of(row.get("comment")) == key]
        if ours:
            return [self._update(kind, ours[0], wanted, want)]
        raise Conflict(f"a {_NAMED[kind]} named {name!r} exists on router {link.config.label} that wispbill "
                       f"did not create (or that belongs to another subscriber); it is left alone")

    def _write(self, action, kind: str, want: Entries):
        """Run a write; a secret refused for a missing profile gets the profile made again and one retry."""
        try:
            return action()
        except TrapError as exc:
            if kind != SECRET or want.profile is None or not _is(exc, "match any value of profile"):
                raise
        self.link.profiles = None
        self.ensure_profile(want.profile)
        return action()

    # -- profiles -----------------------------------------------------------------------

    def ensure_profile(self, profile: Profile) -> None:
        """Make sure the managed PPP profile exists with the attributes it should have."""
        link = self.link
        profiles = link.profiles if link.profiles is not None else load_profiles(link)
        wanted = profile.attributes(self.layout)
        row = profiles.get(profile.name)
        if row is None:
            try:
                new_id = link.add(PROFILE_PATH, wanted)
                profiles[profile.name] = {".id": new_id, **wanted}
                return
            except TrapError as exc:
                if not _is(exc, "already"):
                    raise
            found = link.print(PROFILE_PATH, profile_proplist(link), f"?name={profile.name}")
            if not found:
                raise Conflict(f"PPP profile {profile.name!r} could not be created on router {link.config.label}")
            row = found[0]
        to_set, to_unset = differences("profile", row, wanted)
        if to_set:
            link.set(PROFILE_PATH, row[".id"], to_set)
        for name in to_unset:
            link.unset(PROFILE_PATH, row[".id"], name)
        now = {**row, **to_set}
        for name in to_unset:
            now.pop(name, None)
        profiles[profile.name] = now

    # -- remove ---------------------------------------------------------------------------

    def remove(self, sub: SubscriberState) -> None:
        """Take every entry of ``sub.key`` off the router and end its sessions."""
        held = self.held_for(sub)
        for kind in (SECRET, HOTSPOT, QUEUE, ADDRESS):
            self._remove(kind, sub.key, held.get(kind))
        for row in held.secret:
            self._kicks.add(PPP_ACTIVE, row.get("name"), sub.key)
        for row in held.hotspot:
            self._kicks.add(HOTSPOT_ACTIVE, row.get("name"), sub.key)
        self._remember(sub.key, Held())

    def _remove(self, kind: str, key: str, rows: list) -> None:
        ids = [row[".id"] for row in rows if row.get(".id")]
        if not ids:
            return
        try:
            self.link.remove(PATHS[kind], ids)
        except TrapError as exc:
            if not _is(exc, "no such item"):
                raise
            # One of them is gone already: remove what is still there.
            found = self._lookup(kind, key, _username(kind, rows[0]), again=True)
            if found:
                self.link.remove(PATHS[kind], [row[".id"] for row in found])

    # -- sessions -------------------------------------------------------------------------

    def _kick_after_set(self, key: str, before: Held, want: Entries) -> None:
        """Mark the sessions that run under what just changed (a profile, an address, a name, a
        suspension) to be ended."""
        new = want.secret
        for old in before.secret:
            if new is None or any(str(old.get(name) or "") != str(new.get(name) or "")
                                  for name in ("name", "profile", "remote-address")):
                self._kicks.add(PPP_ACTIVE, old.get("name"), key)
        new = want.hotspot
        for old in before.hotspot:
            if (new is None or old.get("name") != new["name"]
                    or (truth(new["disabled"]) and not truth(old.get("disabled")))):
                self._kicks.add(HOTSPOT_ACTIVE, old.get("name"), key)


def _username(kind: str, attrs: dict) -> str | None:
    return attrs.get("name") if kind in (SECRET, HOTSPOT) else None
