"""The API token page: staff make their own tokens (shown once) and revoke them; admins see and revoke everyone's."""

from __future__ import annotations

import re

from core import api_tokens
from core.models import ApiToken, User
from tests.conftest import csrf_token_from

PAGE = "/admin/tokens/"


def _make(client, **form):
    token = csrf_token_from(client.get(PAGE))
    return client.post(PAGE, data={"csrf_token": token, **form})


def test_staff_make_use_and_revoke_their_own_tokens_and_admins_see_all(app, db, staff_client, logged_in):
    support = staff_client("support")
    page = support.get(PAGE)
    assert page.status_code == 200 and "No tokens yet" in page.get_data(as_text=True)
    offered = set(re.findall(r'name="scopes" value="([^"]+)"', page.get_data(as_text=True)))
    assert offered == {"customers:read", "customers:write", "plans:read", "services:read", "invoices:read",
                       "payments:read", "usage:read", "routers:read"}  # only what the role may hold

    made = _make(support, name="<b>helpdesk</b>", scopes=["customers:read", "customers:write"], expires_days="30")
    html = made.get_data(as_text=True)
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    text = re.search(r"(wb_[A-Za-z0-9_-]{40,})", html).group(1)
    assert "&lt;b&gt;helpdesk&lt;/b&gt;" in html and "<b>helpdesk" not in html
    assert app.test_client().get("/api/v1/customers", headers={"Authorization": f"Bearer {text}"}).status_code == 200
    again = support.get(PAGE).get_data(as_text=True)
    assert text not in again and text[:11] in again  # shown once; afterwards only its prefix

    # refused: a scope beyond the role, no scopes, no form token; nothing made, the form shown back
    refused = _make(support, name="sneaky", scopes=["plans:write"])
    assert refused.status_code == 400 and "may not hold the scope" in refused.get_data(as_text=True)
    assert 'value="sneaky"' in refused.get_data(as_text=True)
    assert _make(support, name="none").status_code == 400
    assert support.post(PAGE, data={"name": "x", "scopes": ["usage:read"]}).status_code == 400
    assert ApiToken.select().count() == 1

    # the admin sees everyone's tokens; support sees only their own and cannot revoke the admin's
    admin_row, _ = api_tokens.create(User.get(User.username == "admin"), name="admin's", scopes=["usage:read"])
    listing = logged_in.get(PAGE).get_data(as_text=True)
    assert "staff-support" in listing and "admin&#39;s" in listing
    assert "admin&#39;s" not in support.get(PAGE).get_data(as_text=True)
    form = csrf_token_from(support.get(PAGE))
    assert support.post(f"{PAGE}{admin_row.id}/revoke", data={"csrf_token": form}).status_code == 404
    assert ApiToken.get_by_id(admin_row.id).revoked_at is None

    mine = ApiToken.get(ApiToken.name == "<b>helpdesk</b>")
    form = csrf_token_from(logged_in.get(PAGE))
    done = logged_in.post(f"{PAGE}{mine.id}/revoke", data={"csrf_token": form})
    assert done.status_code == 302 and ApiToken.get_by_id(mine.id).revoked_at is not None
    assert "is revoked" in logged_in.get(PAGE).get_data(as_text=True)
    assert app.test_client().get("/api/v1/customers", headers={"Authorization": f"Bearer {text}"}).status_code == 401
    assert logged_in.post(f"{PAGE}{mine.id}/revoke", data={"csrf_token": form}).status_code == 302  # already: said so
    assert app.test_client().get(PAGE).status_code == 302  # anonymous: sign in first
