-- Schema version 4: dunning policies, account-state fields, subscriber access,
-- the scheduler lease, customer notifications and edited message templates.
CREATE TABLE "dunning_policy" ("id" SERIAL NOT NULL PRIMARY KEY, "name" VARCHAR(60) NOT NULL, "remind_after_days" INTEGER CHECK (remind_after_days >= 0), "throttle_after_days" INTEGER CHECK (throttle_after_days >= 0), "suspend_after_days" INTEGER CHECK (suspend_after_days >= 0), "terminate_after_days" INTEGER CHECK (terminate_after_days >= 0), "minimum_owed_minor" BIGINT NOT NULL CHECK (minimum_owed_minor >= 0), "throttle_download_kbps" INTEGER NOT NULL CHECK (throttle_download_kbps > 0), "throttle_upload_kbps" INTEGER NOT NULL CHECK (throttle_upload_kbps > 0), "created_at" TIMESTAMP NOT NULL, "updated_at" TIMESTAMP NOT NULL);
CREATE UNIQUE INDEX "dunning_policy_name" ON "dunning_policy" ("name");
CREATE TABLE "message_template" ("name" VARCHAR(60) NOT NULL PRIMARY KEY, "subject" TEXT NOT NULL, "body" TEXT NOT NULL, "updated_at" TIMESTAMP NOT NULL, "updated_by" VARCHAR(150));
CREATE TABLE "notification" ("id" SERIAL NOT NULL PRIMARY KEY, "key" VARCHAR(200) NOT NULL, "customer_id" INTEGER, "template" VARCHAR(60) NOT NULL, "channel" VARCHAR(20) NOT NULL, "recipient" VARCHAR(254), "subject" TEXT, "body" TEXT, "status" VARCHAR(10) NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'skipped')), "notifier" VARCHAR(60), "reference" VARCHAR(200), "attempts" INTEGER NOT NULL, "last_error" TEXT, "created_at" TIMESTAMP NOT NULL, "sent_at" TIMESTAMP, FOREIGN KEY ("customer_id") REFERENCES "customer" ("id") ON DELETE RESTRICT);
CREATE UNIQUE INDEX "notification_key" ON "notification" ("key");
CREATE INDEX "notification_customer_id" ON "notification" ("customer_id");
CREATE INDEX "notification_status" ON "notification" ("status");
CREATE TABLE "scheduler_lease" ("name" VARCHAR(40) NOT NULL PRIMARY KEY, "holder" VARCHAR(200) NOT NULL, "acquired_at" TIMESTAMP NOT NULL, "expires_at" TIMESTAMP NOT NULL);
ALTER TABLE "customer" ADD COLUMN "state_changed_at" TIMESTAMP;
ALTER TABLE "customer" ADD COLUMN "dunning_policy_id" INTEGER REFERENCES "dunning_policy" ("id") ON DELETE RESTRICT;
ALTER TABLE "customer" ADD COLUMN "dunning_exempt" BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE "customer" ADD COLUMN "promise_until" DATE;
CREATE INDEX "customer_dunning_policy_id" ON "customer" ("dunning_policy_id");
ALTER TABLE "plan" ADD COLUMN "dunning_policy_id" INTEGER REFERENCES "dunning_policy" ("id") ON DELETE RESTRICT;
CREATE INDEX "plan_dunning_policy_id" ON "plan" ("dunning_policy_id");
ALTER TABLE "service" ADD COLUMN "paid_through" DATE;
ALTER TABLE "service" ADD COLUMN "access" VARCHAR(10) CHECK (access IS NULL OR access IN ('pppoe', 'dhcp', 'static', 'hotspot'));
INSERT INTO "dunning_policy" ("name", "remind_after_days", "throttle_after_days", "suspend_after_days", "terminate_after_days", "minimum_owed_minor", "throttle_download_kbps", "throttle_upload_kbps", "created_at", "updated_at") VALUES ('default', 1, 7, 14, NULL, 0, 512, 256, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP);
