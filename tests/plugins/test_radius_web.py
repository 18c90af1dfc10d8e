"""The RADIUS plugin's console page: the Disconnect/CoA queue with its errors, and "send now" for admins."""

from __future__ import annotations

import pytest

from core import enforcement, routers, settings, users
from core.db import database
from core.models import AuditEvent, Customer
from plugins.radius import actions, sessions
from tests.conftest import csrf_token_from
from tests.factories import make_service
from tests.radius_nas import StandInNAS
from tests.web.conftest import STAFF_PASSWORD, sign_in


@pytest.fixture
def nas():
    with StandInNAS(secret="nas-secret") as stand_in:
        yield stand_in


def test_queue_page_shows_errors_and_admins_send_now(app, logged_in, nas):
    router = routers.add(name="tower-r", kind="radius", host="127.0.0.1", secret="nas-secret",
                         options={"coa_port": nas.port})
    service = make_service(status="active")
    routers.bind_service(service, router=router, access="pppoe", username="ali<ce>", password="pw")
    database.obj.execute_sql(
        "INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, acctstarttime, framedipaddress) "
        f"VALUES ({', '.join([database.obj.param] * 6)})", ("81a1", "u-81a1", "ali<ce>", "127.0.0.1", 1_700_000_000,
                                                            "10.9.0.7"))
    with database.atomic():
        Customer.update(state="suspended").where(Customer.id == service.customer_id).execute()
        enforcement.refresh_customer(service.customer_id)
    settings.set_value("radius.coa_timeout_seconds", "0.3")
    nas.behaviour = [("nak", 506)]
    assert sessions.send_due().retry  # refused: pending, with the NAS's answer as its last error
    [action] = actions.listing("pending")

    users.create("helpdesk", STAFF_PASSWORD, role="support")
    support = sign_in(app.test_client(), "helpdesk")
    page = support.get("/plugins/radius/actions").get_data(as_text=True)
    assert "ali&lt;ce&gt;" in page and "ali<ce>" not in page
    assert "disconnect" in page and "Error-Cause 506" in page and "Send now" not in page
    refused = support.post(f"/plugins/radius/actions/{action['id']}/send",
                           data={"csrf_token": csrf_token_from(support.get("/plugins/radius/actions"))})
    assert refused.status_code == 403 and actions.listing()[0]["status"] == "pending"

    nas.behaviour = "ack"
    page = logged_in.get("/plugins/radius/actions").get_data(as_text=True)
    assert "Send now" in page
    sent = logged_in.post(f"/plugins/radius/actions/{action['id']}/send",
                          data={"csrf_token": csrf_token_from(logged_in.get("/plugins/radius/actions"))},
                          follow_redirects=True)
    assert sent.status_code == 200 and f"Request {action['id']} sent." in sent.get_data(as_text=True)
    assert actions.listing()[0]["status"] == "done" and len(nas.received) == 2
    event = AuditEvent.get(AuditEvent.action == "radius.action.send")
    assert event.actor == "user:admin" and event.object_id == str(action["id"])
    again = logged_in.post(f"/plugins/radius/actions/{action['id']}/send",
                           data={"csrf_token": csrf_token_from(logged_in.get("/plugins/radius/actions"))})
    assert again.status_code == 404  # done: nothing left to send
