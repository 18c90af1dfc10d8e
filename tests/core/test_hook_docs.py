"""Every hook in core/hookspecs.py is documented in docs/plugins.md and has a test.

The hooks are found by inspecting ``core.hookspecs`` for the functions pluggy's
``HookspecMarker`` marked (they carry a ``wispbill_spec`` attribute), so a new hook fails
these tests until it has a ``### name`` section and a ``test_hook_<name>`` function.
The examples in the guide are loaded as real plugins, so they stay valid.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import re
import sys
import types
from decimal import Decimal
from pathlib import Path

import pytest

from core import PROJECT_NAME, hookspecs
from core.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
TESTS = ROOT / "tests"
SPEC_MARK = f"{PROJECT_NAME}_spec"
REFERENCE = "## Hook reference"


def spec_hooks() -> list[str]:
    """The hook names of core.hookspecs, in the order they are defined."""
    return [name for name, obj in vars(hookspecs).items()
            if inspect.isfunction(obj) and hasattr(obj, SPEC_MARK)]


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def _strip_code(text: str) -> str:
    """The text without fenced code blocks, so that a '### x' inside an example is not a heading."""
    return re.sub(r"^```.*?^```[ \t]*$", "", text, flags=re.M | re.S)


def headings(text: str, level: int = 3) -> list[str]:
    return re.findall(rf"^{'#' * level} +(.+?)\s*#*\s*$", _strip_code(text), flags=re.M)


def reference_part(text: str) -> str:
    assert REFERENCE in text, f"docs/plugins.md has no '{REFERENCE}' section"
    return text.split(REFERENCE, 1)[1]


def hook_sections(text: str) -> dict[str, str]:
    """Each '### name' section of the hook reference, by name, up to the next heading of level 1-3."""
    sections: dict[str, list[str]] = {}
    current = None
    fenced = False
    for line in reference_part(text).splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,3} ", line):
            match = re.match(r"### +(\S+)\s*$", line)
            current = match.group(1) if match else None
            if current is not None:
                sections.setdefault(current, [])
            continue
        if current is not None:
            sections[current].append(line)
    return {name: "".join(lines) for name, lines in sections.items()}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.M | re.S)


def test_hooks_are_found_in_hookspecs():
    hooks = spec_hooks()
    assert len(hooks) == len(set(hooks)) >= 16
    for name in ("register_settings", "handle_event", "gateway_refund", "tax_lines", "notify"):
        assert name in hooks
    # Every marked function is a hook the manager knows, and the manager knows no others.
    pm = PluginManager()
    known = {name for name in dir(pm.hook) if not name.startswith("_")
             and getattr(getattr(pm.hook, name), "spec", None) is not None}
    assert known == set(hooks)


def test_every_hook_has_a_docs_section():
    documented = set(headings(doc_text()))
    missing = [h for h in spec_hooks() if h not in documented]
    assert not missing, f"docs/plugins.md lacks a '### name' section for: {', '.join(missing)}"


def test_docs_document_only_existing_hooks():
    text = doc_text()
    hooks = set(spec_hooks())
    # Every heading in the hook reference, and every snake_case '###' heading anywhere, names a hook.
    claimed = set(headings(reference_part(text)))
    claimed |= {h for h in headings(text) if re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", h)}
    unknown = sorted(claimed - hooks)
    assert not unknown, f"docs/plugins.md documents hooks that do not exist: {', '.join(unknown)}"


def test_docs_hook_sections_follow_hookspecs_and_appear_once():
    documented = headings(reference_part(doc_text()))
    assert documented == spec_hooks()


def _test_functions() -> set[str]:
    names = set()
    for path in TESTS.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names |= {node.name for node in ast.walk(tree)
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


def test_every_hook_has_a_test():
    defined = _test_functions()
    missing = [h for h in spec_hooks() if f"test_hook_{h}" not in defined]
    assert not missing, "no test function named " + ", ".join(f"test_hook_{h}" for h in missing)


# --- the examples in the guide -----------------------------------------------------

def _load_example(code: str, name: str) -> types.ModuleType:
    """Run an example as the module of a plugin (registered in sys.modules while loaded)."""
    module = types.ModuleType(name)
    module.__file__ = str(DOC)
    sys.modules[name] = module
    try:
        exec(compile(code, f"{DOC.name}:{name}", "exec"), module.__dict__)
    finally:
        del sys.modules[name]
    return module


def _examples() -> list[tuple[str, str]]:
    """(section, code) for every python example: the introduction's and each hook's."""
    text = doc_text()
    intro = text.split(REFERENCE, 1)[0]
    out = [("intro", code) for code in python_blocks(intro)]
    for hook, body in hook_sections(text).items():
        out.extend((hook, code) for code in python_blocks(body))
    return out


def test_every_hook_section_has_an_example_implementing_it():
    sections = hook_sections(doc_text())
    for hook in spec_hooks():
        blocks = python_blocks(sections.get(hook, ""))
        assert blocks, f"section '### {hook}' has no python example"
        implemented = False
        for code in blocks:
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.FunctionDef) and node.name == hook:
                    implemented |= any("hookimpl" in ast.unparse(d) for d in node.decorator_list)
        assert implemented, f"the example of '### {hook}' does not define an @hookimpl {hook}()"


_EXAMPLES = _examples() if DOC.exists() else []


@pytest.mark.parametrize("index", range(len(_EXAMPLES)),
                         ids=[f"{section}-{i}" for i, (section, _code) in enumerate(_EXAMPLES)])
def test_docs_example_loads_as_a_plugin(index):
    section, code = _examples()[index]
    module = _load_example(code, f"wispbill_docs_example_{index}")
    pm = PluginManager()
    assert pm.add(module, "example", "docs"), pm.failures
    implemented = {caller.name for caller in pm.get_hookcallers(module)}
    assert implemented, f"example in {section} implements no hook"
    if section != "intro":
        assert section in implemented


def _section_module(hook: str, position: int = 0) -> types.ModuleType:
    code = python_blocks(hook_sections(doc_text())[hook])[position]
    return _load_example(code, f"wispbill_docs_{hook}")


def test_docs_examples_behave_as_described(pm):
    from core import enforcers, gateways, pricing
    from core.hooktypes import DraftInvoice, DraftLine, TaxLine
    from core.money import Money

    settings_example = _section_module("register_settings")
    specs = {s.key: s for s in settings_example.register_settings()}
    assert specs["mpesa.shortcode"].parse(" 174379 ") == "174379"
    with pytest.raises(ValueError):
        specs["mpesa.shortcode"].parse("12ab")
    assert specs["mpesa.passkey"].secret
    assert specs["mpesa.sandbox"].parse("Off") is False

    pm.add(_section_module("gateway_describe"), "acmepay", "docs")
    pm.add(_section_module("enforcer_describe"), "routeros", "docs")
    found = gateways.available()
    assert {"acmepay", "acmepay_cash"} <= set(found)  # beside the built-in gateways
    assert found["acmepay"].can_refund and not found["acmepay_cash"].interactive
    assert set(enforcers.available()) - {"mikrotik", "radius"} == {"routeros_ppp"}  # beside the built-ins

    pm.add(_section_module("pricing_adjustments"), "loyalty", "docs")
    pm.add(_section_module("tax_lines"), "ke_vat", "docs")
    lines = (DraftLine("recurring", "Home 10", Money(250000, "KES")),
             DraftLine("setup", "Installation", Money(100000, "KES")))

    def draft(**kw):
        return DraftInvoice(customer_id=1, currency="KES", issue_date=dt.date(2026, 3, 1), lines=lines, **kw)

    adjustments = pricing.adjustments(draft(promo_codes=("LOYAL10",)))
    assert [(a.amount, a.source) for a in adjustments] == [(Money(-25000, "KES"), "loyalty")]
    assert pricing.adjustments(draft()) == []

    assert pricing.taxes(draft(tax_region="KE")) == [
        TaxLine("VAT", Decimal("0.16"), Money(350000, "KES"), Money(56000, "KES"), source="ke_vat")]
    inclusive = pricing.taxes(draft(tax_region="KE", tax_inclusive=True))
    assert (inclusive[0].taxable, inclusive[0].tax) == (Money(301724, "KES"), Money(48276, "KES"))
    assert pricing.taxes(draft(tax_region="KE", tax_exempt=True)) == []
    assert pricing.taxes(draft(tax_region="UG")) is None
