#!/usr/bin/env bash
# Turn a Debian 12 machine into a wispbill appliance; safe to run again (it upgrades in place).
#   WISPBILL_SOURCE  where the wispbill source tree is (default: this script's parent folder)
set -euo pipefail

SOURCE="${WISPBILL_SOURCE:-$(cd "$(dirname "$0")/.." && pwd)}"
PREFIX=/opt/wispbill
CONF_DIR=/etc/wispbill
DATA_DIR=/var/lib/wispbill
SERVICE_USER=wispbill

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-venv

id -u "$SERVICE_USER" >/dev/null 2>&1 || \
  useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin "$SERVICE_USER"
install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$DATA_DIR"
install -d -o root -g "$SERVICE_USER" -m 0750 "$CONF_DIR"

[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
"$PREFIX/venv/bin/pip" install -q --upgrade "$SOURCE"

if [ ! -f "$CONF_DIR/wispbill.toml" ]; then
  cat > "$CONF_DIR/wispbill.toml" <<CONF
data_dir = "$DATA_DIR"
database_url = "sqlite:///$DATA_DIR/wispbill.db"
CONF
  chgrp "$SERVICE_USER" "$CONF_DIR/wispbill.toml"
  chmod 0640 "$CONF_DIR/wispbill.toml"
fi

run_wispbill() {
  runuser -u "$SERVICE_USER" -- env WISPBILL_CONFIG="$CONF_DIR/wispbill.toml" "$PREFIX/venv/bin/wispbill" "$@"
}

if [ ! -f "$CONF_DIR/admin-password" ]; then
  password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
  run_wispbill init --admin-password "$password"
  umask 077; echo "$password" > "$CONF_DIR/admin-password"
else
  run_wispbill migrate
fi

install -m 0644 "$SOURCE/appliance/systemd/wispbill-web.service" /etc/systemd/system/
install -m 0644 "$SOURCE/appliance/systemd/wispbill-scheduler.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable wispbill-web.service wispbill-scheduler.service
systemctl restart wispbill-web.service wispbill-scheduler.service

echo "wispbill is running on port 8080; admin password: $(cat "$CONF_DIR/admin-password")"
