"""``/routers``: the routers kept in step with billing (never their secrets), and reconciling one."""

from __future__ import annotations

import dataclasses

from core import enforcement, routers
from core.models import Router
from core.web.api import bp
from core.web.api.auth import api_call
from core.web.api.common import ID, answer, one, paged_list
from core.web.api.fields import page_fields
from core.web.api.openapi import operation

LIST = page_fields(default_limit=100)


@bp.route("/routers", methods=["GET"])
@api_call("routers:read")
@operation("Routers, by name, with services bound and changes pending", query=LIST, answer="RouterList")
def list_routers():
    args = LIST.parse_query()
    tally = routers.counts()
    return answer(paged_list(routers.listing(), args, lambda r: routers.as_dict(r, tally.get(r.id)),
                             default_limit=100))


@bp.route(f"/routers/<{ID}:router_id>", methods=["GET"])
@api_call("routers:read")
@operation("A router", answer="Router")
def get_router(router_id: int):
    router = one(Router, router_id, "router")
    return answer(routers.as_dict(router, routers.counts().get(router.id)))


@bp.route(f"/routers/<{ID}:router_id>/reconcile", methods=["POST"])
@api_call("routers:write")
@operation("Reconcile a router now: read it, and apply only what differs from billing", answer="Reconcile",
           description="An unreachable router is no error of the call: `error` says what went wrong.",
           errors=(404,))
def reconcile_router(router_id: int):
    result = enforcement.reconcile(one(Router, router_id, "router"))
    return answer(dataclasses.asdict(result))
