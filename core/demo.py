"""Demo data for ``make demo``: plans, customers with services, their invoices, and a few payments."""

from __future__ import annotations

import datetime as dt

from core import billing, catalog, customers, payments, services
from core.clock import today
from core.models import Customer, Invoice, Payment, Plan, Router, Service
from core.money import Money

DEMO_PLANS = (
    dict(code="home-10", name="Home 10 Mbps", kind="internet", price="25.00", download_kbps=10_000, upload_kbps=2_000),
    dict(code="home-50", name="Home 50 Mbps", kind="internet", price="45.00", download_kbps=50_000,
         upload_kbps=10_000, setup_fee="20.00"),
    dict(code="lite-capped", name="Lite 20 GB", kind="internet", price="12.00", download_kbps=5_000,
         upload_kbps=1_000, data_cap_mb=20_480, fup_download_kbps=512, fup_upload_kbps=256, overage_per_gb="1.00"),
    dict(code="week-pass", name="7-day pass", kind="internet", price="7.00", period="days", period_days=7,
         download_kbps=8_000, upload_kbps=2_000),
    dict(code="tv-basic", name="TV Basic", kind="tv", price="10.00"),
    dict(code="static-ip", name="Static IP", kind="vas", price="5.00"),
)

DEMO_CUSTOMERS = (
    dict(name="Amina Wanjiru", email="amina@example.net", phone="+254 700 000 001"),
    dict(name="Brian Otieno", email="brian@example.net", phone="+254 700 000 002"),
    dict(name="Chidi Okafor", email="chidi@example.net"),
    dict(name="Dina Naidoo", phone="+27 82 000 0004"),
    dict(name="Elif Schmidt", email="elif@example.net", terms_days=7),
)

# Who subscribes to what, and how: (customer, plan codes, billing mode).
DEMO_SERVICES = (
    ("Amina Wanjiru", ("home-50", "tv-basic"), "prepaid"),
    ("Brian Otieno", ("home-10",), "postpaid"),
    ("Chidi Okafor", ("lite-capped", "static-ip"), "prepaid"),
    ("Dina Naidoo", ("week-pass",), "prepaid"),
    ("Elif Schmidt", ("home-10", "static-ip"), "postpaid"),
)


# How demo subscribers reach the demo router: (customer, access, username, IP address, MAC address).
DEMO_NETWORK = (
    ("Amina Wanjiru", "pppoe", "amina", None, None),
    ("Brian Otieno", "dhcp", None, "10.77.0.12", None),
    ("Chidi Okafor", "static", None, "10.77.0.13", None),
    ("Dina Naidoo", "hotspot", "dina", None, "4C:5E:0C:00:00:04"),
    ("Elif Schmidt", "pppoe", "elif", "10.77.0.15", None),
)


def add_router(kind: str, host: str, port: int, username: str = "admin") -> int:
    """Add the demo router (``lab``) unless present, and bind each demo customer's internet service to it.

    Returns how many services were bound. The router's desired state is pushed by the
    scheduler.
    """
    from core import routers

    router = Router.get_or_none(Router.name == "lab") or routers.add(name="lab", kind=kind, host=host, port=port,
                                                                     username=username)
    bound = 0
    for name, access, username_, address, mac in DEMO_NETWORK:
        customer = Customer.get_or_none(Customer.name == name)
        if customer is None:
            continue
        service = (Service.select().join(Plan).where((Service.customer == customer.id) & (Plan.kind == "internet"))
                   .order_by(Service.id).first())
        if service is None or service.router_id is not None:
            continue
        routers.bind_service(service, router=router, access=access, username=username_,
                             password=f"demo-{username_}" if username_ else None, ip_address=address,
                             mac_address=mac)
        bound += 1
    return bound


def load(currency: str = "USD") -> tuple[int, int]:
    """Create the demo plans and customers unless present; return how many of each were made."""
    plans = customers_made = 0
    for spec in DEMO_PLANS:
        if not Plan.select().where(Plan.code == spec["code"]).exists():
            catalog.add(currency=currency, **spec)
            plans += 1
    for spec in DEMO_CUSTOMERS:
        if not Customer.select().where(Customer.name == spec["name"]).exists():
            customers.add(currency=currency, **spec)
            customers_made += 1
    _subscribe_and_bill()
    return plans, customers_made


DEMO_PORTAL_CUSTOMER = "Amina Wanjiru"


def portal_login() -> tuple[str, str] | None:
    """Give the demo customer a portal password unless they have one; return (email, password) when made."""
    from core import portal_accounts, users

    customer = Customer.get_or_none(Customer.name == DEMO_PORTAL_CUSTOMER)
    if customer is None or customer.email is None or portal_accounts.has_login(customer):
        return None
    password = users.generate_password()
    portal_accounts.set_password(customer, password)
    return customer.email, password


def _subscribe_and_bill() -> None:
    """Give demo customers without services theirs, from two months back, and bill up to today."""
    start = (today().replace(day=1) - dt.timedelta(days=45)).replace(day=10)
    for name, codes, mode in DEMO_SERVICES:
        customer = Customer.get_or_none(Customer.name == name)
        if customer is None or Service.select().where(Service.customer == customer.id).exists():
            continue
        for code in codes:
            anchor = 1 if Plan.get(Plan.code == code).period == "monthly" else None
            services.add(customer=customer, plan=code, start_date=start, anchor_day=anchor, billing_mode=mode)
    billing.run(today())
    _pay()


# Who has paid what at the office: (customer, share of their oldest open invoice in percent, method).
DEMO_PAYMENTS = (("Amina Wanjiru", 100, "mobile_money"), ("Chidi Okafor", 50, "cash"))


def _pay() -> None:
    """Record the demo payments once: one customer paid in full, one in part, the others owe."""
    for name, percent, method in DEMO_PAYMENTS:
        customer = Customer.get_or_none(Customer.name == name)
        if customer is None or Payment.select().where(Payment.customer == customer.id).exists():
            continue
        invoice = (Invoice.select().where(Invoice.customer == customer.id, Invoice.status == "issued")
                   .order_by(Invoice.due_date, Invoice.id).first())
        if invoice is None:
            continue
        amount = (invoice.total_minor - invoice.settled_minor) * percent // 100
        if amount > 0:
            payments.add_manual(customer, Money(amount, customer.currency), method=method,
                                reference=f"DEMO-{customer.account_number}", invoice=invoice)
