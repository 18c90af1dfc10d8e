"""The operator's own details and billing defaults, declared as ordinary settings."""

from urllib.parse import urlsplit

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


def _base_url(text: str) -> str:
    """An http(s) address without query or fragment, kept without its trailing slash."""
    value = text.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("expected the public address of this server, like https://billing.example.net")
    return value


def _names(text: str) -> list[str]:
    """A comma-separated list of gateway names, as typed."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if any(not n.replace("_", "").replace("-", "").isalnum() for n in names):
        raise ValueError("expected gateway names separated by commas, like stripe,mpesa")
    return names


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
        SettingSpec("payments.receipt_prefix", "Receipt number prefix (RCT-2026-000001)", default="RCT",
                    parse=_prefix),
        SettingSpec("payments.pay_link_gateways", "Gateways offered on pay links (empty: every one set up)",
                    default=[], parse=_names),
        SettingSpec("web.base_url", "Public address of this server (for pay links and gateway callbacks)",
                    default="", parse=_base_url),
    ]
