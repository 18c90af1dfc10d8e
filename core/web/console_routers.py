"""Console: routers (status, test, reconcile now, setup script) and dunning (policies, states, pushes)."""

from __future__ import annotations

from htmx_flask import request as htmx_request

from core import audit, dunning_policies, enforcement, routers
from core.db import database
from core.errors import NotFound, PluginError, ValidationError
from core.models import ACCOUNT_STATES, Customer, Router, Service
from core.web.auth import staff
from core.web.console import bp, page, plugin_links


def _rows():
    tally = routers.counts()
    return [routers.as_dict(r, tally.get(r.id)) for r in routers.listing()]


def _router(router_id: int) -> Router:
    found = Router.get_or_none(Router.id == router_id)
    if found is None:
        raise NotFound(f"no router {router_id}")
    return found


def _where(router: Router) -> str:
    return f"{router.host}:{router.port}" if router.port else router.host


def _result(router: Router, kind: str, ok: bool, lines: list[str]):
    """The answer to a test or a reconcile: the result panel for htmx, else the whole page with it."""
    result = {"router": router.name, "kind": kind, "ok": ok, "lines": lines}
    if htmx_request.htmx:
        return page("console/_router_result.html", result=result)
    return page("console/routers.html", routers=_rows(), result=result, links=plugin_links())


@bp.route("/routers", endpoint="routers")
@staff("view")
def routers_page():
    """Every router: kind, address, last seen and reconciled, last error, services and pending pushes."""
    return page("console/routers.html", routers=_rows(), result=None, links=plugin_links())


@bp.route("/routers/<int:router_id>/test", methods=("POST",))
@staff("routers.test")
def router_test(router_id: int):
    """Connect to the router through its enforcer and show what it says it is, or why it cannot."""
    router = _router(router_id)
    try:
        found = routers.check(router)
    except OSError as exc:
        return _result(router, "test", False, [f"{router.name} at {_where(router)} cannot be reached: {exc}"])
    except (NotFound, PluginError) as exc:
        return _result(router, "test", False, [str(exc)])
    lines = [f"{router.name} answers: {found.identity}" + (f", version {found.version}" if found.version else "")]
    if found.detail:
        lines.append(found.detail)
    return _result(router, "test", True, lines)


@bp.route("/routers/<int:router_id>/reconcile", methods=("POST",))
@staff("routers.manage")
def router_reconcile(router_id: int):
    """Make the router hold exactly what billing wants now, and show what changed."""
    router = _router(router_id)
    result = enforcement.reconcile(router)
    with database.atomic():
        audit.record("router.reconcile", "router", router.id, None,
                     {"changes": result.changes, "applied": result.applied, "failed": len(result.failed),
                      "error": result.error})
    if result.error:
        return _result(router, "reconcile", False, [f"{router.name} was not reconciled: {result.error}"])
    lines = [f"{result.desired} wanted, {result.read} held, {result.changes} changed "
             f"({result.applied} applied) in {result.seconds:.2f} s"]
    lines += [f"{key}: {why}" for key, why in sorted(result.failed.items())[:20]]
    return _result(router, "reconcile", not result.failed, lines)


@bp.route("/routers/<int:router_id>/script")
@staff("view")
def router_script(router_id: int):
    """The commands the operator pastes into the router once; or what must be set first."""
    router = _router(router_id)
    script, problem = None, None
    try:
        script = routers.setup_script(router)
    except (ValidationError, NotFound, PluginError) as exc:
        problem = str(exc)
    return page("console/router_script.html", router=router, script=script, problem=problem)


# --- dunning -------------------------------------------------------------------------

@bp.route("/dunning", endpoint="dunning")
@staff("view")
def dunning_page():
    """The dunning policies, accounts by state, and the router pushes still pending (with their errors)."""
    counts = {state: 0 for state in ACCOUNT_STATES}
    for state, n in database.obj.execute_sql("SELECT state, COUNT(*) FROM customer GROUP BY state").fetchall():
        counts[state] = n
    policies = [dunning_policies.as_dict(p) for p in dunning_policies.listing()]
    pending = enforcement.pending()
    services = {s.id: s for s in Service.select(Service, Customer).join(Customer)
                .where(Service.id.in_([e.service_id for e in pending]))} if pending else {}
    names = {r.id: r.name for r in Router.select(Router.id, Router.name)}
    return page("console/dunning.html", counts=counts, policies=policies, pending=pending,
                services=services, router_names=names, links=plugin_links())
