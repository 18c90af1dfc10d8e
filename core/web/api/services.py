"""``/services``: customers' subscriptions, adding them, changing plan, cancelling, usage."""

from __future__ import annotations

from core import services, usage_summary
from core.models import BILLING_MODES, Customer, Service
from core.web.api import bp
from core.web.api.auth import api_call
from core.web.api.common import ID, answer, one, paged
from core.web.api.fields import Field, Fields, page_fields
from core.web.api.openapi import operation
from core.validate import INT64_MAX

LIST = page_fields(Field("customer_id", "integer", minimum=1, maximum=INT64_MAX, description="Only this customer's."))
PLAN = Field("plan", required=True, max_length=70, description="A plan code, or code@version.")
CREATE = Fields(
    Field("customer_id", "integer", required=True, minimum=1, maximum=INT64_MAX), PLAN,
    Field("start_date", "date", description="Default today."),
    Field("anchor_day", "integer", minimum=1, maximum=31, description="Day of the month bills fall on "
                                                                      "(monthly plans); default the start day."),
    Field("billing_mode", enum=BILLING_MODES, description="Default postpaid."),
    Field("price_override", "money", description="Instead of the plan's price."),
    Field("username", max_length=100), Field("password", max_length=255, description="Never shown back."),
    Field("ip_address", max_length=45),
)
CHANGE = Fields(
    PLAN, Field("on", "date", description="Today (default) or a day already past."),
    Field("now", "boolean", description="A downgrade takes effect on `on` instead of at renewal."),
    Field("at_renewal", "boolean", description="Wait for the end of the current period."),
)
CANCEL = Fields(
    Field("on", "date", description="The last day is the day before; default today."),
    Field("at_period_end", "boolean", description="End with the current period instead."),
    Field("reason", max_length=500, description="On the credit note for days already billed."),
)


def _numbers(notes) -> list[str]:
    return [f"{n.series}-{n.number:06d}" for n in notes]


@bp.route("/services", methods=["GET"])
@api_call("services:read")
@operation("Services, newest first", query=LIST, answer="ServiceList")
def list_services():
    args = LIST.parse_query()
    query = Service.select().order_by(Service.id.desc())
    if "customer_id" in args:
        query = query.where(Service.customer == one(Customer, args["customer_id"], "customer").id)
    return answer(paged(query, args, services.as_dict))


@bp.route(f"/services/<{ID}:service_id>", methods=["GET"])
@api_call("services:read")
@operation("A service", answer="Service")
def get_service(service_id: int):
    return answer(services.as_dict(one(Service, service_id, "service")))


@bp.route("/services", methods=["POST"])
@api_call("services:write")
@operation("Subscribe a customer to a plan", body=CREATE, answer="Service", status=201)
def create_service():
    data = CREATE.parse_body()
    customer = one(Customer, data.pop("customer_id"), "customer")
    service = services.add(customer=customer, **data)
    return answer(services.as_dict(Service.get_by_id(service.id)), 201)


@bp.route(f"/services/<{ID}:service_id>/plan-change", methods=["POST"])
@api_call("services:write")
@operation("Move a service to another plan", body=CHANGE, answer="PlanChange",
           description="An upgrade takes effect on `on`; a downgrade at renewal unless `now`. Days already "
                       "billed are credited and charged again at the new price.")
def change_plan(service_id: int):
    data = CHANGE.parse_body()
    service = one(Service, service_id, "service")
    result = services.change_plan(service, data["plan"], on=data.get("on"), now=bool(data.get("now")),
                                  at_renewal=bool(data.get("at_renewal")))
    return answer({"service": services.as_dict(Service.get_by_id(service.id)),
                   "effective": result["effective"].isoformat() if result["effective"] else None,
                   "upgrade": result["upgrade"], "credit_notes": _numbers(result["credit_notes"]),
                   "charges": len(result["charges"])})


@bp.route(f"/services/<{ID}:service_id>/cancel", methods=["POST"])
@api_call("services:write")
@operation("Cancel a service", body=CANCEL, answer="Cancellation")
def cancel_service(service_id: int):
    data = CANCEL.parse_body()
    service = one(Service, service_id, "service")
    result = services.cancel(service, on=data.get("on"), at_period_end=bool(data.get("at_period_end")),
                             reason=data.get("reason") or "")
    return answer({"service": services.as_dict(Service.get_by_id(service.id)),
                   "end_date": result["end_date"].isoformat(), "credit_notes": _numbers(result["credit_notes"]),
                   "charges": len(result["charges"])})


@bp.route(f"/services/<{ID}:service_id>/usage", methods=["GET"])
@api_call("usage:read")
@operation("What a service used this billing period, day by day, against its data cap", answer="Usage")
def service_usage(service_id: int):
    return answer(usage_summary.this_period(one(Service, service_id, "service")).as_dict())
