"""Payment gateway ``bank``: a bank statement (CSV) of incoming transfers, imported by staff.

``wispbill payments import statement.csv`` hands the file to this gateway as a
notification; each credit row becomes a payment notice whose ``account`` is the row's
reference text, which the core matches to a customer's account number or an invoice
number. Rows that match nobody are held in the review queue for staff. The whole file is
checked first: one malformed row refuses the file and nothing is recorded.
"""

from core import hookimpl
from core.hooktypes import GatewayInfo, SettingSpec
from core.money import currency as lookup_currency
from gateways.bank.statement import parse_statement

NAME = "bank"


def _column(text: str) -> str:
    """A column heading as it appears in the statement (compared without case)."""
    value = text.strip()
    if not value or len(value) > 100:
        raise ValueError("a column name has 1 to 100 characters")
    return value


def _optional_column(text: str) -> str:
    """A column heading, or empty for none."""
    return text.strip()[:100]


def _date_format(text: str) -> str:
    """A strftime format with day, month and year, like %d/%m/%Y."""
    value = text.strip()
    if not all(part in value for part in ("%d", "%m")) or not ("%Y" in value or "%y" in value):
        raise ValueError("a date format needs %d, %m and %Y (or %y), like %Y-%m-%d or %d/%m/%Y")
    return value


def _delimiter(text: str) -> str:
    """One character between columns; ``tab`` for a tab."""
    value = "\t" if text.strip().lower() == "tab" else text
    if len(value) != 1:
        raise ValueError("the delimiter is one character, such as , or ; (or the word tab)")
    return value


def _currency(text: str) -> str:
    """An ISO 4217 code, or empty for the default billing currency."""
    value = text.strip().upper()
    if value:
        lookup_currency(value)  # raises a ValueError naming the code
    return value


@hookimpl
def register_settings():
    """Where the statement keeps each field; defaults fit a plain export with headings."""
    return [
        SettingSpec("bank.date_column", "Statement column: date", default="date", parse=_column),
        SettingSpec("bank.amount_column", "Statement column: amount received", default="amount", parse=_column),
        SettingSpec("bank.reference_column", "Statement column: payer's reference", default="reference",
                    parse=_column),
        SettingSpec("bank.id_column", "Statement column: the bank's transaction id (empty: none)",
                    default="id", parse=_optional_column),
        SettingSpec("bank.payer_column", "Statement column: payer's name (empty: none)", default="payer",
                    parse=_optional_column),
        SettingSpec("bank.date_format", "Statement date format", default="%Y-%m-%d", parse=_date_format),
        SettingSpec("bank.delimiter", "Statement column delimiter", default=",", parse=_delimiter),
        SettingSpec("bank.currency", "Statement currency (empty: the default billing currency)", default="",
                    parse=_currency),
    ]


@hookimpl
def gateway_describe():
    """Bank statement import: staff bring the file, so it is never offered on a pay link."""
    return GatewayInfo(NAME, "Bank transfer (statement import)", interactive=False, webhooks=False)


@hookimpl
def gateway_parse_notification(gateway, notification):
    """Read an imported statement into one notice per incoming transfer."""
    if gateway != NAME:
        return None
    return parse_statement(notification.body, source=notification.path or "statement")
