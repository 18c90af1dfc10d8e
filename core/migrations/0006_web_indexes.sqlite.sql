-- Schema version 6: indexes for the console's figures: payments by day, invoices by month,
-- and each customer's open invoices by due date (partial: paid invoices are most of the table).
CREATE INDEX "payment_received_at" ON "payment" ("received_at");
CREATE INDEX "invoice_issue_date" ON "invoice" ("issue_date");
CREATE INDEX "invoice_open_customer_id" ON "invoice" ("customer_id", "due_date") WHERE status = 'issued';
-- Customer search walks customers by name and stops at the page's limit.
CREATE INDEX "customer_name" ON "customer" ("name", "id");
-- Customer search by any part of name, account number, e-mail or phone: a full-text index
-- of trigrams over those columns, kept in step with the table by triggers.
CREATE VIRTUAL TABLE "customer_search" USING fts5(name, account_number, email, phone, content='customer', content_rowid='id', tokenize='trigram');
INSERT INTO "customer_search"("customer_search") VALUES ('rebuild');
CREATE TRIGGER "customer_search_insert" AFTER INSERT ON "customer" BEGIN INSERT INTO "customer_search"(rowid, name, account_number, email, phone) VALUES (new.id, new.name, new.account_number, new.email, new.phone); END;
CREATE TRIGGER "customer_search_delete" AFTER DELETE ON "customer" BEGIN INSERT INTO "customer_search"("customer_search", rowid, name, account_number, email, phone) VALUES ('delete', old.id, old.name, old.account_number, old.email, old.phone); END;
CREATE TRIGGER "customer_search_update" AFTER UPDATE OF name, account_number, email, phone ON "customer" BEGIN INSERT INTO "customer_search"("customer_search", rowid, name, account_number, email, phone) VALUES ('delete', old.id, old.name, old.account_number, old.email, old.phone); INSERT INTO "customer_search"(rowid, name, account_number, email, phone) VALUES (new.id, new.name, new.account_number, new.email, new.phone); END;
