-- RADIUS plugin, version 1 (postgresql). Times FreeRADIUS writes are Unix seconds (BIGINT), the same on both databases.
CREATE TABLE radcheck (
  id BIGSERIAL PRIMARY KEY,
  username VARCHAR(253) NOT NULL DEFAULT '',
  attribute VARCHAR(64) NOT NULL DEFAULT '',
  op VARCHAR(2) NOT NULL DEFAULT '==',
  value VARCHAR(253) NOT NULL DEFAULT '',
  wispbill VARCHAR(64)
);
CREATE INDEX radcheck_username ON radcheck (username, attribute);
CREATE INDEX radcheck_wispbill ON radcheck (wispbill);
CREATE TABLE radreply (
  id BIGSERIAL PRIMARY KEY,
  username VARCHAR(253) NOT NULL DEFAULT '',
  attribute VARCHAR(64) NOT NULL DEFAULT '',
  op VARCHAR(2) NOT NULL DEFAULT '=',
  value VARCHAR(253) NOT NULL DEFAULT '',
  wispbill VARCHAR(64)
);
CREATE INDEX radreply_username ON radreply (username, attribute);
CREATE INDEX radreply_wispbill ON radreply (wispbill);
CREATE TABLE radgroupcheck (
  id BIGSERIAL PRIMARY KEY,
  groupname VARCHAR(64) NOT NULL DEFAULT '',
  attribute VARCHAR(64) NOT NULL DEFAULT '',
  op VARCHAR(2) NOT NULL DEFAULT '==',
  value VARCHAR(253) NOT NULL DEFAULT '',
  wispbill VARCHAR(64)
);
CREATE INDEX radgroupcheck_groupname ON radgroupcheck (groupname, attribute);
CREATE TABLE radgroupreply (
  id BIGSERIAL PRIMARY KEY,
  groupname VARCHAR(64) NOT NULL DEFAULT '',
  attribute VARCHAR(64) NOT NULL DEFAULT '',
  op VARCHAR(2) NOT NULL DEFAULT '=',
  value VARCHAR(253) NOT NULL DEFAULT '',
  wispbill VARCHAR(64)
);
CREATE INDEX radgroupreply_groupname ON radgroupreply (groupname, attribute);
CREATE TABLE radusergroup (
  id BIGSERIAL PRIMARY KEY,
  username VARCHAR(253) NOT NULL DEFAULT '',
  groupname VARCHAR(64) NOT NULL DEFAULT '',
  priority INTEGER NOT NULL DEFAULT 1,
  wispbill VARCHAR(64)
);
CREATE INDEX radusergroup_username ON radusergroup (username);
CREATE INDEX radusergroup_wispbill ON radusergroup (wispbill);
CREATE TABLE nas (
  id BIGSERIAL PRIMARY KEY,
  nasname VARCHAR(128) NOT NULL,
  shortname VARCHAR(32) NOT NULL DEFAULT '',
  type VARCHAR(30) NOT NULL DEFAULT 'other',
  ports INTEGER,
  secret VARCHAR(60) NOT NULL DEFAULT '',
  server VARCHAR(64),
  community VARCHAR(50),
  description VARCHAR(200) NOT NULL DEFAULT 'RADIUS client',
  wispbill VARCHAR(64)
);
CREATE INDEX nas_nasname ON nas (nasname);
CREATE TABLE radacct (
  radacctid BIGSERIAL PRIMARY KEY,
  acctsessionid VARCHAR(64) NOT NULL DEFAULT '',
  acctuniqueid VARCHAR(32) NOT NULL UNIQUE,
  username VARCHAR(253) NOT NULL DEFAULT '',
  realm VARCHAR(64) NOT NULL DEFAULT '',
  nasipaddress VARCHAR(45) NOT NULL DEFAULT '',
  nasportid VARCHAR(32),
  nasporttype VARCHAR(32),
  acctstarttime BIGINT,
  acctupdatetime BIGINT,
  acctstoptime BIGINT,
  acctsessiontime BIGINT,
  acctauthentic VARCHAR(32),
  acctinputoctets BIGINT,
  acctoutputoctets BIGINT,
  calledstationid VARCHAR(50) NOT NULL DEFAULT '',
  callingstationid VARCHAR(50) NOT NULL DEFAULT '',
  acctterminatecause VARCHAR(32) NOT NULL DEFAULT '',
  servicetype VARCHAR(32),
  framedprotocol VARCHAR(32),
  framedipaddress VARCHAR(45) NOT NULL DEFAULT ''
);
CREATE INDEX radacct_username_open ON radacct (username, acctstoptime);
CREATE INDEX radacct_nas_open ON radacct (nasipaddress, acctstoptime);
CREATE TABLE radpostauth (
  id BIGSERIAL PRIMARY KEY,
  username VARCHAR(253) NOT NULL DEFAULT '',
  reply VARCHAR(32) NOT NULL DEFAULT '',
  nasipaddress VARCHAR(45) NOT NULL DEFAULT '',
  authdate BIGINT NOT NULL
);
CREATE INDEX radpostauth_username ON radpostauth (username, authdate);
CREATE TABLE radius_acct_log (
  id BIGSERIAL PRIMARY KEY,
  acctuniqueid VARCHAR(32) NOT NULL,
  acctsessionid VARCHAR(64) NOT NULL DEFAULT '',
  username VARCHAR(253) NOT NULL DEFAULT '',
  nasipaddress VARCHAR(45) NOT NULL DEFAULT '',
  status VARCHAR(32) NOT NULL,
  event_time BIGINT NOT NULL,
  session_time BIGINT NOT NULL DEFAULT 0,
  input_octets BIGINT NOT NULL DEFAULT 0,
  input_gigawords BIGINT NOT NULL DEFAULT 0,
  output_octets BIGINT NOT NULL DEFAULT 0,
  output_gigawords BIGINT NOT NULL DEFAULT 0,
  received_at BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE radius_usage_session (
  acctuniqueid VARCHAR(32) NOT NULL PRIMARY KEY,
  service_id BIGINT,
  username VARCHAR(253) NOT NULL DEFAULT '',
  session_time BIGINT NOT NULL DEFAULT 0,
  input_octets BIGINT NOT NULL DEFAULT 0,
  output_octets BIGINT NOT NULL DEFAULT 0,
  event_time BIGINT NOT NULL DEFAULT 0,
  stopped BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE radius_state (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE radius_subscriber (
  service_key VARCHAR(64) NOT NULL PRIMARY KEY,
  router_id BIGINT NOT NULL,
  radius_user VARCHAR(253),
  state VARCHAR(20) NOT NULL,
  access VARCHAR(20),
  username VARCHAR(253),
  mac VARCHAR(32),
  address VARCHAR(45),
  rate VARCHAR(40)
);
CREATE TABLE radius_session_action (
  id BIGSERIAL PRIMARY KEY,
  service_key VARCHAR(64) NOT NULL,
  username VARCHAR(253) NOT NULL,
  action VARCHAR(20) NOT NULL CHECK (action IN ('disconnect', 'coa')),
  attributes TEXT NOT NULL DEFAULT '{}',
  reason VARCHAR(100) NOT NULL DEFAULT '',
  status VARCHAR(20) NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed', 'superseded')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP,
  last_error TEXT,
  result TEXT,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX radius_session_action_due ON radius_session_action (status, next_attempt_at);
CREATE INDEX radius_session_action_user ON radius_session_action (username, status);
CREATE INDEX radius_usage_session_service ON radius_usage_session (service_id);
CREATE UNIQUE INDEX radius_subscriber_user ON radius_subscriber (radius_user);
CREATE INDEX radius_subscriber_router ON radius_subscriber (router_id);
