-- Schema version 6: indexes for the console's figures: payments by day, invoices by month,
-- and each customer's open invoices by due date (partial: paid invoices are most of the table).
CREATE INDEX "payment_received_at" ON "payment" ("received_at");
CREATE INDEX "invoice_issue_date" ON "invoice" ("issue_date");
CREATE INDEX "invoice_open_customer_id" ON "invoice" ("customer_id", "due_date") WHERE status = 'issued';
-- Customer search walks customers by name and stops at the page's limit; the trigram
-- indexes on the searched columns are made by the migration's Python part (0006_web_indexes.py).
CREATE INDEX "customer_name" ON "customer" ("name", "id");
