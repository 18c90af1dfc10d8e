"""The indexes migration 6 makes for the console: search, open invoices, payments by day."""

from core.db import backend_name


def _indexes(db, table: str) -> dict[str, str]:
    if backend_name(db) == "sqlite":
        return {name: sql or "" for name, sql in db.execute_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,))}
    return dict(db.execute_sql("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                               "AND tablename = %s", (table,)).fetchall())


def test_the_console_indexes_exist(db):
    customer = _indexes(db, "customer")
    assert "customer_name" in customer
    if backend_name(db) == "postgresql":
        for column in ("name", "account_number", "email", "phone"):
            definition = customer[f"customer_{column}_trgm"]
            assert "USING gin" in definition and "gin_trgm_ops" in definition and f"lower(({column})" in definition
    invoice = _indexes(db, "invoice")
    assert "issued" in invoice["invoice_open_customer_id"]  # partial: open invoices only
    assert "invoice_issue_date" in invoice
    assert "payment_received_at" in _indexes(db, "payment")
