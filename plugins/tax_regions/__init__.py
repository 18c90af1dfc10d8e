"""Tax by region from an editable data file, through the tax hooks.

Regions come from the shipped ``regions.toml`` and, on top of it, the operator's own
file named by the setting ``tax_regions.file`` (see ``docs/taxes.md``).
"""

from pathlib import Path

from core import hookimpl
from core.errors import ValidationError
from core.hooktypes import SettingSpec, TaxRegion

from . import regions
from .regions import check_file, load_regions

__all__ = ["check_file", "load_regions", "register_settings", "tax_lines", "tax_regions"]


def parse_file_setting(text: str) -> str:
    """The operator's regions file as an absolute path, after checking that it is valid.

    An empty value means: the shipped regions only. Raises ``ValueError`` with the
    problem (file, region, key) for a file that is missing or malformed.
    """
    text = text.strip()
    regions.invalidate()
    if not text:
        return ""
    path = Path(text).expanduser().resolve()
    try:
        check_file(path)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    return str(path)


@hookimpl
def register_settings():
    """The operator's own tax regions file."""
    return [SettingSpec(
        regions.SETTING, "Tax regions file", default="", parse=parse_file_setting,
        help="A TOML file of tax regions that replace or add to the shipped ones (see docs/taxes.md). "
             "Empty: the shipped regions only.",
    )]


@hookimpl
def tax_regions():
    """Every region defined in the shipped file and the operator's file."""
    return [TaxRegion(plan.code, plan.region.name, plan.region.prices_include_tax)
            for plan in regions.current().values()]


@hookimpl
def tax_lines(invoice):
    """Tax per tax and rate for ``invoice``; ``None`` for a region no file defines, ``[]`` when exempt."""
    plan = regions.current().get(invoice.tax_region)
    if plan is None:
        return None
    if invoice.tax_exempt:
        return []
    # Tax is a pure function of the categories and amounts: a billing run asks the same
    # question for most invoices, so the answers are remembered per compiled region.
    key = (invoice.currency, invoice.tax_inclusive,
           tuple((line.tax_category, line.amount.minor, line.amount.currency) for line in invoice.lines))
    memo = _memo_for(plan)
    answer = memo.get(key)
    if answer is None:
        answer = tuple(plan.tax_lines(invoice.lines, invoice.currency, invoice.tax_inclusive))
        if len(memo) < MEMO_SIZE:
            memo[key] = answer
    return list(answer)


MEMO_SIZE = 4096
_memos: dict = {}


def _memo_for(plan) -> dict:
    """The remembered answers of one compiled region (a reloaded file compiles new ones)."""
    memo = _memos.get(id(plan))
    if memo is None or memo[0] is not plan:
        if len(_memos) > 64:
            _memos.clear()
        memo = _memos[id(plan)] = (plan, {})
    return memo[1]
