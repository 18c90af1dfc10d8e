"""The core's side of pricing and tax plugins: adjustments and tax for a draft invoice.

Answers are checked before the billing engine uses them: right type, the invoice's
currency, and tax that is never negative.
"""

from __future__ import annotations

import logging

from core.errors import PluginError
from core.hooktypes import Adjustment, DraftInvoice, TaxLine
from core.plugins import get_manager

log = logging.getLogger(__name__)


def adjustments(invoice: DraftInvoice, pm=None) -> list[Adjustment]:
    """Every plugin's discounts and surcharges for ``invoice``, in plugin order.

    A plugin that raises or answers wrongly is left out and logged: the invoice is
    rated without its adjustment rather than not at all.
    """
    pm = pm or get_manager()
    found = []
    results, _errors = pm.call_all("pricing_adjustments", invoice=invoice)
    for plugin, answer in results:
        items = answer if isinstance(answer, (list, tuple)) else [answer]
        good = [a for a in items if isinstance(a, Adjustment) and a.amount.currency == invoice.currency]
        if len(good) != len(items):
            log.error("%s", PluginError(plugin, "pricing_adjustments",
                                        "answer is not a list of Adjustment in the invoice currency"))
            continue
        found.extend(Adjustment(a.description, a.amount, a.tax_category, a.source or plugin, a.promo_code)
                     for a in good)
    return found


def taxes(invoice: DraftInvoice, pm=None) -> list[TaxLine] | None:
    """The tax lines for ``invoice`` from the plugin that handles its region.

    ``None`` when no plugin handles the region; a plugin's failure is raised as
    :class:`PluginError` (tax must not be silently left off).
    """
    pm = pm or get_manager()
    plugin, answer = pm.call_first("tax_lines", invoice=invoice)
    if answer is None:
        return None
    if not isinstance(answer, (list, tuple)):
        raise PluginError(plugin, "tax_lines", f"expected a list of TaxLine, got {answer!r}")
    for line in answer:
        if not isinstance(line, TaxLine):
            raise PluginError(plugin, "tax_lines", f"expected TaxLine, got {line!r}")
        if line.tax.currency != invoice.currency or line.taxable.currency != invoice.currency:
            raise PluginError(plugin, "tax_lines", f"tax line {line.name!r} is not in {invoice.currency}")
        if line.tax.minor < 0 or line.rate < 0:
            raise PluginError(plugin, "tax_lines", f"tax line {line.name!r} is negative")
    return [TaxLine(t.name, t.rate, t.taxable, t.tax, t.compound, t.source or plugin) for t in answer]
