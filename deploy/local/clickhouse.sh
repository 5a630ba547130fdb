#!/usr/bin/env bash
# Runs the local ClickHouse server (chserver: ClickHouse's native protocol on the chDB engine)
# on 127.0.0.1 for development and tests. It is never a production store.
#
#   clickhouse.sh build    build the binary into .cache/bin/chserver
#   clickhouse.sh start    build if needed, start, wait until it answers (idempotent)
#   clickhouse.sh stop     stop by PID (SIGTERM, wait, SIGKILL after a timeout)
#   clickhouse.sh status
#
# Addresses: CHSERVER_LISTEN (native protocol, default 127.0.0.1:19000) and CHSERVER_HTTP_LISTEN
# (HTTP interface, default 127.0.0.1:18123). Data in .state/clickhouse, log in
# .state/logs/chserver.log, PID in .state/pids/chserver.pid (CHSERVER_DATA moves the data; the
# server reads CHSERVER_MAX_QUERIES too); writes CLICKHOUSE_ADDR and
# CLICKHOUSE_HTTP_ADDR to .state/env.
# Needs libchdb.so: deploy/local/chdb-fetch.sh (run by `make deps`).
#
# Users: no anonymous access. `start` generates, once, a password per user in .state/secrets/
# (mode 0600, never printed): clickhouse-admin.password (user admin, role vigie_admin:
# migrations, DDL, tests), clickhouse-writer.password (user writer, role vigie_writer: the
# services) and clickhouse-analyst.password (user analyst, role vigie_analyst: read-only,
# Grafana); the roles are schemas/clickhouse/roles, on the database CHSERVER_DATABASE (default
# vigie). It writes the users file the server reads (.state/secrets/chserver-users) and, to
# .state/env (mode 0600), CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (admin) and
# CLICKHOUSE_ANALYST_USER and CLICKHOUSE_ANALYST_PASSWORD for local tools and tests. A server
# already running without these users (started before they existed) gets no credentials in
# .state/env: restart it (make down; make up).
#
# CHSERVER_INSTANCE=<name> runs a server apart from the shared one, for tests that stop and
# start their ClickHouse while other tests use the shared one: data in
# .state/clickhouse-<name>, log .state/logs/chserver-<name>.log, PID
# .state/pids/chserver-<name>.pid, its own lock, nothing written to .state/env; give it its
# own CHSERVER_LISTEN and CHSERVER_HTTP_LISTEN, and stop it with the same variables. It has
# the same users and passwords as the shared server.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state="$root/.state"
bin="$root/.cache/bin/chserver"
lib="${CHDB_LIB_PATH:-$root/.cache/chdb/libchdb.so}"
addr="${CHSERVER_LISTEN:-127.0.0.1:19000}"
http_addr="${CHSERVER_HTTP_LISTEN:-127.0.0.1:18123}"
instance=${CHSERVER_INSTANCE:-}
case "$instance" in *[!a-z0-9_-]*) printf 'clickhouse: CHSERVER_INSTANCE: %s is not [a-z0-9_-]\n' "$instance" >&2; exit 2 ;; esac
suffix=${instance:+-$instance}
data="${CHSERVER_DATA:-$state/clickhouse$suffix}"
logfile="$state/logs/chserver$suffix.log"
pidfile="$state/pids/chserver$suffix.pid"
envfile="$state/env"
secrets="$state/secrets"
usersfile="$secrets/chserver-users"
database="${CHSERVER_DATABASE:-vigie}"
# name:role of each user; its password is in $secrets/clickhouse-<name>.password.
users=(admin:admin writer:writer analyst:analyst)

log() { printf 'clickhouse%s: %s\n' "${instance:+ $instance}" "$*" >&2; }

build() {
  mkdir -p "$(dirname "$bin")"
  # go build is incremental: cheap when nothing changed.
  (cd "$root/deploy/local/chserver" && GOWORK=off go build -o "$bin" ./cmd/chserver)
}

pid_alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

set_env() { # key value: replace the key's line in the env file (not for an instance)
  [ -z "$instance" ] || return 0
  mkdir -p "$state"
  touch "$envfile"
  chmod 600 "$envfile" # it holds passwords
  (umask 077; grep -v "^$1=" "$envfile" >"$envfile.tmp" || true; echo "$1=$2" >>"$envfile.tmp")
  mv "$envfile.tmp" "$envfile"
}
unset_env() { [ -z "$instance" ] && [ -f "$envfile" ] && { (umask 077; grep -v "^$1=" "$envfile" >"$envfile.tmp" || true); mv "$envfile.tmp" "$envfile"; }; return 0; }

password_file() { echo "$secrets/clickhouse-$1.password"; }

# secrets: a password per user, generated once; the users file the server reads, from them.
secrets() {
  mkdir -p "$secrets"
  chmod 700 "$secrets"
  local u name role f
  (
    # The shared server and instances may start at once: one writer of the secrets at a time.
    exec 8>"$secrets/.clickhouse.lock"
    flock 8
    umask 077
    for u in "${users[@]}"; do
      f=$(password_file "${u%%:*}")
      if [ ! -s "$f" ]; then
        od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$f.tmp"
        mv "$f.tmp" "$f"
        log "new password for ClickHouse user ${u%%:*} in $f"
      fi
    done
    : >"$usersfile.tmp.$$"
    for u in "${users[@]}"; do
      name=${u%%:*} role=${u#*:}
      printf '%s:%s:%s\n' "$name" "$(cat "$(password_file "$name")")" "$role" >>"$usersfile.tmp.$$"
    done
    mv "$usersfile.tmp.$$" "$usersfile"
  )
}

# ping [user]: the server answers, and lets user (admin by default) in with its password.
ping() {
  "$bin" -ping "$addr" -ping-user "${1:-admin}" -ping-password-file "$(password_file "${1:-admin}")" 2>/dev/null
}

start() {
  # One starter at a time: two racing starters would both spawn a server, and the loser's
  # PID, of a process that failed to bind, would end up in the PID file.
  mkdir -p "$(dirname "$pidfile")"
  exec 9>"$pidfile.lock"
  flock 9
  if pid_alive; then
    log "already running (pid $(cat "$pidfile")) at $addr"
  else
    [ -f "$lib" ] || { log "no $lib: run deploy/local/chdb-fetch.sh (make deps)"; exit 1; }
    build
    secrets
    mkdir -p "$data" "$(dirname "$logfile")" "$(dirname "$pidfile")"
    local t0=$(date +%s%N)
    # setsid: the server outlives this script and is stopped by its PID. 9>&-: it must not
    # inherit the starters' lock, or the next start would wait for it forever.
    CHDB_LIB_PATH="$lib" setsid "$bin" -listen "$addr" -http "$http_addr" -data "$data" \
      -users-file "$usersfile" -roles "$root/schemas/clickhouse/roles" -database "$database" >>"$logfile" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
    local deadline=$((SECONDS + 60))
    until ping; do
      if ! pid_alive; then log "exited, see $logfile"; tail -n 5 "$logfile" >&2; rm -f "$pidfile"; exit 1; fi
      if [ $SECONDS -ge $deadline ]; then log "not ready after 60 s, see $logfile"; exit 1; fi
      sleep 0.1
    done
    log "ready at $addr (HTTP $http_addr) in $(( ($(date +%s%N) - t0) / 1000000 )) ms (pid $(cat "$pidfile"))"
  fi
  set_env CLICKHOUSE_ADDR "$addr"
  set_env CLICKHOUSE_HTTP_ADDR "$http_addr"
  echo "CLICKHOUSE_ADDR=$addr"
  echo "CLICKHOUSE_HTTP_ADDR=$http_addr"
  if [ -s "$(password_file admin)" ] && ping admin; then
    set_env CLICKHOUSE_USER admin
    set_env CLICKHOUSE_PASSWORD "$(cat "$(password_file admin)")"
    set_env CLICKHOUSE_ANALYST_USER analyst
    set_env CLICKHOUSE_ANALYST_PASSWORD "$(cat "$(password_file analyst)")"
    echo "CLICKHOUSE_USER=admin (password in $(password_file admin))"
  else
    unset_credentials
    log "the running server does not know the users of $usersfile (started before they existed): restart it (make down; make up) to lock it"
  fi
}

unset_credentials() {
  local k
  for k in CLICKHOUSE_USER CLICKHOUSE_PASSWORD CLICKHOUSE_ANALYST_USER CLICKHOUSE_ANALYST_PASSWORD; do unset_env "$k"; done
}

stop() {
  if ! pid_alive; then rm -f "$pidfile"; unset_env CLICKHOUSE_ADDR; unset_env CLICKHOUSE_HTTP_ADDR; unset_credentials; return 0; fi
  local pid i
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "did not stop in 15 s, killing"; kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
  unset_env CLICKHOUSE_ADDR
  unset_env CLICKHOUSE_HTTP_ADDR
  unset_credentials
  log "stopped"
}

case "${1:-status}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  status)
    if pid_alive; then echo "chserver: running (pid $(cat "$pidfile")) at $addr"; else echo "chserver: stopped"; fi ;;
  *) log "usage: clickhouse.sh build|start|stop|status"; exit 2 ;;
esac
