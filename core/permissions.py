"""Staff roles, what each may do, and the scopes of API tokens.

Every console route and API call names one permission; the server checks the signed-in
user's role against it (menus only hide what a role cannot use). An API token carries
scopes too: a call needs the scope on the token and the permission of its owner's role,
so a token never does more than its owner could do in the console.

The roles:

- ``admin``: everything, including routers, plans, plugin settings, staff and tokens;
- ``billing`` (billing clerk): customers and their money: payments, charges, credit notes,
  plan changes, extensions, suspending and restoring by hand, the payment review queue;
- ``support``: reads everything, edits contact details, answers customer requests and
  tests routers (read-mostly);
- ``readonly``: reads everything, changes nothing.
"""

from __future__ import annotations

from core.models import USER_ROLES

# permission -> what it allows (the text is shown on the staff page and in docs/web.md)
PERMISSIONS = {
    "view": "see customers, invoices, payments, plans, routers and the dashboard",
    "customers.edit": "add customers and edit their contact details and notes",
    "requests.handle": "answer customers' messages and plan-change requests",
    "payments.record": "record payments and resolve the payment review queue",
    "payments.refund": "refund payments",
    "charges.add": "add one-off charges",
    "credit_notes.issue": "issue credit notes",
    "services.change": "add services, change plans and cancel services",
    "accounts.manage": "grant extensions and suspend or restore accounts by hand",
    "routers.test": "test a router's connection",
    "routers.manage": "reconcile routers and send queued router actions",
    "plans.manage": "add and change plans and bundles",
    "settings.manage": "change plugin and system settings",
    "users.manage": "add staff, change their roles and revoke their tokens",
}

_BILLING = ("view", "customers.edit", "requests.handle", "payments.record", "payments.refund", "charges.add",
            "credit_notes.issue", "services.change", "accounts.manage", "routers.test")
ROLE_PERMISSIONS = {
    "admin": frozenset(PERMISSIONS),
    "billing": frozenset(_BILLING),
    "support": frozenset(("view", "customers.edit", "requests.handle", "routers.test")),
    "readonly": frozenset(("view",)),
}
assert set(ROLE_PERMISSIONS) == set(USER_ROLES)

ROLE_LABELS = {"admin": "Administrator", "billing": "Billing clerk", "support": "Support", "readonly": "Read only"}

# API scope -> (the permission a read needs, the permission a write needs)
SCOPES = {
    "customers:read": "view",
    "customers:write": "customers.edit",
    "plans:read": "view",
    "plans:write": "plans.manage",
    "services:read": "view",
    "services:write": "services.change",
    "invoices:read": "view",
    "invoices:write": "credit_notes.issue",
    "payments:read": "view",
    "payments:write": "payments.record",
    "usage:read": "view",
    "routers:read": "view",
    "routers:write": "routers.manage",
}


def allowed(role: str | None, permission: str) -> bool:
    """Whether a staff member with ``role`` may do what ``permission`` names."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return permission in ROLE_PERMISSIONS.get(role or "", ())


def scopes_for(role: str) -> list[str]:
    """The API scopes a token of a user with ``role`` may hold."""
    return [scope for scope, permission in SCOPES.items() if allowed(role, permission)]
