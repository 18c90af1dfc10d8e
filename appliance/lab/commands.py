"""What each command does: menu and verb in, reply sentences (lists of words) out.

Refusals are raised as :class:`~appliance.lab.state.RouterError`; the session turns
them into ``!trap`` + ``!done``. The caller holds the router's lock. Commands under
``/lab`` are the failure controls and simulations; they act on the router object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from appliance.lab import schema
from appliance.lab.query import QueryError, compile_query
from appliance.lab.state import RouterError, Table

if TYPE_CHECKING:
    from appliance.lab.server import LabRouter

Sentence = list[str]
After = Callable[[], None] | None
PRINT_OPTIONS = frozenset(
    {"detail", "without-paging", "terse", "brief", "stats", "show-ids", "count-only", "value-list"}
)
LAB_VERBS = frozenset(
    {"drop", "stall", "release", "down", "reboot", "save", "connect-ppp", "connect-hotspot", "stats"}
)


def split_command(command: str) -> tuple[str, str]:
    """``/ip/firewall/address-list/print`` → (``/ip/firewall/address-list``, ``print``)."""
    menu, _, verb = command.rpartition("/")
    return menu, verb


def _id_ref(attrs: dict[str, str]) -> str | None:
    ref = attrs.pop(".id", None)
    numbers = attrs.pop("numbers", None)
    return ref if ref is not None else numbers


class Commands:
    """Runs commands against one :class:`~appliance.lab.server.LabRouter`."""

    def __init__(self, router: LabRouter):
        self.router = router

    def run(self, command: str, attrs: dict[str, str], queries: list[str]) -> tuple[list[Sentence], After]:
        """Reply sentences for one command, and an action to take once they are sent."""
        menu_path, verb = split_command(command)
        if menu_path == "/lab":
            return self._lab(verb, attrs)
        menu = schema.MENUS.get(menu_path)
        if menu is None:
            if command in schema.MENU_PREFIXES or menu_path in schema.MENU_PREFIXES:
                raise RouterError("no such command")
            raise RouterError("no such command prefix")
        if verb not in menu.verbs:
            raise RouterError("no such command")
        if verb == "getall":
            verb = "print"
        if menu.singleton:
            return self._singleton(menu, verb, attrs, queries), None
        table = self.router.state.table(menu.path)
        handler = getattr(self, "_" + verb)
        if verb == "print":
            return handler(table, attrs, queries), None
        return handler(table, attrs), None

    # -- printing ----------------------------------------------------------------

    def _rows_out(self, rows, attrs: dict[str, str], queries: list[str], booleans) -> list[Sentence]:
        proplist = attrs.pop(".proplist", None)
        for name in attrs:
            if name not in PRINT_OPTIONS:
                raise RouterError("unknown parameter", 1)
        try:
            keep = compile_query(queries, booleans)
        except QueryError:
            raise RouterError("invalid query", 1) from None
        if keep is not None:
            rows = [row for row in rows if keep(row)]
        if "count-only" in attrs:
            return [["!done", f"=ret={len(rows)}"]]
        out: list[Sentence] = []
        if proplist:
            props = [p for p in proplist.split(",") if p]
            for row in rows:
                out.append(["!re", *(f"={p}={row[p]}" for p in props if p in row)])
        else:
            for row in rows:
                out.append(["!re", *(f"={k}={v}" for k, v in row.items())])
        if not out and self.router.send_empty:
            out.append(["!empty"])
        out.append(["!done"])
        return out

    def _print(self, table: Table, attrs: dict[str, str], queries: list[str]) -> list[Sentence]:
        rows = table.rows.values()
        if table.builtin:
            rows = [table.rows[n] for n in sorted(table.rows)]
        if table.menu.active:
            rows = [table.view(row) for row in rows]
        return self._rows_out(rows, attrs, queries, table.menu.booleans)

    def _singleton(self, menu: schema.Menu, verb: str, attrs: dict[str, str], queries) -> list[Sentence]:
        row = {"name": self.router.state.identity} if menu is schema.IDENTITY else self.router.resource()
        if verb == "print":
            return self._rows_out([row], attrs, queries, menu.booleans)
        if verb == "get":
            return [self._get_value(row, attrs)]
        # set: only /system/identity has it
        unknown = set(attrs) - {"name"}
        if unknown:
            raise RouterError("unknown parameter", 1)
        if "name" in attrs:
            self.router.state.identity = attrs["name"]
            self.router.count_write()
        return [["!done"]]

    @staticmethod
    def _get_value(row: dict[str, str], attrs: dict[str, str]) -> Sentence:
        name = attrs.pop("value-name", None)
        if name is None:
            raise RouterError("missing value(s) of argument(s) value-name", 1)
        if attrs:
            raise RouterError("unknown parameter", 1)
        return ["!done", f"=ret={row.get(name, '')}"]

    def _get(self, table: Table, attrs: dict[str, str]) -> list[Sentence]:
        ref = _id_ref(attrs)
        if ref is None:
            ref = attrs.pop("number", "")
        number = table.resolve(ref)
        return [self._get_value(table.view(table.rows[number]), attrs)]

    # -- changes -----------------------------------------------------------------

    def _check_references(self, table: Table, attrs: dict[str, str]) -> None:
        if table.menu is schema.PPP_SECRET and "profile" in attrs:
            profiles = self.router.state.table(schema.PPP_PROFILE.path)
            if not any(row.get("name") == attrs["profile"] for row in profiles.rows.values()):
                raise RouterError("input does not match any value of profile")

    def _add(self, table: Table, attrs: dict[str, str]) -> list[Sentence]:
        attrs = table.normalise(attrs)
        self._check_references(table, attrs)
        row = table.insert(attrs)
        self.router.count_write()
        return [["!done", f"=ret={row['.id']}"]]

    def _set(self, table: Table, attrs: dict[str, str]) -> list[Sentence]:
        ref = _id_ref(attrs)
        if ref is None:
            raise RouterError("missing value(s) of argument(s) .id", 1)
        numbers = table.resolve_many(ref)
        attrs = table.normalise(attrs)
        self._check_references(table, attrs)
        for number in numbers:
            table.update(number, attrs)
        self.router.count_write()
        return [["!done"]]

    def _unset(self, table: Table, attrs: dict[str, str]) -> list[Sentence]:
        ref = _id_ref(attrs)
        name = attrs.pop("value-name", None)
        if ref is None or name is None:
            raise RouterError("missing value(s) of argument(s) " + (".id" if ref is None else "value-name"), 1)
        if attrs or name not in table.menu.writable or name in table.menu.required or name in table.menu.unique:
            raise RouterError("unknown parameter", 1)
        for number in table.resolve_many(ref):
            table.unset(number, name)
        self.router.count_write()
        return [["!done"]]

    def _switch(self, table: Table, attrs: dict[str, str], disabled: str) -> list[Sentence]:
        ref = _id_ref(attrs)
        if attrs:
            raise RouterError("unknown parameter", 1)
        if "disabled" not in table.menu.writable:
            raise RouterError("no such command")
        for number in table.resolve_many(ref or ""):
            table.update(number, {"disabled": disabled})
        self.router.count_write()
        return [["!done"]]

    def _enable(self, table: Table, attrs: dict[str, str]) -> list[Sentence]:
        return self._switch(table, attrs, "false")

    def _disable(self, table: Table, attrs: dict[str, str]) -> list[Sentence]:
        return self._switch(table, attrs, "true")

    def _remove(self, table: Table, attrs: dict[str, str]) -> list[Sentence]:
        ref = _id_ref(attrs)
        if attrs:
            raise RouterError("unknown parameter", 1)
        removed = table.delete(table.resolve_many(ref or ""))
        if table.menu.active:
            for row in removed:
                self.router.count_kick(table.menu.path, row)
        self.router.count_write()
        return [["!done"]]

    # -- /lab ----------------------------------------------------------------------

    def _lab(self, verb: str, attrs: dict[str, str]) -> tuple[list[Sentence], After]:
        router = self.router
        if verb not in LAB_VERBS:
            raise RouterError("no such command")
        done = [["!done"]]
        if verb == "stats":
            row = router.stats()
            return [["!re", *(f"={k}={v}" for k, v in row.items())], ["!done"]], None
        if verb == "drop":
            reset = attrs.get("reset", "no") in ("yes", "true")
            return done, lambda: router.drop(reset=reset)
        if verb == "stall":
            seconds = _seconds(attrs.get("seconds"))
            router.stall(seconds)
            return done, None
        if verb == "release":
            router.release()
            return done, None
        if verb == "down":
            seconds = _seconds(attrs.get("seconds"))
            return done, lambda: router.down(seconds)
        if verb == "reboot":
            lose = [p for p in attrs.get("lose", "").split(",") if p]
            unknown = [p for p in lose if p not in router.state.tables]
            if unknown:
                raise RouterError(f"no such table: {','.join(unknown)}", 1)
            return done, lambda: router.reboot(lose=lose)
        if verb == "save":
            if router.state_file is None:
                raise RouterError("failure: no state file configured")
            router.save()
            return done, None
        if verb == "connect-ppp":
            rid = router.connect_ppp(
                _need(attrs, "name"),
                _need(attrs, "address"),
                service=attrs.get("service", "pppoe"),
                caller_id=attrs.get("caller-id", ""),
            )
            return [["!done", f"=ret={rid}"]], None
        # connect-hotspot
        rid = router.connect_hotspot(
            _need(attrs, "user"),
            _need(attrs, "address"),
            mac_address=attrs.get("mac-address", ""),
            server=attrs.get("server", "hotspot1"),
        )
        return [["!done", f"=ret={rid}"]], None


def _need(attrs: dict[str, str], name: str) -> str:
    value = attrs.get(name)
    if not value:
        raise RouterError(f"missing value(s) of argument(s) {name}", 1)
    return value


def _seconds(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise RouterError("invalid value for argument seconds", 1) from None
    if value < 0:
        raise RouterError("invalid value for argument seconds", 1)
    return value
