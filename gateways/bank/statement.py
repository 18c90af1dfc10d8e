"""Reading a bank statement CSV into payment notices, refusing the whole file on any bad row."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io

from core import settings
from core.errors import ValidationError
from core.hooktypes import PaymentNotice
from core.money import MoneyError
from core.money import currency as lookup_currency
from core.money import parse as parse_money

MAX_ROWS = 100_000


def _settings() -> dict:
    keys = ("date_column", "amount_column", "reference_column", "id_column", "payer_column", "date_format",
            "delimiter", "currency")
    found = {key: settings.get(f"bank.{key}") for key in keys}
    found["currency"] = found["currency"] or settings.get_or("billing.currency", "USD")
    return found


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError("the statement is not UTF-8 text; export it as UTF-8 CSV") from None


def _columns(header: list[str], config: dict, source: str) -> dict:
    """Map each configured field to its column index; the required ones must be present."""
    index = {name.strip().lower(): i for i, name in enumerate(header)}
    found = {}
    for field, required in (("date", True), ("amount", True), ("reference", True), ("id", False), ("payer", False)):
        name = config[f"{field}_column"]
        if not name:
            continue
        if name.lower() in index:
            found[field] = index[name.lower()]
        elif required:
            raise ValidationError(f"{source}: no column {name!r} (the bank.{field}_column setting); "
                                  f"the headings are: {', '.join(h.strip() for h in header)}")
    return found


def parse_statement(body: bytes, source: str = "statement") -> list[PaymentNotice]:
    """One ``payment`` notice per row with a positive amount; debits and blank rows are skipped.

    The notice's reference is the bank's transaction id when the statement has one, else
    a digest of the row (date, amount, reference, payer) and how many identical rows came
    before it, so that importing the same file again records nothing new.
    """
    config = _settings()
    try:
        cur = lookup_currency(config["currency"]).code
    except MoneyError as exc:
        raise ValidationError(f"bank.currency: {exc}") from None
    rows = csv.reader(io.StringIO(_text(body), newline=""), delimiter=config["delimiter"])
    try:
        header = next(rows)
    except StopIteration:
        raise ValidationError(f"{source} is empty") from None
    except csv.Error as exc:
        raise ValidationError(f"{source}: line 1: {exc}") from None
    columns = _columns(header, config, source)
    notices, seen = [], {}
    try:
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if line > MAX_ROWS:
                raise ValidationError(f"{source} has more than {MAX_ROWS} rows; split it")
            notice = _row(row, line, columns, config, cur, source, seen)
            if notice is not None:
                notices.append(notice)
    except csv.Error as exc:
        raise ValidationError(f"{source}: line {rows.line_num}: {exc}") from None
    return notices


def _cell(row: list[str], columns: dict, field: str, line: int, source: str) -> str:
    i = columns.get(field)
    if i is None:
        return ""
    if i >= len(row):
        raise ValidationError(f"{source}: line {line}: no {field} column (the row has {len(row)} cells)")
    return row[i].strip()


def _row(row, line, columns, config, cur, source, seen) -> PaymentNotice | None:
    where = f"{source}: line {line}"
    amount_text = _cell(row, columns, "amount", line, source)
    if not amount_text:
        return None  # a debit-only row in a statement with separate columns
    try:
        amount = parse_money(amount_text, cur)
    except MoneyError as exc:
        raise ValidationError(f"{where}: amount {exc}") from None
    if amount.minor <= 0:
        return None  # money going out is not a payment
    date_text = _cell(row, columns, "date", line, source)
    try:
        day = dt.datetime.strptime(date_text, config["date_format"])
    except ValueError:
        raise ValidationError(f"{where}: date {date_text!r} does not match {config['date_format']}") from None
    reference_text = _cell(row, columns, "reference", line, source)
    payer = _cell(row, columns, "payer", line, source) or None
    bank_id = _cell(row, columns, "id", line, source)
    if bank_id:
        reference = bank_id
    else:
        fingerprint = "\x1f".join((day.date().isoformat(), str(amount.minor), cur, reference_text, payer or ""))
        seen[fingerprint] = seen.get(fingerprint, 0) + 1
        digest = hashlib.sha256(f"{fingerprint}\x1f{seen[fingerprint]}".encode()).hexdigest()[:24]
        reference = f"row-{digest}"
    if len(reference) > 200:
        raise ValidationError(f"{where}: the transaction id is longer than 200 characters")
    return PaymentNotice("bank", reference, "payment", amount, account=reference_text or None,
                         received_at=day.replace(hour=12), method="bank_transfer", payer=payer,
                         raw={"line": line, "source": source[:100], "reference": reference_text[:200]})
