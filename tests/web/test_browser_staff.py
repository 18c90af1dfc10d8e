"""The staff scenario in a real Chromium: find a suspended customer, record their payment, see them restored."""

import datetime as dt

from core import clock, dunning
from core.models import Customer, Payment
from tests.conftest import ADMIN_PASSWORD
from tests.factories import make_customer, make_issued_invoice, make_service
from tests.web.browser import expect


def test_staff_finds_a_suspended_customer_records_a_payment_and_sees_them_restored(db, admin_user, live_server,
                                                                                   page):
    for name in ("Amani Kariuki", "Wambui Njoroge"):
        make_customer(name=name)
    customer = make_customer(name="Wanjiru Kamau", phone="+254 700 000 111")
    make_service(customer, start_date=clock.today() - dt.timedelta(days=60), username="wanjiru")
    make_issued_invoice(customer, 250_000, due_date=clock.today() - dt.timedelta(days=20))
    assert dunning.evaluate_customer(customer.id).to_state == "suspended"
    db.close()

    page.goto(f"{live_server.url}/admin/customers")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/customers")
    expect(page.locator("#customer-rows tr")).to_have_count(3)

    page.fill("input[type=search]", "wanj")  # swapped by htmx as it is typed
    expect(page.locator("#customer-rows tr")).to_have_count(1)
    expect(page.locator("#customer-rows")).to_contain_text("suspended")
    page.click("#customer-rows >> text=Wanjiru Kamau")
    page.wait_for_url(f"**/admin/customers/{customer.id}")
    expect(page.locator("#account-state")).to_have_text("suspended")
    expect(page.locator("#balance")).to_have_text("KES 2,500.00")

    form = page.locator("form#payment")
    form.locator("input[name=amount]").fill("2,500.00")
    form.locator("select[name=method]").select_option("mobile_money")
    form.locator("input[name=reference]").fill("QK7H2XYZ")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"**/admin/customers/{customer.id}#payment")
    expect(page.locator("[role=status]")).to_contain_text("recorded")
    expect(page.locator("#account-state")).to_have_text("active")
    expect(page.locator("#balance")).to_have_text("KES 0.00")
    expect(page.locator("#payments")).to_be_visible()
    assert "QK7H2XYZ" in page.inner_text("main")

    db.connect(reuse_if_open=True)
    assert Customer.get_by_id(customer.id).state == "active"
    assert Payment.get(Payment.reference == "QK7H2XYZ").amount_minor == 250_000
