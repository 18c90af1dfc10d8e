"""The plugin manager: built-in plugins by list, third-party ones by entry point.

Built-ins (``plugins/`` and ``gateways/``) are registered first, then every entry point
in the ``wispbill.plugins`` group. pluggy calls the most recently registered plugin
first, so an installed plugin is asked before a built-in one. A plugin that fails to
import, or implements a hook that does not exist, is reported by name and left out;
the rest of the app starts. ``WISPBILL_DISABLE_PLUGINS`` blocks plugins by name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from dataclasses import dataclass, field

import pluggy

from core import PROJECT_NAME, __version__, hookspecs
from core.errors import PluginError, ValidationError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "wispbill.plugins"

BUILTIN_PLUGINS = (
    "gateways.bank",
    "gateways.manual",
    "gateways.mpesa",
    "gateways.stripe",
    "plugins.backups",
    "plugins.billing_run",
    "plugins.bundles",
    "plugins.company_settings",
    "plugins.customer_messages",
    "plugins.dunning",
    "plugins.email",
    "plugins.enforcement",
    "plugins.event_outbox",
    "plugins.housekeeping",
    "plugins.log_notifier",
    "plugins.mikrotik",
    "plugins.radius",
    "plugins.tax_regions",
)


@dataclass
class LoadFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    source: str
    error: str


@dataclass
class PluginInfo:
    """What ``wispbill plugins`` shows for one loaded plugin."""

    name: str
    source: str
    version: str
    hooks: list[str] = field(default_factory=list)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus where each plugin came from and what failed to load."""

    def __init__(self):
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.sources: dict[str, tuple[str, str]] = {}
        self.failures: list[LoadFailure] = []

    def _unknown_hooks(self, plugin) -> list[str]:
        unknown = []
        for attr in dir(plugin):
            if self.parse_hookimpl_opts(plugin, attr) is None:
                continue
            caller = getattr(self.hook, attr, None)
            if caller is None or caller.spec is None:
                unknown.append(attr)
        return unknown

    def add(self, plugin, name: str, source: str, version: str = "") -> bool:
        """Register ``plugin`` as ``name``; record a failure instead of raising. True if loaded."""
        if self.is_blocked(name):
            log.info("plugin %s is disabled", name)
            return False
        unknown = self._unknown_hooks(plugin)
        if unknown:
            self._fail(name, source, f"implements unknown hook(s): {', '.join(sorted(unknown))}")
            return False
        try:
            self.register(plugin, name=name)
        except Exception as exc:  # pluggy validation errors, duplicate names
            self._fail(name, source, str(exc))
            return False
        self.sources[name] = (source, version)
        return True

    def _fail(self, name: str, source: str, error: str) -> None:
        log.error("plugin %s (%s) not loaded: %s", name, source, error)
        self.failures.append(LoadFailure(name, source, error))

    def load_builtins(self, modules=BUILTIN_PLUGINS) -> None:
        """Import and register the built-in plugin modules."""
        for dotted in modules:
            name = dotted.rsplit(".", 1)[-1]
            if self.is_blocked(name):
                continue
            try:
                module = importlib.import_module(dotted)
            except Exception as exc:
                self._fail(name, "builtin", f"import failed: {exc.__class__.__name__}: {exc}")
                continue
            self.add(module, name, "builtin", __version__)

    def load_entry_points(self) -> None:
        """Import and register every plugin of the ``wispbill.plugins`` entry-point group."""
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            source = f"entry point {ep.value}" + (f" ({dist.name})" if dist else "")
            version = dist.version if dist else ""
            if self.is_blocked(ep.name) or ep.name in self.sources:
                if ep.name in self.sources:
                    self._fail(ep.name, source, "another plugin already has this name")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, source, f"import failed: {exc.__class__.__name__}: {exc}")
                continue
            self.add(plugin, ep.name, source, version)

    def report(self) -> list[PluginInfo]:
        """Every loaded plugin with its source, version and the hooks it implements."""
        infos = []
        for name, plugin in sorted(self.list_name_plugin(), key=lambda np: np[0]):
            if name not in self.sources:
                continue
            source, version = self.sources[name]
            hooks = sorted(caller.name for caller in (self.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(name, source, version, hooks))
        return infos

    def register(self, plugin, name=None):
        self._impl_cache = {}
        return super().register(plugin, name)

    def unregister(self, plugin=None, name=None):
        self._impl_cache = {}
        return super().unregister(plugin, name)

    def _impls(self, hook_name: str):
        # pluggy calls implementations last-registered first; mirror that order. Kept until the
        # set of plugins changes: the billing run asks for the same hooks for every invoice.
        cache = self.__dict__.setdefault("_impl_cache", {})
        found = cache.get(hook_name)
        if found is None:
            found = cache[hook_name] = tuple(reversed(getattr(self.hook, hook_name).get_hookimpls()))
        return found

    def call_each(self, hook_name: str, **kwargs):
        """Call a hook's implementations one at a time, in call order.

        Yields ``(plugin, value, error)`` for each: ``error`` is a :class:`PluginError`
        (already logged) when the plugin raised, else ``None``. Being a generator, it lets
        the caller look at the effect of each plugin before the next one runs.
        """
        for impl in self._impls(hook_name):
            try:
                value = impl.function(**{a: kwargs[a] for a in impl.argnames})
            except Exception as exc:
                error = PluginError(impl.plugin_name, hook_name, exc)
                if isinstance(exc, OSError):
                    log.warning("%s", error)
                else:
                    log.exception("%s", error)
                yield impl.plugin_name, None, error
                continue
            yield impl.plugin_name, value, None

    def call_all(self, hook_name: str, **kwargs):
        """Call every implementation of a list hook; a failing plugin is logged and skipped.

        Returns ``(results, errors)``: the non-``None`` answers paired with the plugin
        name, and a :class:`PluginError` for each plugin that raised.
        """
        results, errors = [], []
        for plugin, value, error in self.call_each(hook_name, **kwargs):
            if error is not None:
                errors.append(error)
            elif value is not None:
                results.append((plugin, value))
        return results, errors

    def call_items(self, hook_name: str, expected, **kwargs) -> list[tuple[str, object]]:
        """Call a list hook and flatten the answers into ``(plugin, item)`` pairs.

        A plugin may answer with one item or a list of them. Items that are not instances
        of ``expected`` are logged with the plugin's name and left out, as are plugins that
        raised; the others' items are kept.
        """
        items = []
        results, _errors = self.call_all(hook_name, **kwargs)
        for plugin, answer in results:
            for item in answer if isinstance(answer, (list, tuple)) else [answer]:
                if isinstance(item, expected):
                    items.append((plugin, item))
                else:
                    log.error("%s", PluginError(plugin, hook_name, f"expected {_type_name(expected)}, got {item!r}"))
        return items

    def collect_named(self, hook_name: str, expected, key: str, **kwargs) -> dict:
        """Items of a list hook by their ``key`` attribute; the plugin registered first keeps a name.

        Built-ins are registered before installed plugins, so an installed plugin cannot
        quietly take over a built-in gateway, router kind or setting. A name claimed
        again is logged with the claiming plugin's name and left out; the others stay.
        """
        found: dict = {}
        for plugin, item in reversed(self.call_items(hook_name, expected, **kwargs)):
            name = getattr(item, key)
            if name in found:
                log.error("%s", PluginError(plugin, hook_name, f"{key} {name!r} is already provided"))
                continue
            found[name] = item
        return found

    def call_first(self, hook_name: str, **kwargs):
        """Ask implementations of a firstresult hook in turn; return ``(plugin, answer)``.

        ``ValidationError`` from the plugin in charge passes through unchanged (it is the
        contract for refusing input). Any other exception is logged and the next plugin is
        asked; if no plugin answers, the first such failure is raised as a
        :class:`PluginError`. Returns ``(None, None)`` when nobody answered. An ``OSError``
        (a router or server that cannot be reached) is logged in one line, without a
        traceback: it is an everyday failure the caller reports and retries.
        """
        failure = None
        for impl in self._impls(hook_name):
            try:
                value = impl.function(**{a: kwargs[a] for a in impl.argnames})
            except ValidationError:
                raise
            except Exception as exc:
                error = PluginError(impl.plugin_name, hook_name, exc)
                if isinstance(exc, OSError):
                    log.warning("%s", error)
                else:
                    log.exception("%s", error)
                failure = failure or error
                continue
            if value is not None:
                return impl.plugin_name, value
        if failure is not None:
            raise failure
        return None, None


def _type_name(expected) -> str:
    if isinstance(expected, tuple):
        return " or ".join(t.__name__ for t in expected)
    return expected.__name__


def build_manager(blocked=(), builtins=BUILTIN_PLUGINS, entry_points: bool = True) -> PluginManager:
    """A new manager with the built-ins and (unless told not to) the entry-point plugins loaded."""
    pm = PluginManager()
    for name in blocked:
        pm.set_blocked(name)
    pm.load_builtins(builtins)
    if entry_points:
        pm.load_entry_points()
    return pm


_manager: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide manager, built on first use from the configuration."""
    global _manager
    if _manager is None:
        from core.config import load_config

        _manager = build_manager(blocked=load_config().disable_plugins)
    return _manager


def set_manager(pm: PluginManager | None) -> None:
    """Replace the process-wide manager (the app factory and tests use this)."""
    global _manager
    _manager = pm
