#!/usr/bin/env bash
# Turn a Debian 12 machine into a wispbill appliance. Safe to run again: a second run with
# the same settings changes nothing, and a run with a newer source upgrades in place
# (the code is reinstalled, migrations applied, the data kept). See docs/appliance.md.
#
# Settings (environment; defaults in brackets):
#   WISPBILL_SOURCE        the wispbill source tree [this script's parent folder]
#   WISPBILL_DB            sqlite or postgresql; read on the first run only, later runs keep
#                          the database named in /etc/wispbill/wispbill.toml [sqlite]
#   WISPBILL_HTTP_PORT     nginx's plain HTTP port (redirects to HTTPS; /healthz) [80]
#   WISPBILL_HTTPS_PORT    nginx's HTTPS port [443]
#   WISPBILL_WEB_PORT      the web app's own port, on 127.0.0.1 behind nginx [8080]
#   WISPBILL_PORTAL_PORT   the portal port, where routers send suspended subscribers' web
#                          traffic (served by the web app directly, not through nginx) [8081]
#   WISPBILL_PORTAL_LISTEN the address the portal port listens on [0.0.0.0]
#   WISPBILL_RADIUS_LISTEN address FreeRADIUS listens on [*]
#   WISPBILL_RADIUS_AUTH_PORT / WISPBILL_RADIUS_ACCT_PORT   FreeRADIUS's ports [1812 / 1813]
#   WISPBILL_NO_SYSTEMD    1: install everything but never call systemctl (a chroot, a
#                          container, a test that starts the units' commands itself) [0]
set -euo pipefail

SOURCE="${WISPBILL_SOURCE:-$(cd "$(dirname "$0")/.." && pwd)}"
SOURCE="$(cd "$SOURCE" && pwd)"
PREFIX=/opt/wispbill
VENV="$PREFIX/venv"
CONF_DIR=/etc/wispbill
CONF_FILE="$CONF_DIR/wispbill.toml"
TLS_DIR="$CONF_DIR/tls"
RADIUS_DIR="$CONF_DIR/freeradius"
DATA_DIR=/var/lib/wispbill
LOG_DIR=/var/log/wispbill
UNIT_DIR=/etc/systemd/system
SERVICE_USER=wispbill

DB_KIND="${WISPBILL_DB:-sqlite}"
HTTP_PORT="${WISPBILL_HTTP_PORT:-80}"
HTTPS_PORT="${WISPBILL_HTTPS_PORT:-443}"
WEB_PORT="${WISPBILL_WEB_PORT:-8080}"
PORTAL_PORT="${WISPBILL_PORTAL_PORT:-8081}"
PORTAL_LISTEN="${WISPBILL_PORTAL_LISTEN:-0.0.0.0}"
RADIUS_LISTEN="${WISPBILL_RADIUS_LISTEN:-*}"
RADIUS_AUTH_PORT="${WISPBILL_RADIUS_AUTH_PORT:-1812}"
RADIUS_ACCT_PORT="${WISPBILL_RADIUS_ACCT_PORT:-1813}"
NO_SYSTEMD="${WISPBILL_NO_SYSTEMD:-0}"
# How a redirect to HTTPS names the port: not at all for 443.
if [ "$HTTPS_PORT" = 443 ]; then HTTPS_REDIRECT_PORT=""; else HTTPS_REDIRECT_PORT=":$HTTPS_PORT"; fi

CHANGES=0
declare -A RESTART=()   # service -> 1 when one of its files changed

say() { echo "provision: $*"; }
die() { echo "provision: $*" >&2; exit 1; }

changed() {  # changed WHAT [SERVICE...]: count one change, mark the services for a restart
  CHANGES=$((CHANGES + 1))
  say "changed $1"
  shift
  local service
  for service in "$@"; do RESTART[$service]=1; done
}

[ "$(id -u)" = 0 ] || die "run me as root"
if [ ! -f "$SOURCE/setup.cfg" ] || [ ! -d "$SOURCE/appliance" ]; then die "$SOURCE is not a wispbill source tree"; fi
case "$DB_KIND" in sqlite|postgresql) ;; *) die "WISPBILL_DB must be sqlite or postgresql, not $DB_KIND" ;; esac
for port in "$HTTP_PORT" "$HTTPS_PORT" "$WEB_PORT" "$PORTAL_PORT" "$RADIUS_AUTH_PORT" "$RADIUS_ACCT_PORT"; do
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "not a port: $port"; fi
done

# --- files -------------------------------------------------------------------------------

# install_file SRC DEST MODE OWNER:GROUP [SERVICE...]: copy when the content, mode or owner differs.
install_file() {
  local src="$1" dest="$2" mode="$3" owner="$4"
  shift 4
  if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c '%a %U:%G' "$dest")" = "${mode#0} $owner" ]; then
    return 0
  fi
  install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dest"
  changed "$dest" "$@"
}

# render SRC DEST MODE OWNER:GROUP [SERVICE...]: SRC with every @NAME@ replaced, then install_file.
render() {
  local src="$1" dest="$2" tmp
  shift 2
  tmp="$(mktemp)"
  sed -e "s|@WEB_PORT@|$WEB_PORT|g" \
      -e "s|@PORTAL_PORT@|$PORTAL_PORT|g" \
      -e "s|@PORTAL_LISTEN@|$PORTAL_LISTEN|g" \
      -e "s|@HTTP_PORT@|$HTTP_PORT|g" \
      -e "s|@HTTPS_PORT@|$HTTPS_PORT|g" \
      -e "s|@HTTPS_REDIRECT_PORT@|$HTTPS_REDIRECT_PORT|g" \
      -e "s|@TLS_DIR@|$TLS_DIR|g" \
      -e "s|@RADIUS_DIR@|$RADIUS_DIR|g" \
      -e "s|@RADIUS_LISTEN@|$RADIUS_LISTEN|g" \
      -e "s|@RADIUS_AUTH_PORT@|$RADIUS_AUTH_PORT|g" \
      -e "s|@RADIUS_ACCT_PORT@|$RADIUS_ACCT_PORT|g" \
      -e "s|@RADIUS_SQL@|$DB_KIND|g" \
      -e "s|@RADIUS_SQLITE_FILE@|$SQLITE_FILE|g" \
      -e "s|@RADIUS_PG_CONNINFO@|$PG_CONNINFO|g" \
      -e "s|@LOG_DIR@|$LOG_DIR|g" \
      -e "s|@DATA_DIR@|$DATA_DIR|g" \
      "$src" > "$tmp"
  if grep -q '@[A-Z_]\+@' "$tmp"; then
    rm -f "$tmp"
    die "$src has a @NAME@ this script does not fill in"
  fi
  install_file "$tmp" "$dest" "$@"
  rm -f "$tmp"
}

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
  if [ -d "$1" ] && [ "$(stat -c '%a %U:%G' "$1")" = "${2#0} $3" ]; then
    return 0
  fi
  install -d -m "$2" -o "${3%%:*}" -g "${3##*:}" "$1"
  changed "$1"
}

# --- packages ----------------------------------------------------------------------------

packages=(python3 python3-venv ca-certificates openssl nginx logrotate freeradius freeradius-utils)
if [ "$DB_KIND" = postgresql ]; then
  packages+=(postgresql postgresql-client freeradius-postgresql)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  if [ "$NO_SYSTEMD" = 1 ] && [ ! -e "$policy" ]; then
    # Without systemd the packages' scripts would start their daemons from /etc/init.d;
    # invoke-rc.d's policy hook (exit 101: not allowed) keeps them stopped.
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if [ "$NO_SYSTEMD" = 1 ] && [ -f "$policy" ] && grep -qx 'exit 101' "$policy"; then
    rm -f "$policy"
    trap - EXIT
  fi
  changed "packages ${missing[*]}" nginx freeradius
fi

# --- user and directories ----------------------------------------------------------------

if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$DATA_DIR" --shell /usr/sbin/nologin "$SERVICE_USER"
  changed "user $SERVICE_USER"
fi
ensure_dir "$DATA_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
ensure_dir "$LOG_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
ensure_dir "$CONF_DIR" 0750 "root:$SERVICE_USER"
ensure_dir "$PREFIX" 0755 root:root

# --- configuration (written once; the operator's to edit afterwards) ---------------------

if [ ! -f "$CONF_FILE" ]; then
  if [ "$DB_KIND" = postgresql ]; then
    url="postgresql://$SERVICE_USER@/$SERVICE_USER?host=/var/run/postgresql"
  else
    url="sqlite:///$DATA_DIR/wispbill.db"
  fi
  tmp="$(mktemp)"
  cat > "$tmp" <<CONF
# wispbill settings of this appliance (see docs/appliance.md). Written once by
# appliance/provision.sh and yours to edit; every WISPBILL_* setting may go here in lower case.
# The secret key is kept in the data directory ($DATA_DIR/secret_key), made on first use.
data_dir = "$DATA_DIR"
database_url = "$url"
CONF
  install_file "$tmp" "$CONF_FILE" 0640 "root:$SERVICE_USER" wispbill-web wispbill-scheduler
  rm -f "$tmp"
fi

# The database of this appliance is the one the configuration names, whatever WISPBILL_DB says now.
DATABASE_URL="$(sed -n 's/^database_url *= *"\(.*\)"$/\1/p' "$CONF_FILE" | head -n 1)"
case "$DATABASE_URL" in
  sqlite:///*) DB_KIND=sqlite ;;
  postgresql://*|postgres://*) DB_KIND=postgresql ;;
  *) die "$CONF_FILE: database_url is missing or not sqlite:/// or postgresql://" ;;
esac
SQLITE_FILE=""
PG_CONNINFO=""
if [ "$DB_KIND" = sqlite ]; then
  SQLITE_FILE="${DATABASE_URL#sqlite://}"
  SQLITE_FILE="${SQLITE_FILE%%\?*}"
else
  # FreeRADIUS connects as the service user too: the libpq string of the same URL.
  PG_CONNINFO="$(/usr/bin/python3 - "$DATABASE_URL" <<'PY'
import sys, urllib.parse
parts = urllib.parse.urlsplit(sys.argv[1])
values = {"host": parts.hostname, "port": parts.port, "user": parts.username,
          "password": urllib.parse.unquote(parts.password) if parts.password else None,
          "dbname": parts.path.lstrip("/") or None}
values.update(urllib.parse.parse_qsl(parts.query))
print(" ".join(f"{k}={v}" for k, v in values.items() if v is not None))
PY
)"
  if [ ${#missing[@]} -gt 0 ] || ! runuser -u postgres -- psql -Atqc 'SELECT 1' >/dev/null 2>&1; then
    if [ "$NO_SYSTEMD" = 1 ]; then
      pg_version="$(basename "$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d | sort -V | tail -n 1)")"
      pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start 2>/dev/null || true
    else
      systemctl enable --now postgresql.service >/dev/null
    fi
  fi
  if ! runuser -u postgres -- psql -Atqc "SELECT 1 FROM pg_roles WHERE rolname = '$SERVICE_USER'" | grep -q 1; then
    runuser -u postgres -- createuser "$SERVICE_USER"
    changed "PostgreSQL role $SERVICE_USER"
  fi
  if ! runuser -u postgres -- psql -Atqc "SELECT 1 FROM pg_database WHERE datname = '$SERVICE_USER'" | grep -q 1; then
    runuser -u postgres -- createdb --owner "$SERVICE_USER" "$SERVICE_USER"
    changed "PostgreSQL database $SERVICE_USER"
  fi
fi

# --- the code ----------------------------------------------------------------------------

# The source's fingerprint: the code is reinstalled only when a file of it changed.
fingerprint() {
  (cd "$SOURCE" && find . \( -name .git -o -name .venv -o -name var -o -name build -o -name dist \
      -o -name '*.egg-info' -o -name __pycache__ -o -name .pytest_cache -o -name .hypothesis \
      -o -name node_modules \) -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
}

# Debian's own Python, which every user may run (not one installed for root alone).
PYTHON=/usr/bin/python3
if [ -x "$VENV/bin/python" ] && [ "$(readlink -f "$VENV/bin/python")" != "$(readlink -f "$PYTHON")" ]; then
  rm -rf "$VENV"  # made with another interpreter: made again
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  changed "$VENV"
fi
stamp="$PREFIX/source.sha256"
wanted="$(fingerprint)"
if [ ! -x "$VENV/bin/wispbill" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  # Built from a copy, so that nothing is written into the source tree.
  build="$(mktemp -d)"
  tar -C "$SOURCE" --exclude=.git --exclude=.venv --exclude=./var --exclude=build --exclude=dist \
      --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis \
      --exclude=node_modules -cf - . | tar -C "$build" -xf -
  started=$SECONDS
  # Out with the old first: a newer source may carry the same version number, which pip
  # would take for the one installed and skip.
  "$VENV/bin/pip" uninstall -q -y wispbill >/dev/null 2>&1 || true
  "$VENV/bin/pip" install -q --upgrade "$build"
  rm -rf "$build"
  echo "$wanted" > "$stamp"
  changed "wispbill $("$VENV/bin/wispbill" --version | awk '{print $NF}') in $VENV ($((SECONDS - started)) s)" \
    wispbill-web wispbill-scheduler freeradius
fi

run_wispbill() {
  runuser -u "$SERVICE_USER" -- env -C "$DATA_DIR" WISPBILL_CONFIG="$CONF_FILE" "$VENV/bin/wispbill" "$@"
}

# init migrates, and makes the first admin only while there is no staff user at all.
out="$(run_wispbill init)"
printf '%s\n' "$out" | grep -v '^admin password:' || true
if printf '%s\n' "$out" | grep -q '^admin password:'; then
  password_file="$CONF_DIR/admin-password"
  (umask 077; printf '%s\n' "$out" | sed -n 's/^admin password: \([^ ]*\).*/\1/p' > "$password_file")
  changed "first admin (password in $password_file)"
fi
if ! printf '%s\n' "$out" | grep -q '(0 migration(s) applied)'; then
  changed "database schema" wispbill-web wispbill-scheduler freeradius
fi

# --- FreeRADIUS, the web app, the scheduler ----------------------------------------------

while IFS= read -r -d '' file; do
  install_file "$SOURCE/appliance/freeradius/$file" "$RADIUS_DIR/$file" 0640 "root:$SERVICE_USER" freeradius
done < <(cd "$SOURCE/appliance/freeradius" && find . -type f -printf '%P\0' | LC_ALL=C sort -z)

render "$SOURCE/appliance/systemd/freeradius-wispbill.conf" "$UNIT_DIR/freeradius.service.d/wispbill.conf" \
  0644 root:root freeradius
render "$SOURCE/appliance/systemd/wispbill-web.service" "$UNIT_DIR/wispbill-web.service" 0644 root:root wispbill-web
render "$SOURCE/appliance/systemd/wispbill-scheduler.service" "$UNIT_DIR/wispbill-scheduler.service" \
  0644 root:root wispbill-scheduler
render "$SOURCE/appliance/logrotate/wispbill" /etc/logrotate.d/wispbill 0644 root:root

# --- nginx and its certificate -----------------------------------------------------------

ensure_dir "$TLS_DIR" 0750 root:root
if [ ! -f "$TLS_DIR/wispbill.crt" ] || [ ! -f "$TLS_DIR/wispbill.key" ]; then
  # Self-signed, made once; replace both files with your own (see docs/appliance.md).
  name="$(hostname -f 2>/dev/null || hostname)"
  (umask 077; openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$name" \
      -addext "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1" \
      -keyout "$TLS_DIR/wispbill.key" -out "$TLS_DIR/wispbill.crt" 2>/dev/null)
  chmod 0644 "$TLS_DIR/wispbill.crt"
  changed "self-signed certificate $TLS_DIR/wispbill.crt" nginx
fi
render "$SOURCE/appliance/nginx/wispbill.conf" /etc/nginx/sites-available/wispbill 0644 root:root nginx
if [ "$(readlink /etc/nginx/sites-enabled/wispbill 2>/dev/null)" != /etc/nginx/sites-available/wispbill ]; then
  ln -sfn /etc/nginx/sites-available/wispbill /etc/nginx/sites-enabled/wispbill
  changed "/etc/nginx/sites-enabled/wispbill" nginx
fi
if [ -e /etc/nginx/sites-enabled/default ] || [ -L /etc/nginx/sites-enabled/default ]; then
  rm -f /etc/nginx/sites-enabled/default   # Debian's welcome page would take port 80
  changed "removed /etc/nginx/sites-enabled/default" nginx
fi

# --- services ----------------------------------------------------------------------------

services=(wispbill-web wispbill-scheduler freeradius nginx)
if [ "$NO_SYSTEMD" = 1 ]; then
  say "WISPBILL_NO_SYSTEMD=1: units installed, not started"
else
  systemctl daemon-reload
  for service in "${services[@]}"; do
    if ! systemctl is-enabled --quiet "$service.service"; then
      systemctl enable --quiet "$service.service"
      changed "enabled $service"
    fi
    if ! systemctl is-active --quiet "$service.service"; then
      systemctl start "$service.service"
      say "started $service"
    elif [ -n "${RESTART[$service]:-}" ]; then
      if [ "$service" = nginx ]; then
        nginx -t -q && systemctl reload nginx.service
      else
        systemctl restart "$service.service"
      fi
      say "restarted $service"
    fi
  done
fi

[ -f "$CONF_DIR/admin-password" ] && say "first admin: admin, password in $CONF_DIR/admin-password"
say "console at https://$(hostname -f 2>/dev/null || hostname)${HTTPS_REDIRECT_PORT}/"
say "$CHANGES changes"
