"""The core's side of enforcer plugins: which router kinds exist, and calls routed by kind.

Only the reconciler calls these; it decides what each router should hold, the enforcer
only reads and applies.
"""

from __future__ import annotations

from core.errors import NotFound, PluginError
from core.hooktypes import ApplyResult, Change, EnforcerInfo, SubscriberState
from core.plugins import get_manager


def available(pm=None) -> dict[str, EnforcerInfo]:
    """Every enforcer the plugins describe, by router kind."""
    pm = pm or get_manager()
    return pm.collect_named("enforcer_describe", EnforcerInfo, "kind")


def _check_kind(router, pm):
    if router.kind not in available(pm):
        raise NotFound(f"no enforcer for router kind {router.kind!r} (router {router.name!r})")


def read_state(router, pm=None) -> list[SubscriberState]:
    """What ``router`` holds now, as its enforcer reads it. Connection errors pass through."""
    pm = pm or get_manager()
    _check_kind(router, pm)
    try:
        plugin, answer = pm.call_first("enforcer_read_state", router=router)
    except PluginError as exc:
        if isinstance(exc.error, OSError):  # unreachable router: the caller retries with backoff
            raise exc.error from None
        raise
    if not isinstance(answer, (list, tuple)) or not all(isinstance(s, SubscriberState) for s in answer):
        raise PluginError(plugin or router.kind, "enforcer_read_state", f"expected a list of SubscriberState, got {answer!r}")
    return list(answer)


def apply(router, changes: list[Change], pm=None) -> ApplyResult:
    """Have ``router``'s enforcer apply ``changes``; returns what it applied and what failed."""
    pm = pm or get_manager()
    _check_kind(router, pm)
    plugin, answer = pm.call_first("enforcer_apply", router=router, changes=list(changes))
    if not isinstance(answer, ApplyResult):
        raise PluginError(plugin or router.kind, "enforcer_apply", f"expected ApplyResult, got {answer!r}")
    return answer
