"""The console shell: pages render, forms validate with 400, htmx partials, error pages."""

from core.models import AuditEvent, Customer
from tests.conftest import csrf_token_from
from tests.factories import make_customer


def test_dashboard_counts_accounts(logged_in):
    make_customer()
    make_customer()
    page = logged_in.get("/admin/").get_data(as_text=True)
    assert 'data-state="active">2<' in page
    assert "htmx.min.js" in page


def test_customer_search_returns_an_htmx_partial(logged_in):
    make_customer(name="Otieno Ouma")
    make_customer(name="Zawadi Njeri")
    full = logged_in.get("/admin/customers").get_data(as_text=True)
    assert "<html" in full and "Otieno Ouma" in full and "Zawadi Njeri" in full
    partial = logged_in.get("/admin/customers?q=zawadi", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in partial
    assert "Zawadi Njeri" in partial and "Otieno Ouma" not in partial


def test_search_reads_the_columns_the_text_could_be_in(logged_in):
    from core import customers

    amina = make_customer(name="Amina Hassan", email="amina@shop.example", phone="+254 711 222 333")
    make_customer(name="Baraka 711", email="b@example.org")
    make_customer(name="Chausiku", email="c711@example.org", account_number="X-711")

    def names(q):
        return [c.name for c in customers.search(q)]

    assert names("AMINA h") == ["Amina Hassan"]  # any case, spaces in a name
    assert names("@shop.") == ["Amina Hassan"]  # e-mail
    assert names("711") == ["Amina Hassan", "Baraka 711", "Chausiku"]  # phone, name, account number, e-mail
    assert names("222 333") == ["Amina Hassan"]  # phone with spaces
    assert names(amina.account_number.lower()) == ["Amina Hassan"]
    assert names("nobody") == []
    rows = logged_in.get("/admin/customers?q=711", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert rows.count("<tr>") == 3 and f'href="/admin/customers/{amina.id}"' in rows


def test_add_customer_form(logged_in):
    token = csrf_token_from(logged_in.get("/admin/customers/new"))
    response = logged_in.post("/admin/customers/new", data={
        "csrf_token": token, "name": "Baraka", "currency": "KES", "terms_days": "7", "email": "b@example.org"})
    assert response.status_code == 302
    customer = Customer.get(Customer.name == "Baraka")
    assert response.headers["Location"].endswith(f"/admin/customers/{customer.id}")
    assert customer.terms_days == 7
    event = AuditEvent.get((AuditEvent.object_type == "customer") & (AuditEvent.object_id == str(customer.id)))
    assert event.actor == "user:admin"


def test_add_customer_form_bad_input_is_400_and_writes_nothing(logged_in):
    token = csrf_token_from(logged_in.get("/admin/customers/new"))
    response = logged_in.post("/admin/customers/new", data={
        "csrf_token": token, "name": "Baraka", "currency": "KES", "terms_days": "soon"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "terms_days must be a whole number" in page
    assert 'value="Baraka"' in page  # what was typed is kept
    assert Customer.select().count() == 0


def test_add_customer_form_without_csrf_is_400(logged_in):
    response = logged_in.post("/admin/customers/new", data={"name": "Baraka", "currency": "KES"})
    assert response.status_code == 400
    assert Customer.select().count() == 0


def test_not_found_page_html_and_json(logged_in):
    html = logged_in.get("/admin/nowhere")
    assert html.status_code == 404 and "404" in html.get_data(as_text=True)
    api = logged_in.get("/api/v1/nowhere")
    assert api.status_code == 404 and api.get_json()["status"] == 404


def test_method_not_allowed(logged_in):
    assert logged_in.get("/auth/logout").status_code == 405


def test_unexpected_error_is_a_500_page_without_traceback(app, caplog):
    def boom():
        raise RuntimeError("internal detail that must not leak")

    from core.web.auth import public

    app.add_url_rule("/boom", "boom", public(boom))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "unexpected error" in body
    assert "internal detail" not in body and "Traceback" not in body
    assert "internal detail that must not leak" in caplog.text  # but it is logged

