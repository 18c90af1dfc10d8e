"""Roles and permissions: the table in docs/web.md is the one the code enforces."""

import re
from pathlib import Path

import pytest

from core import permissions
from core.models import USER_ROLES

DOC = Path(__file__).resolve().parents[2] / "docs" / "web.md"


def _documented() -> dict[str, set[str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| permission |"):].split("\n\n")[0].splitlines()
    roles = [c.strip() for c in table[0].strip("|").split("|")][1:]
    granted = {role: set() for role in roles}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.match(r"`([a-z_.]+)`", cells[0]).group(1)
        for role, cell in zip(roles, cells[1:]):
            if cell == "yes":
                granted[role].add(name)
    return granted


def test_the_documented_roles_are_the_enforced_ones():
    documented = _documented()
    assert set(documented) == set(USER_ROLES)
    for role in USER_ROLES:
        assert documented[role] == set(permissions.ROLE_PERMISSIONS[role]), role


def test_every_permission_is_documented():
    rows = set().union(*_documented().values())
    assert rows == set(permissions.PERMISSIONS)


def test_allowed_and_scopes():
    assert permissions.allowed("billing", "payments.record")
    assert not permissions.allowed("support", "payments.record")
    assert not permissions.allowed(None, "view")
    assert not permissions.allowed("intruder", "view")
    with pytest.raises(KeyError):
        permissions.allowed("admin", "payments.recrod")
    assert permissions.scopes_for("readonly") == [s for s in permissions.SCOPES if s.endswith(":read")]
    assert set(permissions.scopes_for("admin")) == set(permissions.SCOPES)
    assert "payments:write" in permissions.scopes_for("billing")
    assert "routers:write" not in permissions.scopes_for("billing")
    assert all(p in permissions.PERMISSIONS for p in permissions.SCOPES.values())
