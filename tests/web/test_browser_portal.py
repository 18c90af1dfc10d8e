"""The customer portal in a real Chromium on a phone-sized screen: sign in, see the usage
chart, and pay one invoice by hand (recorded by staff) and one through Stripe's checkout.

Stripe's API is the loopback stand-in of tests/gateways; its checkout page (on
checkout.stripe.com) is answered by the browser context, and the payment arrives as a
webhook signed the way Stripe signs it.
"""

from __future__ import annotations

import datetime as dt
import urllib.request


from core import payments, portal_accounts, settings
from core.models import Invoice, UsageRecord
from core.money import Money
from tests.factories import make_customer, make_issued_invoice, make_plan, make_service
from tests.gateways.stripe_standin import API_KEY, StripeStandIn
from tests.gateways.test_stripe import WEBHOOK_SECRET, event, notification, session
from tests.web.browser import expect

PASSWORD = "my phone portal password"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _deliver_webhook(base_url: str, evt: dict) -> None:
    note = notification(evt)
    request = urllib.request.Request(f"{base_url}/hooks/stripe", data=note.body, headers=note.headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_customer_on_a_phone_sees_usage_and_pays_by_hand_and_by_card(db, live_server, browser):
    stripe_api = StripeStandIn().start()
    try:
        settings.set_value("stripe.api_base", stripe_api.url)
        settings.set_value("stripe.secret_key", API_KEY)
        settings.set_value("stripe.webhook_secret", WEBHOOK_SECRET)
        customer = make_customer(name="Zawadi Otieno", email="zawadi@example.net", phone="+254 745 000 555")
        portal_accounts.set_password(customer, PASSWORD)
        today = dt.date.today()
        yesterday = today - dt.timedelta(days=1)
        service = make_service(customer, make_plan(name="Home 20", data_cap_mb=20_000), start_date=yesterday,
                               anchor_day=yesterday.day)
        for day, gigabytes in ((yesterday, 3), (today, 1)):
            start = dt.datetime.combine(day, dt.time(9))
            UsageRecord.create(service=service, source="test", external_id=f"b{day}", period_start=start,
                               period_end=start + dt.timedelta(hours=2), bytes_in=gigabytes * 10**9, bytes_out=0)
        by_hand = make_issued_invoice(customer, 150_000, due_date=today - dt.timedelta(days=2))
        by_card = make_issued_invoice(customer, 100_000, due_date=today + dt.timedelta(days=5))
        db.close()

        context = browser.new_context(**PHONE)
        context.set_default_timeout(15_000)
        # the browser never leaves loopback: Stripe's hosted page is answered here
        context.route("https://checkout.stripe.com/**", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>Checkout</title><h1>Stripe checkout</h1>"))
        phone = context.new_page()
        try:
            phone.goto(f"{live_server.url}/portal/")
            phone.wait_for_url("**/portal/login**")
            phone.fill("input[name=identifier]", "0745000555")
            phone.fill("input[name=password]", PASSWORD)
            phone.click("button[type=submit]")
            phone.wait_for_url(f"{live_server.url}/portal/")
            assert "KES 2,500.00" in phone.inner_text(".balance")
            assert phone.locator(".pay-now").count() == 2 and _fits(phone)

            phone.click("text=Usage day by day")
            phone.wait_for_url("**/portal/usage")
            chart = phone.locator("svg.chart")
            expect(chart).to_have_count(1)
            heights = [float(h) for h in chart.locator("rect").evaluate_all("rs => rs.map(r => r.getAttribute('height'))")]
            assert len(heights) == 2 and all(h > 0 for h in heights)  # a bar for each day with usage
            assert "4.0 GB of 20.0 GB, 20%" in phone.inner_text(".usage-figure")
            assert _fits(phone)
            phone.set_viewport_size({"width": 375, "height": 740})  # the narrowest phones still in use

            # (a) by hand: the page says how, staff record the money, the invoice shows paid
            phone.goto(f"{live_server.url}/portal/invoices")
            phone.locator(f"#invoice-{by_hand.id} .pay-now").click()
            phone.wait_for_url(f"**/portal/invoices/{by_hand.id}/pay")
            assert customer.account_number in phone.inner_text(".manual-pay .reference")
            assert phone.locator("button", has_text="with Card (Stripe)").count() == 1 and _fits(phone)
            payments.add_manual(customer, Money(150_000, "KES"), reference="CASH-DESK-1", invoice=by_hand)
            db.close()
            phone.reload()
            expect(phone.locator(".pay-status")).to_contain_text("Paid. Thank you!")

            # (b) by card: off to Stripe's checkout, the signed webhook, back to the portal
            phone.goto(f"{live_server.url}/portal/")
            phone.locator(".pay-now").click()
            phone.wait_for_url(f"**/portal/invoices/{by_card.id}/pay")
            phone.click("button:has-text('Pay KES 1,000.00 with Card (Stripe)')")
            phone.wait_for_url("https://checkout.stripe.com/**")
            [sent] = [c.params for c in stripe_api.calls("POST", "/v1/checkout/sessions")]
            [session_id] = stripe_api.sessions
            paid = session(id=session_id, client_reference_id=sent["client_reference_id"],
                           metadata=dict(sent["metadata"]), payment_intent="pi_browser", amount_total=100_000,
                           amount_subtotal=100_000, customer_details={"email": "zawadi@example.net", "name": None})
            _deliver_webhook(live_server.url, event("checkout.session.completed", paid))
            phone.goto(sent["success_url"])  # where Stripe sends the payer back
            assert f"/portal/invoices/{by_card.id}/pay?attempt=" in phone.url
            expect(phone.locator(".pay-status")).to_contain_text("Paid. Thank you!")

            phone.goto(f"{live_server.url}/portal/invoices")
            for invoice in (by_hand, by_card):
                expect(phone.locator(f"#invoice-{invoice.id} .invoice-state")).to_contain_text("Paid")
            assert phone.locator(".pay-now").count() == 0 and _fits(phone)
            phone.goto(f"{live_server.url}/portal/")
            assert "Nothing is due" in phone.inner_text("main")
        finally:
            context.close()
        assert {i.status for i in Invoice.select()} == {"paid"}
    finally:
        stripe_api.stop()
