-- Schema version 2: the billing engine (charges, promo codes, billing runs, settlement).
ALTER TABLE "allocation" ALTER COLUMN "payment_id" DROP NOT NULL;
ALTER TABLE "allocation" ADD COLUMN "credit_note_id" INTEGER REFERENCES "credit_note" ("id") ON DELETE RESTRICT;
ALTER TABLE "allocation" ADD CONSTRAINT "allocation_one_source" CHECK ((payment_id IS NULL) <> (credit_note_id IS NULL));
CREATE UNIQUE INDEX "allocation_credit_note_id_invoice_id" ON "allocation" ("credit_note_id", "invoice_id");
ALTER TABLE "service" ADD COLUMN "billed_through" DATE;
ALTER TABLE "service" ADD COLUMN "setup_billed" BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE "service" ADD COLUMN "pending_plan_id" INTEGER REFERENCES "plan" ("id") ON DELETE RESTRICT;
ALTER TABLE "service" ADD COLUMN "pending_change_date" DATE;
ALTER TABLE "service" ADD CONSTRAINT "service_pending_change" CHECK ((pending_plan_id IS NULL) = (pending_change_date IS NULL));
CREATE INDEX "service_pending_plan_id" ON "service" ("pending_plan_id");
ALTER TABLE "invoice" ADD COLUMN "settled_minor" BIGINT NOT NULL DEFAULT 0 CHECK (settled_minor >= 0);
ALTER TABLE "invoice" ADD CONSTRAINT "invoice_settled_within_total" CHECK (settled_minor <= total_minor OR total_minor < 0);
ALTER TABLE "credit_note" ADD COLUMN "unallocated_minor" BIGINT NOT NULL DEFAULT 0 CHECK (unallocated_minor >= 0);
ALTER TABLE "payment" ADD COLUMN "unallocated_minor" BIGINT NOT NULL DEFAULT 0 CHECK (unallocated_minor >= 0);
ALTER TABLE "service" ADD COLUMN "usage_billed_through" DATE;
UPDATE "service" SET "billed_through" = "start_date", "usage_billed_through" = "start_date";
CREATE TABLE "billing_run" ("id" SERIAL NOT NULL PRIMARY KEY, "as_of" DATE NOT NULL, "started_at" TIMESTAMP NOT NULL, "finished_at" TIMESTAMP, "status" VARCHAR(20) NOT NULL CHECK (status IN ('running', 'finished', 'failed')), "invoices" INTEGER NOT NULL, "failures" TEXT, "started_by" VARCHAR(150) NOT NULL);
CREATE TABLE "charge" ("id" SERIAL NOT NULL PRIMARY KEY, "customer_id" INTEGER NOT NULL, "service_id" INTEGER, "kind" VARCHAR(20) NOT NULL CHECK (kind IN ('oneoff', 'proration', 'setup', 'usage')), "description" VARCHAR(300) NOT NULL, "quantity" TEXT NOT NULL, "unit_price_minor" BIGINT NOT NULL, "amount_minor" BIGINT NOT NULL CHECK (amount_minor >= 0), "currency" VARCHAR(3) NOT NULL CHECK (length(currency) = 3 AND upper(currency) = currency), "tax_category" VARCHAR(40) NOT NULL, "charge_date" DATE NOT NULL, "period_start" DATE, "period_end" DATE, "invoice_id" INTEGER, "created_by" VARCHAR(150) NOT NULL, "created_at" TIMESTAMP NOT NULL, FOREIGN KEY ("customer_id") REFERENCES "customer" ("id") ON DELETE RESTRICT, FOREIGN KEY ("service_id") REFERENCES "service" ("id") ON DELETE SET NULL, FOREIGN KEY ("invoice_id") REFERENCES "invoice" ("id") ON DELETE RESTRICT);
CREATE INDEX "charge_customer_id" ON "charge" ("customer_id");
CREATE INDEX "charge_service_id" ON "charge" ("service_id");
CREATE INDEX "charge_invoice_id" ON "charge" ("invoice_id");
CREATE TABLE "promo_redemption" ("id" SERIAL NOT NULL PRIMARY KEY, "customer_id" INTEGER NOT NULL, "code" VARCHAR(60) NOT NULL, "redeemed_on" DATE NOT NULL, "times_applied" INTEGER NOT NULL CHECK (times_applied >= 0), "created_by" VARCHAR(150) NOT NULL, FOREIGN KEY ("customer_id") REFERENCES "customer" ("id") ON DELETE CASCADE);
CREATE UNIQUE INDEX "promo_redemption_customer_id_code" ON "promo_redemption" ("customer_id", "code");
-- Indexes the billing run pays for on every row and nothing reads: a column already leading a
-- unique index, and foreign keys that are mostly NULL (indexed only where set).
DROP INDEX "allocation_payment_id";
DROP INDEX "invoice_line_invoice_id";
DROP INDEX "ledger_entry_created_at";
DROP INDEX "ledger_entry_payment_id";
DROP INDEX "ledger_entry_credit_note_id";
DROP INDEX "ledger_entry_refund_id";
CREATE INDEX "ledger_entry_payment_id" ON "ledger_entry" ("payment_id") WHERE "payment_id" IS NOT NULL;
CREATE INDEX "ledger_entry_credit_note_id" ON "ledger_entry" ("credit_note_id") WHERE "credit_note_id" IS NOT NULL;
CREATE INDEX "ledger_entry_refund_id" ON "ledger_entry" ("refund_id") WHERE "refund_id" IS NOT NULL;
