"""The lab router's configuration and live tables, and their JSON file.

Rows are ``dict[str, str]`` keyed by attribute name, ``.id`` included (``*1A``: hex,
upper case, counting up per table and never reused). Not thread-safe by itself: the
server holds one lock around every use.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable

from appliance.lab import schema
from appliance.lab.schema import Menu

STATE_FORMAT = "wispbill-lab-router/1"
_BOOLEANS = {"yes": "true", "true": "true", "no": "false", "false": "false"}
# Built-in rows can sit at the top of the id space (default-encryption is *FFFFFFFE);
# they must not drag the counter for ordinary rows up there.
_BUILTIN_IDS = 0xFFFF0000
_ID = re.compile(r"\*[0-9A-Fa-f]{1,8}")
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")


class RouterError(Exception):
    """A refusal the router reports as ``!trap`` (``message``, optional ``category``)."""

    def __init__(self, message: str, category: int | None = None):
        super().__init__(message)
        self.message = message
        self.category = category


def format_id(number: int) -> str:
    """``26`` → ``*1A``."""
    return f"*{number:X}"


def parse_id(text: str) -> int | None:
    """``*1A`` → ``26``; ``None`` when it is not an id."""
    if not _ID.fullmatch(text):
        return None
    return int(text[1:], 16)


def format_duration(seconds: float) -> str:
    """Seconds as RouterOS writes a time span: ``1w2d3h4m5s``, ``0s``."""
    left = int(seconds)
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    if left or not parts:
        parts.append(f"{left}s")
    return "".join(parts)


def now_text() -> str:
    """The local time as RouterOS 7.10+ writes it (``2025-03-01 12:00:00``)."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _normalise_address(value: str) -> str:
    # RouterOS shows a single host without its /32.
    return value[:-3] if value.endswith("/32") else value


def _normalise_target(value: str) -> str:
    # ... and a queue target as a prefix: 10.0.0.5 becomes 10.0.0.5/32.
    return ",".join(part + "/32" if _IPV4.fullmatch(part) else part for part in value.split(","))


class Table:
    """The rows of one menu, with an index for its unique key."""

    def __init__(self, menu: Menu):
        self.menu = menu
        self.rows: dict[int, dict[str, str]] = {}
        self.next_id = 1
        self.builtin: set[int] = set()
        self._keys: dict[tuple[str, ...], int] = {}
        self.since: dict[int, float] = {}  # active sessions: when they started
        self._auto_hint = 1

    # -- lookups ---------------------------------------------------------------

    def key_of(self, row: dict[str, str]) -> tuple[str, ...] | None:
        unique = self.menu.unique
        if not unique:
            return None
        return tuple(row.get(name, "") for name in unique)

    def resolve(self, ref: str) -> int:
        """The row number for ``*1A`` (or, like RouterOS, a row's name); ``no such item``."""
        number = parse_id(ref)
        if number is not None and number in self.rows:
            return number
        if number is None and ref and "name" in self.menu.writable:
            for rid, row in self.rows.items():
                if row.get("name") == ref:
                    return rid
        raise RouterError("no such item")

    def resolve_many(self, refs: str) -> list[int]:
        """Every row named in a comma-separated list; all of them or ``no such item``."""
        parts = [part for part in refs.split(",") if part]
        if not parts:
            raise RouterError("no such item")
        return list(dict.fromkeys(self.resolve(part) for part in parts))

    # -- changes ---------------------------------------------------------------

    def normalise(self, attrs: dict[str, str], *, allow_readonly: bool = False) -> dict[str, str]:
        """Check attribute names and values the way add/set do; returns cleaned values."""
        menu = self.menu
        out: dict[str, str] = {}
        for name, value in attrs.items():
            if name not in menu.writable and not (allow_readonly and name in menu.readonly):
                raise RouterError("unknown parameter", 1)
            if name in menu.booleans:
                if value not in _BOOLEANS:
                    raise RouterError(f"input does not match any value of {name}", 1)
                value = _BOOLEANS[value]
            elif menu is schema.ADDRESS_LIST and name == "address":
                value = _normalise_address(value)
            elif menu is schema.QUEUE_SIMPLE and name == "target":
                value = _normalise_target(value)
            out[name] = value
        return out

    def _check_unique(self, row: dict[str, str], own: int | None) -> None:
        key = self.key_of(row)
        if key is None:
            return
        holder = self._keys.get(key)
        if holder is not None and holder != own:
            raise RouterError(self.menu.duplicate)

    def _auto_name(self) -> str:
        # The lowest free queueN, found through the name index; the hint makes a long run
        # of unnamed adds cost O(1) each (it goes back to 1 whenever a row is removed).
        prefix, n = self.menu.auto_name, self._auto_hint
        while (f"{prefix}{n}",) in self._keys:
            n += 1
        self._auto_hint = n + 1
        return f"{prefix}{n}"

    def insert(self, attrs: dict[str, str], *, number: int | None = None) -> dict[str, str]:
        """Add a row from checked attributes (defaults filled in); returns the stored row."""
        menu = self.menu
        if menu.auto_name and not attrs.get("name"):
            attrs = {**attrs, "name": self._auto_name()}
        for name in menu.required:
            if not attrs.get(name):
                raise RouterError(f"missing value(s) of argument(s) {name}", 1)
        # Attributes in the menu's order, as print shows them: .id, writable, read-only.
        row = {".id": ""}
        get = attrs.get
        for name, default in menu.layout:
            value = get(name, default)
            if value is not None:
                row[name] = value
        row.update(attrs)
        if menu is schema.ADDRESS_LIST:
            row.setdefault("creation-time", now_text())
            if "timeout" in attrs:
                row["dynamic"] = "true"
        self._check_unique(row, None)
        if number in self.rows:
            raise RouterError(f"id {format_id(number)} is taken")
        if number is None:
            number = self.next_id
            self.next_id += 1
        elif number < _BUILTIN_IDS:
            self.next_id = max(self.next_id, number + 1)
        row[".id"] = format_id(number)
        self.rows[number] = row
        key = self.key_of(row)
        if key is not None:
            self._keys[key] = number
        return row

    def update(self, number: int, attrs: dict[str, str]) -> None:
        """Change one row (attributes already checked)."""
        row = self.rows[number]
        if number in self.builtin and "name" in attrs and attrs["name"] != row.get("name"):
            raise RouterError("failure: can not change name of default profile")
        changed = {**row, **attrs}
        self._check_unique(changed, number)
        old_key = self.key_of(row)
        row.update(attrs)
        new_key = self.key_of(row)
        if old_key != new_key:
            self._keys.pop(old_key, None)
            self._keys[new_key] = number

    def unset(self, number: int, name: str) -> None:
        """Put one attribute back to its default (or drop it when it has none)."""
        row = self.rows[number]
        default = self.menu.writable.get(name)
        changed = {k: v for k, v in row.items() if k != name}
        if default is not None:
            changed[name] = default
        self._check_unique(changed, number)
        old_key = self.key_of(row)
        if default is None:
            row.pop(name, None)
        else:
            row[name] = default
        new_key = self.key_of(row)
        if old_key != new_key:
            self._keys.pop(old_key, None)
            self._keys[new_key] = number

    def delete(self, numbers: Iterable[int]) -> list[dict[str, str]]:
        """Remove rows (all or none: built-in rows refuse); returns the removed rows."""
        numbers = list(numbers)
        for number in numbers:
            if number in self.builtin:
                raise RouterError("failure: can not remove default profile")
        removed = []
        self._auto_hint = 1
        for number in numbers:
            row = self.rows.pop(number)
            self.since.pop(number, None)
            key = self.key_of(row)
            if key is not None and self._keys.get(key) == number:
                del self._keys[key]
            removed.append(row)
        return removed

    def clear(self) -> None:
        """Forget every row but the built-in ones; ids keep counting up."""
        for number in [n for n in self.rows if n not in self.builtin]:
            self.delete([number])

    def view(self, row: dict[str, str]) -> dict[str, str]:
        """A row as print shows it (live values such as an active session's uptime)."""
        if not self.menu.active:
            return row
        number = parse_id(row[".id"])
        since = self.since.get(number)
        if since is None:
            return row
        return {**row, "uptime": format_duration(time.time() - since)}


class RouterState:
    """Identity, tables and the counters tests look at."""

    def __init__(self, identity: str = "MikroTik"):
        self.identity = identity
        self.booted = time.time()
        self.tables: dict[str, Table] = {menu.path: Table(menu) for menu in schema.TABLES}
        self._add_builtins()

    def _add_builtins(self) -> None:
        profiles = self.tables[schema.PPP_PROFILE.path]
        for preset in schema.PPP_BUILTIN_PROFILES:
            number = parse_id(preset[".id"])
            if number in profiles.rows:
                continue
            attrs = {k: v for k, v in preset.items() if k != ".id"}
            profiles.insert(attrs, number=number)
            profiles.builtin.add(number)

    def table(self, path: str) -> Table:
        """The table for a menu path; ``KeyError`` for anything else."""
        return self.tables[path]

    def uptime(self) -> str:
        return format_duration(time.time() - self.booted)

    # -- reboot ----------------------------------------------------------------

    def reboot(self, lose: Iterable[str] = ()) -> None:
        """What a reboot leaves: no sessions, no dynamic rows, and ``lose`` emptied."""
        lose = set(lose)
        unknown = lose - set(self.tables)
        if unknown:
            raise KeyError(f"no such table: {', '.join(sorted(unknown))}")
        for path, table in self.tables.items():
            if table.menu.active or path in lose:
                table.clear()
                continue
            dynamic = [n for n, row in table.rows.items() if row.get("dynamic") == "true"]
            if dynamic:
                table.delete(dynamic)
        self.booted = time.time()

    # -- JSON ------------------------------------------------------------------

    def to_json(self) -> dict:
        return {
            "format": STATE_FORMAT,
            "identity": self.identity,
            "tables": {
                path: {"next_id": table.next_id, "rows": list(table.rows.values())}
                for path, table in self.tables.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict) -> RouterState:
        """Rebuild from :meth:`to_json` output; ``ValueError`` when it is not one."""
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a lab router state (expected format {STATE_FORMAT!r})")
        state = cls(identity=str(data.get("identity", "MikroTik")))
        for path, saved in (data.get("tables") or {}).items():
            if path not in state.tables:
                raise ValueError(f"unknown table {path!r} in state")
            table = state.tables[path]
            for row in saved.get("rows", []):
                number = parse_id(str(row.get(".id", "")))
                if number is None:
                    raise ValueError(f"row without a valid .id in {path}")
                if number in table.builtin:
                    table.rows[number].update({str(k): str(v) for k, v in row.items()})
                    continue
                attrs = {str(k): str(v) for k, v in row.items() if k != ".id"}
                try:
                    table.insert(attrs, number=number)
                except RouterError as exc:
                    raise ValueError(f"bad row {row.get('.id')} in {path}: {exc.message}") from None
                if table.menu.active:
                    table.since[number] = time.time()
            table.next_id = max(table.next_id, int(saved.get("next_id", 1)))
        return state

    def save(self, path: str | os.PathLike) -> None:
        """Write the state atomically (a temporary file renamed over ``path``)."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".lab-state-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_json(), fh, indent=1)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> RouterState:
        """Read a file written by :meth:`save`; ``ValueError`` for a bad one."""
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not JSON ({exc})") from None
        return cls.from_json(data)
