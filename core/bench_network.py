"""Subscribers for the enforcement benches: customers with one active service each, bound to a router.

Written with plain multi-row inserts (a benchmark builds up to 200,000 of them); the
enforcer benches (``bench enforce``, ``bench radius``) measure what comes after.
"""

from __future__ import annotations

import datetime as dt
import random

from core.clock import today, utcnow
from core.db import database
from core.models import Customer, Plan, Service

CURRENCY = "KES"
PRICE_MINOR = 250_000
ACCESS_MIX = (("pppoe", 50), ("dhcp", 25), ("static", 15), ("hotspot", 10))


def _pick(rng: random.Random, mix) -> str:
    roll, total = rng.randrange(100), 0
    for kind, share in mix:
        total += share
        if roll < total:
            return kind
    return mix[-1][0]


def build(subscribers: int, router_id: int, seed: int = 1, mix=ACCESS_MIX, macs: bool = False) -> list[int]:
    """``subscribers`` customers with one active service each on router ``router_id``; returns customer ids.

    ``mix`` gives the share of each access kind in percent. Hotspot subscribers get a
    MAC address and no IP; with ``macs``, DHCP subscribers get a MAC address as well.
    """
    rng = random.Random(seed)
    now, start = utcnow(), today() - dt.timedelta(days=60)
    with database.atomic():
        plan = Plan.create(code="bench-20", name="Bench 20 Mbps", kind="internet", price_minor=PRICE_MINOR,
                           currency=CURRENCY, download_kbps=20_000, upload_kbps=5_000)
    batch = 1_000
    for first in range(0, subscribers, batch):
        count = min(batch, subscribers - first)
        with database.atomic():
            Customer.insert_many([{
                "account_number": f"E{first + i + 1:07d}", "name": f"Bench subscriber {first + i + 1}",
                "currency": CURRENCY, "terms_days": 14, "state": "active", "tax_exempt": False,
                "dunning_exempt": False, "created_at": now, "updated_at": now} for i in range(count)]).execute()
    ids = [c.id for c in Customer.select(Customer.id).order_by(Customer.id)]
    for first in range(0, len(ids), batch):
        rows = []
        for n, cid in enumerate(ids[first:first + batch], start=first):
            access = _pick(rng, mix)
            named = access in ("pppoe", "hotspot")
            address = f"10.{64 + n // 65_000}.{(n // 250) % 260 % 256}.{n % 250 + 2}"
            mac = f"02:00:00:{(n >> 16) & 255:02X}:{(n >> 8) & 255:02X}:{n & 255:02X}"
            rows.append({
                "customer": cid, "plan": plan.id, "status": "active", "billing_mode": "postpaid",
                "start_date": start, "anchor_day": start.day, "billed_through": start,
                "usage_billed_through": start, "setup_billed": False, "router": router_id,
                "access": access, "username": f"sub{n + 1}" if named else None,
                "password": f"pw{n + 1:06d}" if named else None,
                "ip_address": address if access != "hotspot" else None,
                "mac_address": mac if access == "hotspot" or (macs and access == "dhcp") else None,
                "created_at": now})
        with database.atomic():
            Service.insert_many(rows).execute()
    return ids
