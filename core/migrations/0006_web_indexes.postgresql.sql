-- Schema version 6: indexes for the console's figures: payments by day, invoices by month,
-- and what is still open by due date (a partial index: paid invoices are most of the table).
CREATE INDEX "payment_received_at" ON "payment" ("received_at");
CREATE INDEX "invoice_issue_date" ON "invoice" ("issue_date");
CREATE INDEX "invoice_open_due_date" ON "invoice" ("currency", "due_date") WHERE status = 'issued';
