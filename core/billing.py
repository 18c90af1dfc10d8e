"""The billing run: one invoice per customer for everything due as of a date.

``run(as_of)`` finds the customers with a service due (``next_bill_date <= as_of``) or an
uninvoiced charge dated on or before ``as_of``, and bills them in chunks. Each chunk is one
transaction that re-reads what is due under a lock, rates each customer (recurring
charges, prorations, setup fees, charges, usage overage, then the pricing and tax
plugins), takes a block of gapless invoice numbers, and writes invoices, lines, taxes,
ledger entries, events and the services' new billing dates together. So a re-run finds
nothing left to do, a run killed half-way is finished by the next without duplicates,
and two runs racing bill each service once.

A prepaid service is billed at the start of each period, a postpaid one at its end. A
customer whose invoice cannot be rated (no tax definition for their region, a service in
another currency, a failing tax plugin) is left untouched and reported; the others are
billed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from core import allocation, audit, periods, pricing, settings
from core.bulk import execute_many, insert_rows, is_sqlite, to_date, update_rows
from core.clock import utcnow
from core.db import database
from core.errors import PluginError, WispbillError
from core.hooktypes import DraftInvoice, DraftLine, PromoUse, TaxRegion
from core.models import BillingRun, Plan
from core.money import Money
from core.numbering import take_block
from core.plugins import get_manager

log = logging.getLogger(__name__)

CHUNK = 2000
MAX_PERIODS_PER_RUN = 400
BYTES_PER_MB = 1_000_000
_PG_LOCK_KEY = 7_426_913_002  # advisory lock serializing billing chunks across processes
BILLABLE_STATUSES = ("active", "suspended")


class BillingError(WispbillError):
    """The run cannot start (for example, a tax plugin failed to list its regions)."""


@dataclass
class RunResult:
    """What a billing run did."""

    run_id: int
    as_of: dt.date
    invoices: int = 0
    customers: int = 0
    failures: dict = field(default_factory=dict)  # account number -> reason
    seconds: float = 0.0
    invoice_numbers: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """The result as JSON for the CLI."""
        return {"run_id": self.run_id, "as_of": self.as_of.isoformat(), "invoices": self.invoices,
                "customers": self.customers, "failures": self.failures, "seconds": round(self.seconds, 3)}


class _Svc:
    """A service row as the run reads and updates it."""

    __slots__ = ("id", "customer_id", "plan_id", "status", "mode", "start", "end", "anchor", "next_bill",
                 "override", "billed_through", "setup_billed", "pending_plan_id", "pending_date", "switched",
                 "usage_billed_through")

    def __init__(self, row):
        (self.id, self.customer_id, self.plan_id, self.status, self.mode, start, end, self.anchor, next_bill,
         self.override, billed_through, setup_billed, self.pending_plan_id, pending_date, usage_through) = row
        self.start, self.end, self.next_bill = to_date(start), to_date(end), to_date(next_bill)
        self.billed_through = to_date(billed_through) or self.start
        self.setup_billed = bool(setup_billed)
        self.pending_date = to_date(pending_date)
        self.usage_billed_through = to_date(usage_through) or self.start
        self.switched = False


_SERVICE_COLUMNS = ("id, customer_id, plan_id, status, billing_mode, start_date, end_date, anchor_day, "
                    "next_bill_date, price_override_minor, billed_through, setup_billed, pending_plan_id, "
                    "pending_change_date, usage_billed_through")


@lru_cache(maxsize=4096)
def _day(d: dt.date) -> str:
    return f"{d.day} {d:%b %Y}"


class _Plan:
    """The fields of a plan the run reads, as plain attributes (a run reads them a million times)."""

    __slots__ = ("id", "code", "name", "kind", "period", "period_days", "price_minor", "setup_fee_minor",
                 "currency", "tax_category", "data_cap_mb", "overage_per_gb_minor")

    def __init__(self, plan: Plan):
        for name in self.__slots__:
            setattr(self, name, getattr(plan, name))


def segment(svc, plan) -> tuple[dt.date, dt.date, dt.date, dt.date, dt.date] | None:
    """The next unbilled stretch of a service: ``(start, end, period_start, period_end, due)``.

    ``None`` once the service has ended and everything up to its end is billed.
    """
    bt = svc.billed_through
    if svc.end is not None and bt >= svc.end:
        return None
    p0, p1 = periods.containing(bt, period=plan.period, period_length=plan.period_days,
                                anchor_day=svc.anchor, origin=svc.start)
    end = min(p1, svc.end) if svc.end is not None else p1
    due = bt if svc.mode == "prepaid" else end
    return bt, end, p0, p1, due


def next_bill_date(svc, plan) -> dt.date | None:
    """When the service next needs the run (a stretch to bill or a usage window to rate); ``None``: never."""
    seg = segment(svc, plan)
    window = usage_window(svc, plan) if plan.data_cap_mb and plan.overage_per_gb_minor else None
    dates = [d for d in (seg[4] if seg else None, window[1] if window else None) if d is not None]
    return min(dates) if dates else None


def _price(svc, plan) -> int:
    return plan.price_minor if svc.override is None else svc.override


class _Context:
    """What a run knows once: plans, tax regions, the plugin manager, settings."""

    def __init__(self, pm, as_of):
        self.pm = pm
        self.as_of = as_of
        self.plans = {p.id: _Plan(p) for p in Plan.select()}
        results, errors = pm.call_all("tax_regions")
        if errors:
            error = errors[0]
            raise BillingError(f"tax plugin {error.plugin!r} cannot list its regions: {error.error}")
        self.regions: dict[str, TaxRegion] = {}
        for _plugin, answer in reversed(results):  # the plugin registered first keeps a code
            for region in answer or ():
                if isinstance(region, TaxRegion):
                    self.regions.setdefault(region.code, region)
        self.prefix = settings.get_or("billing.invoice_prefix", "INV", pm=pm)

    def plan(self, plan_id: int) -> Plan:
        """A plan by id; one created since the run started is read when first needed."""
        found = self.plans.get(plan_id)
        if found is None:
            found = self.plans[plan_id] = _Plan(Plan.get_by_id(plan_id))
        return found


class _Rated:
    """One customer's invoice, rated and ready to write."""

    __slots__ = ("customer", "lines", "taxes", "subtotal", "tax", "total", "inclusive", "promos_used",
                 "period_start", "period_end")


def _rate_services(ctx, customer, services, usage) -> tuple[list, list]:
    """Recurring, proration, setup and overage lines for ``services``; the services advance."""
    lines, meta = [], []
    currency = customer[1]
    for svc in services:
        plan = ctx.plan(svc.plan_id)
        if plan.currency != currency:
            raise WispbillError(f"service {svc.id} is priced in {plan.currency}, the customer in {currency}")
        for _ in range(MAX_PERIODS_PER_RUN):
            if svc.pending_plan_id and svc.pending_date <= min(svc.billed_through, ctx.as_of):
                # Usage up to the switch is rated with the plan it was used under.
                _usage(ctx, svc, plan, currency, usage, svc.pending_date, lines, meta)
                svc.plan_id, svc.pending_plan_id, svc.pending_date, svc.switched = \
                    svc.pending_plan_id, None, None, True
                svc.override = None  # a plan change ends a service's own price
                plan = ctx.plan(svc.plan_id)
                if plan.currency != currency:
                    raise WispbillError(f"service {svc.id} moves to plan {plan.code!r} priced in {plan.currency}")
            seg = segment(svc, plan)
            if seg is None or seg[4] > ctx.as_of:
                break
            start, end, p0, p1, _due = seg
            price = _price(svc, plan)
            amount = periods.prorate(price, p0, p1, start, end)
            whole = start == p0 and end == p1
            last = end - dt.timedelta(days=1)
            desc = f"{plan.name}, {_day(start)} to {_day(last)}"
            if not whole:
                desc += f" ({(end - start).days} of {(p1 - p0).days} days)"
            lines.append(DraftLine("recurring" if whole else "proration", desc, Money(amount, currency),
                                   plan.tax_category, svc.id, plan.code, plan.kind, Decimal(1), start, last))
            meta.append((price, Decimal(1) if whole else Decimal(amount) / price if price else Decimal(0)))
            svc.billed_through = end
        else:
            raise WispbillError(f"service {svc.id} has more than {MAX_PERIODS_PER_RUN} periods due; "
                                "bill it in steps with earlier --as-of dates")
        _usage(ctx, svc, plan, currency, usage, ctx.as_of, lines, meta)
        if not svc.setup_billed:
            if plan.setup_fee_minor:
                lines.append(DraftLine("setup", f"Setup: {plan.name}", Money(plan.setup_fee_minor, currency),
                                       plan.tax_category, svc.id, plan.code, plan.kind))
                meta.append((plan.setup_fee_minor, Decimal(1)))
            svc.setup_billed = True
    return lines, meta


def usage_window(svc, plan) -> tuple[dt.date, dt.date] | None:
    """The next usage window not yet rated: the rest of its billing period, up to the end of service."""
    ub = svc.usage_billed_through
    if svc.end is not None and ub >= svc.end:
        return None
    _p0, p1 = periods.containing(ub, period=plan.period, period_length=plan.period_days,
                                 anchor_day=svc.anchor, origin=svc.start)
    return ub, min(p1, svc.end) if svc.end is not None else p1


def _usage(ctx, svc, plan, currency, usage, until, lines, meta):
    """Rate every usage window that has ended by ``until`` with ``plan``: data over the cap, per GB.

    A window is rated once, when it is over, with the plan in force at its end, whether
    the service is prepaid or postpaid (usage is only known afterwards).
    """
    capped = bool(plan.data_cap_mb and plan.overage_per_gb_minor)
    for _ in range(MAX_PERIODS_PER_RUN):
        window = usage_window(svc, plan)
        if window is None or window[1] > until:
            return
        lo, hi = window
        svc.usage_billed_through = hi
        if not capped:
            continue
        used = sum(b for day, b in usage.get(svc.id, ()) if lo <= day < hi)
        over = used - plan.data_cap_mb * BYTES_PER_MB
        if over <= 0:
            continue
        gb = Decimal(-(-over // BYTES_PER_MB)) / 1000  # whole MB, rounded up, in GB
        amount = int((gb * plan.overage_per_gb_minor).to_integral_value(rounding="ROUND_HALF_UP"))
        last = hi - dt.timedelta(days=1)
        lines.append(DraftLine("usage", f"Data over the {plan.data_cap_mb:,} MB cap, {_day(lo)} to {_day(last)}: "
                                        f"{gb} GB", Money(amount, currency), plan.tax_category, svc.id, plan.code,
                               plan.kind, gb, lo, last))
        meta.append((plan.overage_per_gb_minor, gb))
    raise WispbillError(f"service {svc.id} has more than {MAX_PERIODS_PER_RUN} usage periods due")


def _clamp(adjustments, lines_total: int):
    """Drop or shorten discounts so that the invoice does not go below zero."""
    kept, room = [], lines_total
    for adj in adjustments:
        minor = adj.amount.minor
        if minor >= 0:
            kept.append(adj)
            room += minor
            continue
        if room <= 0:
            continue
        if -minor > room:
            adj = type(adj)(adj.description, Money(-room, adj.amount.currency), adj.tax_category, adj.source,
                            adj.promo_code)
            minor = -room
        kept.append(adj)
        room += minor
    return kept


def rate(ctx, customer, services, charges, promos, usage) -> _Rated | None:
    """Rate one customer's invoice; ``None`` when nothing is due. Raises for bad data."""
    (customer_id, currency, _terms, region_code, exempt, _acct) = customer
    lines, meta = _rate_services(ctx, customer, services, usage)
    for ch in charges:
        lines.append(DraftLine(ch["kind"], ch["description"], Money(ch["amount"], currency), ch["tax_category"],
                               ch["service_id"], None, None, ch["quantity"], ch["period_start"], ch["period_end"]))
        meta.append((ch["unit_price"], ch["quantity"]))
    if not lines:
        return None
    region = None
    if region_code:
        region = ctx.regions.get(region_code)
        if region is None:
            raise WispbillError(f"no tax definition for region {region_code!r}")
    inclusive = bool(region and region.prices_include_tax)
    draft = DraftInvoice(customer_id, currency, ctx.as_of, tuple(lines), region_code, bool(exempt), inclusive,
                         tuple(p.code for p in promos), tuple(promos))
    lines_total = sum(line.amount.minor for line in lines)
    adjustments = _clamp(pricing.adjustments(draft, ctx.pm), lines_total)
    for adj in adjustments:
        lines.append(DraftLine("discount", adj.description, adj.amount, adj.tax_category))
        meta.append((adj.amount.minor, Decimal(1), (adj.source or "")[:100] or None))
    if adjustments:
        draft = DraftInvoice(customer_id, currency, ctx.as_of, tuple(lines), region_code, bool(exempt), inclusive,
                             draft.promo_codes, draft.promos)
    taxes = []
    if region is not None:
        taxes = pricing.taxes(draft, ctx.pm)
        if taxes is None:
            raise WispbillError(f"no tax definition for region {region_code!r}")
    rated = _Rated()
    rated.customer = customer
    rated.lines = list(zip(lines, meta))
    rated.taxes = taxes
    rated.inclusive = inclusive
    total_lines = sum(line.amount.minor for line in lines)
    rated.tax = sum(t.tax.minor for t in taxes)
    if inclusive:
        rated.total, rated.subtotal = total_lines, total_lines - rated.tax
    else:
        rated.subtotal, rated.total = total_lines, total_lines + rated.tax
    rated.promos_used = sorted({a.promo_code for a in adjustments if a.promo_code})
    starts = [line.period_start for line in lines if line.period_start]
    ends = [line.period_end for line in lines if line.period_end]
    rated.period_start = min(starts) if starts else None
    rated.period_end = max(ends) if ends else None
    return rated


def lock(db=None) -> None:
    """Take the billing lock for this transaction: a run's chunk and a plan change never interleave."""
    db = db or database
    if not is_sqlite(db):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))


def _due_customers(as_of: dt.date) -> list[int]:
    db = database
    p = db.param
    statuses = ", ".join(f"'{s}'" for s in BILLABLE_STATUSES)
    sql = (f"SELECT customer_id FROM service WHERE next_bill_date <= {p} AND status IN ({statuses}) "
           f"UNION SELECT customer_id FROM charge WHERE invoice_id IS NULL AND charge_date <= {p}")
    value = as_of.isoformat() if is_sqlite(db) else as_of
    return sorted(row[0] for row in db.execute_sql(sql, (value, value)).fetchall())


def _load_chunk(ctx, lo: int, hi: int):
    """Everything due for customers ``lo..hi``, read inside the chunk's transaction."""
    db = database
    p = db.param
    as_of = ctx.as_of.isoformat() if is_sqlite(db) else ctx.as_of
    customers = {row[0]: row for row in db.execute_sql(
        "SELECT id, currency, terms_days, tax_region, tax_exempt, account_number FROM customer "
        f"WHERE id BETWEEN {p} AND {p}", (lo, hi)).fetchall()}
    statuses = ", ".join(f"'{s}'" for s in BILLABLE_STATUSES)
    services: dict[int, list[_Svc]] = {}
    for row in db.execute_sql(
            f"SELECT {_SERVICE_COLUMNS} FROM service WHERE customer_id BETWEEN {p} AND {p} "
            f"AND next_bill_date <= {p} AND status IN ({statuses}) ORDER BY customer_id, id", (lo, hi, as_of)):
        svc = _Svc(row)
        services.setdefault(svc.customer_id, []).append(svc)
    charges: dict[int, list[dict]] = {}
    for row in db.execute_sql(
            "SELECT id, customer_id, service_id, kind, description, quantity, unit_price_minor, amount_minor, "
            "tax_category, period_start, period_end FROM charge "
            f"WHERE customer_id BETWEEN {p} AND {p} AND invoice_id IS NULL AND charge_date <= {p} ORDER BY id",
            (lo, hi, as_of)):
        charges.setdefault(row[1], []).append({
            "id": row[0], "service_id": row[2], "kind": row[3], "description": row[4],
            "quantity": Decimal(row[5]), "unit_price": row[6], "amount": row[7], "tax_category": row[8],
            "period_start": to_date(row[9]), "period_end": to_date(row[10])})
    promos: dict[int, list[PromoUse]] = {}
    for row in db.execute_sql(
            "SELECT customer_id, code, redeemed_on, times_applied FROM promo_redemption "
            f"WHERE customer_id BETWEEN {p} AND {p} ORDER BY id", (lo, hi)):
        promos.setdefault(row[0], []).append(PromoUse(row[1], to_date(row[2]), row[3]))
    with_credit = {row[0] for row in db.execute_sql(
        f"SELECT customer_id FROM credit_note WHERE customer_id BETWEEN {p} AND {p} AND unallocated_minor > 0 "
        f"UNION SELECT customer_id FROM payment WHERE customer_id BETWEEN {p} AND {p} AND unallocated_minor > 0",
        (lo, hi, lo, hi))}
    capped = [s.id for group in services.values() for s in group
              if ctx.plan(s.plan_id).data_cap_mb and ctx.plan(s.plan_id).overage_per_gb_minor]
    usage: dict[int, list] = {}
    for i in range(0, len(capped), 500):
        ids = capped[i:i + 500]
        marks = ", ".join([p] * len(ids))
        for sid, start, used in db.execute_sql(
                f"SELECT service_id, period_start, bytes_in + bytes_out FROM usage_record "
                f"WHERE service_id IN ({marks})", ids):
            usage.setdefault(sid, []).append((to_date(start), used))
    return customers, services, charges, promos, with_credit, usage


def _bill_chunk(ctx, ids: list[int], result: RunResult) -> None:
    db = database
    with db.atomic():
        lock(db)
        customers, services, charges, promos, with_credit, usage = _load_chunk(ctx, ids[0], ids[-1])
        wanted = set(ids)
        rated_list: list[_Rated] = []
        touched: list[_Svc] = []
        for cid in ids:
            if cid not in customers or cid not in wanted:
                continue
            group = services.get(cid, [])
            try:
                rated = rate(ctx, customers[cid], group, charges.get(cid, []), promos.get(cid, []), usage)
            except (WispbillError, PluginError, ArithmeticError, ValueError) as exc:
                result.failures[customers[cid][5]] = str(exc)
                log.error("billing: customer %s not billed: %s", customers[cid][5], exc)
                continue
            touched.extend(group)
            if rated is not None:
                rated_list.append(rated)
        _write(ctx, rated_list, touched, charges, with_credit, result)


def _write(ctx, rated_list, touched, charges, with_credit, result) -> None:
    db = database
    now = utcnow()
    as_of = ctx.as_of
    series = f"{ctx.prefix}-{as_of.year}"
    plain_series = series.isascii() and series.replace("-", "").isalnum()  # nothing JSON would escape
    if rated_list:
        first = take_block(series, len(rated_list))
        inv_rows = []
        for i, r in enumerate(rated_list):
            cid, currency, terms = r.customer[0], r.customer[1], r.customer[2]
            status = "issued" if r.total > 0 else "paid"
            inv_rows.append((cid, series, first + i, status, currency, r.subtotal, r.tax, r.total, 0, as_of,
                             as_of + dt.timedelta(days=terms), r.period_start, r.period_end, r.inclusive, now, now))
        insert_rows(db, "invoice", ("customer_id", "series", "number", "status", "currency", "subtotal_minor",
                                    "tax_minor", "total_minor", "settled_minor", "issue_date", "due_date",
                                    "period_start", "period_end", "tax_inclusive", "created_at", "issued_at"),
                    inv_rows)
        p = db.param
        ids = dict(db.execute_sql(f"SELECT number, id FROM invoice WHERE series = {p} AND number BETWEEN {p} AND {p}",
                                  (series, first, first + len(rated_list) - 1)).fetchall())
        line_rows, tax_rows, ledger_rows, event_rows, charge_rows, promo_rows = [], [], [], [], [], []
        for i, r in enumerate(rated_list):
            number = first + i
            inv_id = ids[number]
            cid, currency = r.customer[0], r.customer[1]
            for pos, (line, (unit, qty, *source)) in enumerate(r.lines, 1):
                line_rows.append((inv_id, pos, line.kind, line.description[:300], line.service_id, str(qty), unit,
                                  line.amount.minor, line.tax_category, line.period_start, line.period_end,
                                  source[0] if source else None))
            for t in r.taxes:
                tax_rows.append((inv_id, t.name, str(t.rate), t.compound, t.taxable.minor, t.tax.minor, t.source))
            display = f"{series}-{number:06d}"
            quoted = _quoted if plain_series else json.dumps
            if r.total:
                ledger_rows.append((cid, "invoice", r.total, currency, inv_id, f"Invoice {display}", now))
            # the same JSON as _json() of these keys, written out: this runs once per invoice
            event_rows.append(("invoice.issued", f'{{"currency":"{currency}","customer_id":{cid},"invoice_id":'
                                                 f'{inv_id},"number":{quoted(display)},"total_minor":{r.total}}}',
                               now, 0))
            for ch in charges.get(cid, []):
                charge_rows.append((inv_id, ch["id"]))
            for code in r.promos_used:
                promo_rows.append((cid, code))
            result.invoice_numbers.append(display)
        insert_rows(db, "invoice_line", ("invoice_id", "position", "kind", "description", "service_id", "quantity",
                                         "unit_price_minor", "amount_minor", "tax_category", "period_start",
                                         "period_end", "source"), line_rows)
        insert_rows(db, "invoice_tax", ("invoice_id", "name", "rate", "compound", "taxable_minor", "tax_minor",
                                        "source"), tax_rows)
        insert_rows(db, "ledger_entry", ("customer_id", "kind", "amount_minor", "currency", "invoice_id",
                                         "description", "created_at"), ledger_rows)
        insert_rows(db, "event", ("name", "payload", "created_at", "attempts"), event_rows)
        execute_many(db, f"UPDATE charge SET invoice_id = {p} WHERE id = {p} AND invoice_id IS NULL", charge_rows)
        execute_many(db, f"UPDATE promo_redemption SET times_applied = times_applied + 1 "
                         f"WHERE customer_id = {p} AND code = {p}", promo_rows)
        result.invoices += len(rated_list)
        result.customers += len(rated_list)
    _write_services(ctx, touched, now)
    allocation.apply_credit_many([r.customer[0] for r in rated_list if r.customer[0] in with_credit])


def _write_services(ctx, touched, now) -> None:
    db = database
    rows, dates_only, events = [], [], []
    for svc in touched:
        plan = ctx.plan(svc.plan_id)
        nxt = next_bill_date(svc, plan)
        status = "cancelled" if nxt is None and svc.end is not None else svc.status
        if svc.switched or status != svc.status:
            rows.append((svc.plan_id, svc.override, svc.billed_through, nxt, svc.setup_billed, svc.pending_plan_id,
                         svc.pending_date, svc.usage_billed_through, status, svc.id))
        else:  # the usual case: only the dates move, so the plan and status indexes are left alone
            dates_only.append((svc.billed_through, nxt, svc.setup_billed, svc.usage_billed_through, svc.id))
        if svc.switched:
            events.append(("service.changed", _json({"service_id": svc.id, "customer_id": svc.customer_id,
                                                      "plan_id": svc.plan_id}), now, 0))
        if status == "cancelled" and svc.status != "cancelled":
            events.append(("service.cancelled", _json({"service_id": svc.id, "customer_id": svc.customer_id}),
                           now, 0))
    update_rows(db, "service", "id", _SERVICE_DATES, dates_only)
    update_rows(db, "service", "id", _SERVICE_UPDATE, rows)
    insert_rows(db, "event", ("name", "payload", "created_at", "attempts"), events)


_SERVICE_DATES = (
    ("billed_through", "DATE"), ("next_bill_date", "DATE"), ("setup_billed", "BOOLEAN"),
    ("usage_billed_through", "DATE"),
)
_SERVICE_UPDATE = (
    ("plan_id", "INTEGER"), ("price_override_minor", "BIGINT"), ("billed_through", "DATE"),
    ("next_bill_date", "DATE"), ("setup_billed", "BOOLEAN"), ("pending_plan_id", "INTEGER"),
    ("pending_change_date", "DATE"), ("usage_billed_through", "DATE"), ("status", "VARCHAR(20)"),
)


def _quoted(text: str) -> str:
    return f'"{text}"'


def _json(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def run(as_of: dt.date, *, pm=None, chunk: int = CHUNK) -> RunResult:
    """Bill everything due as of ``as_of``; return what was done. See the module docstring."""
    pm = pm or get_manager()
    started = time.perf_counter()
    ctx = _Context(pm, as_of)
    with database.atomic():
        run_row = BillingRun.create(as_of=as_of, started_by=audit.current_actor())
    result = RunResult(run_row.id, as_of)
    try:
        due = _due_customers(as_of)
        for i in range(0, len(due), chunk):
            _bill_chunk(ctx, due[i:i + chunk], result)
    except BaseException:
        with database.atomic():
            BillingRun.update(status="failed", finished_at=utcnow(), invoices=result.invoices,
                              failures=result.failures).where(BillingRun.id == run_row.id).execute()
        raise
    result.seconds = time.perf_counter() - started
    with database.atomic():
        BillingRun.update(status="finished", finished_at=utcnow(), invoices=result.invoices,
                          failures=result.failures or None).where(BillingRun.id == run_row.id).execute()
        audit.record("billing.run", "billing_run", run_row.id, None,
                     {"as_of": as_of.isoformat(), "invoices": result.invoices, "failures": len(result.failures)})
    return result
