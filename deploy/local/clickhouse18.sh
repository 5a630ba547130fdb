#!/usr/bin/env bash
# Runs Debian's clickhouse-server 18.16 (a real, if old, ClickHouse server) by hand, without
# systemd, on 127.0.0.1 with its own ports and paths. The chserver conformance suite runs its
# protocol-level tests against it too, to check chserver against a real server's behaviour.
#
#   clickhouse18.sh install   apt-get install clickhouse-server (idempotent)
#   clickhouse18.sh start     write the config, start, wait until it answers (idempotent)
#   clickhouse18.sh stop      stop by PID (SIGTERM, wait, SIGKILL after a timeout)
#   clickhouse18.sh status
#   clickhouse18.sh config    only write the config; prints its path (for tests that run the
#                             server themselves)
#
# CH18_DIR (default .state/clickhouse18) holds config, data, logs and the PID file;
# CH18_TCP_PORT (default 19100) is its native port. `start` prints CLICKHOUSE18_ADDR=...
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir="${CH18_DIR:-$root/.state/clickhouse18}"
port="${CH18_TCP_PORT:-19100}"
server=/usr/sbin/clickhouse-server
pidfile="$dir/clickhouse.pid"

log() { printf 'clickhouse18: %s\n' "$*" >&2; }

install() {
  if [ -x "$server" ]; then return; fi
  log "installing Debian's clickhouse-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >/dev/null
}

write_config() {
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/logs"
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/logs/clickhouse-server.log</log>
        <errorlog>$dir/logs/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$port</tcp_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>8589934592</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
XML
  cat >"$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

pid_alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() { # a native-protocol hello on the port: the server greets back with a packet
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}

start() {
  [ -x "$server" ] || { log "$server is missing: run clickhouse18.sh install (make deps)"; exit 1; }
  if ! pid_alive; then
    write_config
    local t0=$(date +%s%N)
    cd "$dir"
    # setsid: the server outlives this script and is stopped by its PID.
    setsid "$server" --config-file="$dir/config.xml" >"$dir/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    local deadline=$((SECONDS + 30))
    until answers; do
      if ! pid_alive; then log "exited, see $dir/logs"; tail -n 5 "$dir/logs/clickhouse-server.err.log" >&2 || true; rm -f "$pidfile"; exit 1; fi
      if [ $SECONDS -ge $deadline ]; then log "not ready after 30 s, see $dir/logs"; exit 1; fi
      sleep 0.05
    done
    log "ready at 127.0.0.1:$port in $(( ($(date +%s%N) - t0) / 1000000 )) ms (pid $(cat "$pidfile"))"
  fi
  echo "CLICKHOUSE18_ADDR=127.0.0.1:$port"
}

stop() {
  if ! pid_alive; then rm -f "$pidfile"; return 0; fi
  local pid i
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "did not stop in 15 s, killing"; kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
}

case "${1:-status}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  config) write_config; echo "$dir/config.xml" ;;
  status) if pid_alive; then echo "clickhouse18: running (pid $(cat "$pidfile")) at 127.0.0.1:$port"; else echo "clickhouse18: stopped"; fi ;;
  *) log "usage: clickhouse18.sh install|start|stop|status|config"; exit 2 ;;
esac
