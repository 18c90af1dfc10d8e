"""Dunning policies: creating, changing, listing and assigning them, and finding the one in force.

A policy says after how many days past due an account is reminded, throttled, suspended
and terminated (``None``: never), below what overdue amount nothing happens, and how fast
a throttled subscriber may go. The policy in force for a customer is the customer's own;
else the most lenient of the policies of the plans of their live services (the one that
suspends last); else the policy named ``default``, which the schema creates.

``minimum_owed_minor`` is in minor units of each customer's own currency; staff type it
as an amount in the ``billing.currency`` setting's currency.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import audit, settings, validate
from core.clock import utcnow
from core.db import database, refuse_conflict
from core.errors import NotFound, ValidationError
from core.models import Customer, DunningPolicy, Plan
from core.money import Money

DEFAULT = "default"
NEVER = "never"
MAX_DAYS = 3650
MAX_KBPS = 100_000_000
# (state reached, column, option) in the order an account goes through them
STEPS = (("reminded", "remind_after_days", "remind_after"),
         ("throttled", "throttle_after_days", "throttle_after"),
         ("suspended", "suspend_after_days", "suspend_after"),
         ("terminated", "terminate_after_days", "terminate_after"))
LIVE_SERVICE_STATUSES = ("active", "suspended")  # services whose plan's policy counts
_FIELDS = ("id", "name", "remind_after_days", "throttle_after_days", "suspend_after_days",
           "terminate_after_days", "minimum_owed_minor", "throttle_download_kbps", "throttle_upload_kbps")
_UNSET = object()


@dataclass(frozen=True)
class Policy:
    """A policy's values, as the decision function reads them (no database needed)."""

    name: str
    remind_after_days: int | None = None
    throttle_after_days: int | None = None
    suspend_after_days: int | None = None
    terminate_after_days: int | None = None
    minimum_owed_minor: int = 0
    throttle_download_kbps: int = 512
    throttle_upload_kbps: int = 256
    id: int | None = None

    @classmethod
    def from_row(cls, row) -> "Policy":
        """From a ``DunningPolicy`` or a tuple in the order of ``_FIELDS``."""
        if isinstance(row, DunningPolicy):
            return cls(**{f: getattr(row, f) for f in _FIELDS})
        return cls(**dict(zip(_FIELDS, row)))

    def steps(self) -> list[tuple[str, int]]:
        """``(state, days)`` for each step the policy takes, in order."""
        return [(state, getattr(self, column)) for state, column, _o in STEPS if getattr(self, column) is not None]

    def leniency(self) -> tuple:
        """Sorts policies from the harshest to the most lenient: later suspension first, then
        later termination, throttling and reminder, then a higher minimum."""
        def later(days):
            return float("inf") if days is None else days
        return (later(self.suspend_after_days), later(self.terminate_after_days), later(self.throttle_after_days),
                later(self.remind_after_days), self.minimum_owed_minor, self.name)


def most_lenient(policies) -> Policy | None:
    """The policy that suspends last (ties: see :meth:`Policy.leniency`); ``None`` for none."""
    policies = list(policies)
    return max(policies, key=Policy.leniency) if policies else None


# --- reading -----------------------------------------------------------------------

def _select(where: str, params) -> list[Policy]:
    cols = ", ".join(_FIELDS)
    sql = f"SELECT {cols} FROM dunning_policy WHERE {where}".replace("?", database.param)
    return [Policy.from_row(row) for row in database.execute_sql(sql, params).fetchall()]


def default_policy() -> Policy:
    """The ``default`` policy."""
    found = _select("name = ?", (DEFAULT,))
    if not found:
        raise NotFound(f"there is no dunning policy named {DEFAULT!r}; add one with 'wispbill dunning policies add'")
    return found[0]


def effective(customer_id: int, policy_id: int | None = None) -> tuple[Policy, str]:
    """The policy in force for a customer and where it comes from: ``customer``, ``plan CODE`` or ``default``.

    ``policy_id`` is the customer's own ``dunning_policy_id`` when the caller has read it.
    """
    if policy_id is not None:
        found = _select("id = ?", (policy_id,))
        if found:
            return found[0], "customer"
    p = database.param
    rows = database.execute_sql(
        f"SELECT DISTINCT pl.code, {', '.join('d.' + f for f in _FIELDS)} FROM service s "
        f"JOIN plan pl ON pl.id = s.plan_id JOIN dunning_policy d ON d.id = pl.dunning_policy_id "
        f"WHERE s.customer_id = {p} AND s.status IN ({_live()})", (customer_id,)).fetchall()
    if rows:
        by_policy = {}
        for code, *values in rows:
            by_policy.setdefault(Policy.from_row(values), code)
        chosen = most_lenient(by_policy)
        return chosen, f"plan {by_policy[chosen]}"
    return default_policy(), "default"


def _live() -> str:
    return ", ".join(f"'{s}'" for s in LIVE_SERVICE_STATUSES)


def all_policies() -> dict[int, Policy]:
    """Every policy by id (a handful of rows: the run reads them once)."""
    return {p.id: p for p in _select("1 = 1", ())}


def plan_policies() -> dict[int, list[tuple[int, str]]]:
    """For each customer with a live service on a plan that names a policy: ``[(policy id, plan code)]``."""
    out: dict[int, list] = {}
    rows = database.execute_sql(
        "SELECT DISTINCT s.customer_id, pl.dunning_policy_id, pl.code FROM service s JOIN plan pl ON pl.id = s.plan_id "
        f"WHERE pl.dunning_policy_id IS NOT NULL AND s.status IN ({_live()})").fetchall()
    for customer_id, policy_id, code in rows:
        out.setdefault(customer_id, []).append((policy_id, code))
    return out


def find(name) -> DunningPolicy:
    """A policy by name, or :class:`NotFound` listing those that exist."""
    text = validate.text(name, "policy", max_length=60)
    row = DunningPolicy.get_or_none(DunningPolicy.name == text)
    if row is None:
        known = ", ".join(p.name for p in DunningPolicy.select().order_by(DunningPolicy.name)) or "none"
        raise NotFound(f"no dunning policy {text!r} (known: {known})")
    return row


def listing() -> list[DunningPolicy]:
    """Every policy, ``default`` first, then by name."""
    return sorted(DunningPolicy.select(), key=lambda p: (p.name != DEFAULT, p.name))


# --- parsing what staff type -------------------------------------------------------

def parse_days(value, field: str) -> int | None:
    """Days as typed (``14``), or ``never`` (the step is skipped): ``None``."""
    if isinstance(value, str) and value.strip().lower() == NEVER:
        return None
    return validate.integer(value, field, minimum=0, maximum=MAX_DAYS)


def parse_rate(value, field: str = "throttle_rate") -> tuple[int, int]:
    """A throttle rate typed as ``DOWN/UP`` in kbit/s: ``512/256``."""
    text = validate.text(value, field, max_length=40)
    down, sep, up = text.partition("/")
    if not sep:
        raise ValidationError(f"{field} must look like DOWN/UP in kbit/s, such as 512/256; got {text!r}", field)
    return (validate.integer(down.strip(), f"{field} (down)", minimum=1, maximum=MAX_KBPS),
            validate.integer(up.strip(), f"{field} (up)", minimum=1, maximum=MAX_KBPS))


def minimum_currency() -> str:
    """The currency staff type policy minimums in (``billing.currency``)."""
    return settings.get_or("billing.currency", "USD")


def parse_minimum(value, field: str = "minimum") -> int:
    """A minimum overdue amount as typed (``500``, ``1,000.00``), in minor units."""
    if isinstance(value, int) and not isinstance(value, bool):
        return validate.integer(value, field, minimum=0)
    return validate.money(value, minimum_currency(), field).minor


def _check_order(values: dict) -> None:
    """Steps that are taken must come in order (a later step never before an earlier one)."""
    taken = [(state, values[column]) for state, column, _o in STEPS if values[column] is not None]
    for (first, a), (then, b) in zip(taken, taken[1:]):
        if b < a:
            raise ValidationError(f"the {then} step ({b} days) comes before the {first} step ({a} days); "
                                  "steps must be in order: remind, throttle, suspend, terminate", "days")


def _clean(given: dict) -> dict:
    """Column values from what staff typed; keys not given are left out."""
    out = {}
    for _state, column, option in STEPS:
        if given.get(option, _UNSET) is not _UNSET:
            out[column] = parse_days(given[option], option)
    if given.get("minimum", _UNSET) is not _UNSET:
        out["minimum_owed_minor"] = parse_minimum(given["minimum"])
    if given.get("throttle_rate", _UNSET) is not _UNSET:
        out["throttle_download_kbps"], out["throttle_upload_kbps"] = parse_rate(given["throttle_rate"])
    return out


# --- writing -----------------------------------------------------------------------

def add(name, *, remind_after=None, throttle_after=None, suspend_after=None, terminate_after=None,
        minimum=None, throttle_rate=None) -> DunningPolicy:
    """Create a policy. A step not given is never taken; ``minimum`` defaults to nothing (0),
    the throttle rate to 512/256 kbit/s."""
    name = validate.code(name, "name")
    if name in ("none", NEVER):
        raise ValidationError(f"{name!r} is reserved; choose another policy name", "name")
    given = {"remind_after": remind_after, "throttle_after": throttle_after, "suspend_after": suspend_after,
             "terminate_after": terminate_after}
    values = {column: None for _state, column, _o in STEPS}
    values.update(_clean({k: v for k, v in given.items() if v is not None}))
    values.update(_clean({"minimum": minimum if minimum is not None else 0}))
    if throttle_rate is not None:
        values.update(_clean({"throttle_rate": throttle_rate}))
    _check_order(values)
    with refuse_conflict(f"dunning policy {name!r} was added at the same time; try again", "name"), \
            database.atomic():
        if DunningPolicy.select().where(DunningPolicy.name == name).exists():
            raise ValidationError(f"dunning policy {name!r} already exists; change it with 'policies set'", "name")
        row = DunningPolicy.create(name=name, **values)
        audit.record("dunning_policy.create", "dunning_policy", row.id, None, audit.snapshot(row))
    return row


def change(name, **given) -> DunningPolicy:
    """Change the values given (``remind_after``, ..., ``minimum``, ``throttle_rate``) of a policy.

    Pass ``"never"`` to skip a step. Accounts move to the new steps at their next evaluation.
    """
    unknown = set(given) - {"remind_after", "throttle_after", "suspend_after", "terminate_after", "minimum",
                            "throttle_rate"}
    if unknown:
        raise TypeError(f"unknown policy fields: {', '.join(sorted(unknown))}")
    values = _clean({k: v for k, v in given.items() if v is not None})
    if not values:
        raise ValidationError("nothing to change: give at least one of --remind-after, --throttle-after, "
                              "--suspend-after, --terminate-after, --minimum, --throttle-rate", "policy")
    with database.atomic():
        row = find(name)
        before = audit.snapshot(row)
        merged = {column: getattr(row, column) for _state, column, _o in STEPS}
        merged.update(values)
        _check_order(merged)
        DunningPolicy.update(updated_at=utcnow(), **values).where(DunningPolicy.id == row.id).execute()
        row = DunningPolicy.get_by_id(row.id)
        audit.record("dunning_policy.update", "dunning_policy", row.id, before, audit.snapshot(row))
    return row


def assign_customer(customer: Customer, name) -> tuple[DunningPolicy | None, DunningPolicy | None]:
    """Give a customer a policy of their own (``name``), or none (``None``/``"none"``): ``(before, after)``.

    Call inside a transaction that holds the customer's lock (see :func:`core.dunning.assign`).
    """
    policy = None if _is_none(name) else find(name)
    before = DunningPolicy.get_or_none(DunningPolicy.id == customer.dunning_policy_id) \
        if customer.dunning_policy_id else None
    Customer.update(dunning_policy=policy.id if policy else None, updated_at=utcnow()).where(
        Customer.id == customer.id).execute()
    audit.record("customer.dunning_policy", "customer", customer.id,
                 {"dunning_policy": before.name if before else None},
                 {"dunning_policy": policy.name if policy else None})
    return before, policy


def assign_plan(code, name) -> list[Plan]:
    """Give every version of plan ``code`` a policy (``name``), or none: the versions changed.

    Customers move to it at their next evaluation (the daily run, or any payment).
    """
    code = validate.code(code, "plan")
    with database.atomic():
        policy = None if _is_none(name) else find(name)
        versions = list(Plan.select().where(Plan.code == code).order_by(Plan.version))
        if not versions:
            raise NotFound(f"no plan {code!r}")
        for plan in versions:
            if plan.dunning_policy_id == (policy.id if policy else None):
                continue
            before = plan.dunning_policy.name if plan.dunning_policy_id else None
            Plan.update(dunning_policy=policy.id if policy else None).where(Plan.id == plan.id).execute()
            audit.record("plan.dunning_policy", "plan", plan.id, {"dunning_policy": before},
                         {"dunning_policy": policy.name if policy else None})
    return versions


def _is_none(name) -> bool:
    return name is None or (isinstance(name, str) and name.strip().lower() == "none")


def as_dict(policy) -> dict:
    """A policy as JSON for the CLI and the API (the minimum in the ``billing.currency`` currency)."""
    if isinstance(policy, DunningPolicy):
        policy = Policy.from_row(policy)
    return {
        "id": policy.id, "name": policy.name,
        "remind_after_days": policy.remind_after_days, "throttle_after_days": policy.throttle_after_days,
        "suspend_after_days": policy.suspend_after_days, "terminate_after_days": policy.terminate_after_days,
        "minimum_owed_minor": policy.minimum_owed_minor,
        "minimum": Money(policy.minimum_owed_minor, minimum_currency()).to_dict(),
        "throttle_rate": {"download_kbps": policy.throttle_download_kbps, "upload_kbps": policy.throttle_upload_kbps},
    }


def describe(policy) -> str:
    """One line: ``default: remind 1, throttle 7, suspend 14, terminate never; minimum USD 0.00; throttle 512/256``."""
    if isinstance(policy, DunningPolicy):
        policy = Policy.from_row(policy)

    def days(column):
        value = getattr(policy, column)
        return NEVER if value is None else str(value)
    steps = ", ".join(f"{option.split('_')[0]} {days(column)}" for _state, column, option in STEPS)
    return (f"{policy.name}: {steps}; minimum {Money(policy.minimum_owed_minor, minimum_currency())}; "
            f"throttle {policy.throttle_download_kbps}/{policy.throttle_upload_kbps} kbit/s")
