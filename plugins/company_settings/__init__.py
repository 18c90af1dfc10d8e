"""The operator's own details and billing defaults, declared as ordinary settings."""

from core import hookimpl
from core.hooktypes import SettingSpec
from core.money import currency as lookup_currency


def _currency(text: str) -> str:
    """An ISO 4217 code wispbill knows, upper-cased."""
    return lookup_currency(text.strip()).code


def _prefix(text: str) -> str:
    """Letters, digits and dashes, as printed before the year in document numbers."""
    value = text.strip().upper()
    if not value or len(value) > 20 or not all(c.isalnum() or c == "-" for c in value) or value.endswith("-"):
        raise ValueError("a number prefix is up to 20 letters, digits or dashes, like INV")
    return value


def _terms(text: str) -> int:
    """Whole days from 0 to 365."""
    try:
        days = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number of days, got {text!r}") from None
    if not 0 <= days <= 365:
        raise ValueError("payment terms must be between 0 and 365 days")
    return days


@hookimpl
def register_settings():
    """The company's name and details, and the defaults for new customers and plans."""
    return [
        SettingSpec("company.name", "Company name", default="My ISP"),
        SettingSpec("company.address", "Company address", default=""),
        SettingSpec("company.tax_id", "Company tax number", default=""),
        SettingSpec("billing.currency", "Default currency", default="USD", parse=_currency),
        SettingSpec("billing.terms_days", "Default payment terms (days)", default=14, parse=_terms),
        SettingSpec("billing.invoice_prefix", "Invoice number prefix (INV-2026-000123)", default="INV",
                    parse=_prefix),
        SettingSpec("billing.credit_note_prefix", "Credit note number prefix (CN-2026-000001)", default="CN",
                    parse=_prefix),
    ]
