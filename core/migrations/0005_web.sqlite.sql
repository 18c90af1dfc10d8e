-- Schema version 5: the web: customer portal sign-in and sessions, password resets,
-- login failures for the rate limit and lockout, API tokens and customer requests.
CREATE TABLE "api_token" ("id" INTEGER NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "name" VARCHAR(100) NOT NULL, "token_hash" VARCHAR(64) NOT NULL, "prefix" VARCHAR(16) NOT NULL, "scopes" TEXT NOT NULL, "created_at" DATETIME NOT NULL, "expires_at" DATETIME, "last_used_at" DATETIME, "revoked_at" DATETIME, FOREIGN KEY ("user_id") REFERENCES "user" ("id") ON DELETE CASCADE);
CREATE INDEX "api_token_user_id" ON "api_token" ("user_id");
CREATE UNIQUE INDEX "api_token_token_hash" ON "api_token" ("token_hash");
CREATE TABLE "customer_login" ("id" INTEGER NOT NULL PRIMARY KEY, "customer_id" INTEGER NOT NULL, "password_hash" VARCHAR(255) NOT NULL, "created_at" DATETIME NOT NULL, "updated_at" DATETIME NOT NULL, "last_login_at" DATETIME, FOREIGN KEY ("customer_id") REFERENCES "customer" ("id") ON DELETE CASCADE);
CREATE UNIQUE INDEX "customer_login_customer_id" ON "customer_login" ("customer_id");
CREATE TABLE "customer_request" ("id" INTEGER NOT NULL PRIMARY KEY, "customer_id" INTEGER NOT NULL, "kind" VARCHAR(20) NOT NULL CHECK (kind IN ('message', 'plan_change')), "body" TEXT NOT NULL, "service_id" INTEGER, "plan_id" INTEGER, "status" VARCHAR(10) NOT NULL CHECK (status IN ('open', 'done', 'declined')), "created_at" DATETIME NOT NULL, "closed_at" DATETIME, "closed_by" VARCHAR(150), "reply" TEXT, FOREIGN KEY ("customer_id") REFERENCES "customer" ("id") ON DELETE RESTRICT, FOREIGN KEY ("service_id") REFERENCES "service" ("id") ON DELETE SET NULL, FOREIGN KEY ("plan_id") REFERENCES "plan" ("id") ON DELETE RESTRICT);
CREATE INDEX "customer_request_customer_id" ON "customer_request" ("customer_id");
CREATE INDEX "customer_request_service_id" ON "customer_request" ("service_id");
CREATE INDEX "customer_request_plan_id" ON "customer_request" ("plan_id");
CREATE INDEX "customer_request_status" ON "customer_request" ("status");
CREATE TABLE "login_failure" ("id" INTEGER NOT NULL PRIMARY KEY, "realm" VARCHAR(10) NOT NULL CHECK (realm IN ('staff', 'portal', 'api')), "account" VARCHAR(254) NOT NULL, "remote_addr" VARCHAR(45), "at" DATETIME NOT NULL);
CREATE INDEX "login_failure_at" ON "login_failure" ("at");
CREATE INDEX "login_failure_realm_account_at" ON "login_failure" ("realm", "account", "at");
CREATE INDEX "login_failure_remote_addr_at" ON "login_failure" ("remote_addr", "at");
CREATE TABLE "password_reset" ("id" INTEGER NOT NULL PRIMARY KEY, "token_hash" VARCHAR(64) NOT NULL, "customer_id" INTEGER NOT NULL, "created_at" DATETIME NOT NULL, "expires_at" DATETIME NOT NULL, "used_at" DATETIME, "remote_addr" VARCHAR(45), FOREIGN KEY ("customer_id") REFERENCES "customer" ("id") ON DELETE CASCADE);
CREATE UNIQUE INDEX "password_reset_token_hash" ON "password_reset" ("token_hash");
CREATE INDEX "password_reset_customer_id" ON "password_reset" ("customer_id");
CREATE TABLE "portal_session" ("id" INTEGER NOT NULL PRIMARY KEY, "token_hash" VARCHAR(64) NOT NULL, "customer_id" INTEGER NOT NULL, "created_at" DATETIME NOT NULL, "expires_at" DATETIME NOT NULL, "revoked_at" DATETIME, "user_agent" VARCHAR(200), "remote_addr" VARCHAR(45), FOREIGN KEY ("customer_id") REFERENCES "customer" ("id") ON DELETE CASCADE);
CREATE UNIQUE INDEX "portal_session_token_hash" ON "portal_session" ("token_hash");
CREATE INDEX "portal_session_customer_id" ON "portal_session" ("customer_id");
