"""``/plans``: the catalogue (newest version of each plan) and adding plans or new versions."""

from __future__ import annotations

from core import catalog
from core.models import PLAN_KINDS, PLAN_PERIODS, Plan
from core.web.api import bp
from core.web.api.auth import api_call
from core.web.api.common import ID, answer, one, paged_list
from core.web.api.fields import Field, Fields, page_fields
from core.web.api.openapi import operation

LIST = page_fields(Field("include_inactive", "boolean", description="Also plans no longer offered."), default_limit=100)


def _speed(name):
    return Field(name, "integer", minimum=1, maximum=100_000_000, description="kbit/s.")


CREATE = Fields(
    Field("code", required=True, max_length=60, description="Lower-case letters, digits, '-' and '_'. "
                                                               "An existing code gets a new version."),
    Field("name", required=True, max_length=200),
    Field("kind", required=True, enum=PLAN_KINDS),
    Field("price", "money", required=True, description="Per period; its currency is the plan's."),
    Field("period", enum=PLAN_PERIODS, description="Default monthly."),
    Field("period_days", "integer", minimum=1, maximum=3660, description="For period 'days' only."),
    Field("setup_fee", "money"),
    Field("tax_category", max_length=60, description="Default standard."),
    _speed("download_kbps"), _speed("upload_kbps"),
    Field("data_cap_mb", "integer", minimum=1, maximum=catalog.MAX_DATA_CAP_MB),
    _speed("fup_download_kbps"), _speed("fup_upload_kbps"),
    Field("overage_per_gb", "money"),
)


@bp.route("/plans", methods=["GET"])
@api_call("plans:read")
@operation("The plans on offer (newest version of each)", query=LIST, answer="PlanList")
def list_plans():
    args = LIST.parse_query()
    rows = catalog.listing(include_inactive=args.get("include_inactive", False))
    return answer(paged_list(rows, args, catalog.as_dict, default_limit=100))


@bp.route(f"/plans/<{ID}:plan_id>", methods=["GET"])
@api_call("plans:read")
@operation("A plan version", answer="Plan")
def get_plan(plan_id: int):
    return answer(catalog.as_dict(one(Plan, plan_id, "plan")))


@bp.route("/plans", methods=["POST"])
@api_call("plans:write")
@operation("Add a plan, or a new version of one", body=CREATE, answer="Plan", status=201)
def create_plan():
    data = CREATE.parse_body()
    price = data.pop("price")
    options = {k: v for k, v in data.items() if v is not None}
    plan = catalog.add(currency=price.currency, price=price, **options)
    return answer(catalog.as_dict(plan), 201)
