#!/usr/bin/env bash
# Builds, starts and stops Vigie's services as local processes on 127.0.0.1, against the
# infrastructure that `make up` (deploy/local/infra.sh up) started: ingest, enricher, writer
# and correlator. Each service logs to .state/logs/<name>.log and has its PID in
# .state/pids/<name>.pid; its configuration is environment variables set here.
#
#   services.sh build    build the service binaries (and vigiectl, simulator, demoreport, simbench) into bin/
#   services.sh start    build, write local secrets, migrate ClickHouse and apply the Kafka topics
#                        (vigiectl), start what is not running and wait until every service
#                        answers /readyz (idempotent)
#   services.sh stop     stop the services by PID: SIGTERM, then SIGKILL after 40 s
#   services.sh status   say which service runs, with its PID and admin address
#
# Local secrets, created once in .state/secrets/ (mode 0600, git-ignored): the pseudonymisation
# key (ingest only), the sensors' credentials (token hashes, for ingest) and their tokens (for
# the simulator). VIGIE_DB names the ClickHouse database (default vigie). KAFKA_BROKERS and
# CLICKHOUSE_ADDR come from .state/env unless already set in the environment. ClickHouse: the
# migrations run as the administrator (CLICKHOUSE_USER and CLICKHOUSE_PASSWORD of .state/env,
# which deploy/local/clickhouse.sh writes), the services as the user writer (role
# vigie_writer, on the server's Vigie database; the administrator on another VIGIE_DB), whose
# password they read from .state/secrets/clickhouse-<user>.password; the administrator's
# credentials are not in their environment.
# VIGIE_TOPIC_SUFFIX (or .state/demo/env, which `make demo` writes) appends a suffix to every
# topic name: each demo gets topics of its own, so no service rebuilds state from an
# earlier demo's events.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state="$root/.state"
bin="$root/bin"
secrets="$state/secrets"
db="${VIGIE_DB:-vigie}"

log() { printf 'services: %s\n' "$*" >&2; }

# The services in start order (their topics exist: `vigiectl topics apply` runs first), with
# their admin addresses. A service whose main package is not there yet is skipped.
services=(ingest enricher writer correlator)
declare -A admin=(
  [ingest]=127.0.0.1:19081
  [enricher]=127.0.0.1:19103
  [writer]=127.0.0.1:19104
  [correlator]=127.0.0.1:19107
)
INGEST_URL=http://127.0.0.1:19080

present() { [ -f "$root/services/$1/cmd/$1/main.go" ]; }

build() {
  mkdir -p "$bin"
  local pkgs=()
  for s in "${services[@]}"; do present "$s" && pkgs+=("./services/$s/cmd/$s"); done
  pkgs+=(./services/vigiectl/cmd/vigiectl ./services/simulator/cmd/simulator ./services/simulator/cmd/demoreport ./services/simulator/cmd/simbench)
  log "building ${#pkgs[@]} binaries into bin/"
  (cd "$root" && GOFLAGS=-buildvcs=false go build -o "$bin/" "${pkgs[@]}")
}

load_env() {
  if [ ! -f "$state/env" ]; then
    log "no $state/env: start the infrastructure first (make up)"
    exit 1
  fi
  # An address already in the environment wins over the file (tests, a second checkout).
  local k v
  while IFS='=' read -r k v; do
    [ -n "$k" ] && [ -z "${!k:-}" ] && export "$k=$v"
  done <"$state/env"
  return 0
}

secrets() {
  mkdir -p "$secrets"
  chmod 700 "$secrets"
  # Made again when missing, or from before serial-block ids had their key (issue 15).
  if [ ! -f "$secrets/pseudonym-keys.yaml" ] || ! grep -q block_key "$secrets/pseudonym-keys.yaml"; then
    umask 077
    printf 'active: local-1\ndefault_country_code: "33"\nblock_key: %s\nkeys:\n  local-1: %s\n' \
      "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >"$secrets/pseudonym-keys.yaml"
    log "new pseudonymisation keys in $secrets/pseudonym-keys.yaml"
  fi
  # Made again when missing, or from before entries had their sensor_type (issue 15).
  if [ ! -f "$secrets/ingest-credentials.yaml" ] || [ ! -f "$secrets/sensor-tokens.yaml" ] ||
    ! grep -q sensor_type "$secrets/ingest-credentials.yaml"; then
    "$bin/simulator" credentials -credentials_file "$secrets/ingest-credentials.yaml" -tokens_file "$secrets/sensor-tokens.yaml"
    log "new sensor credentials in $secrets/"
  fi
}

pidfile() { echo "$state/pids/$1.pid"; }

topics() {
  if [ -z "${VIGIE_TOPIC_SUFFIX+x}" ] && [ -f "$state/demo/env" ]; then
    # shellcheck disable=SC1091
    . "$state/demo/env"
  fi
  local sfx="${VIGIE_TOPIC_SUFFIX:-}"
  RAW="detections.raw.v1$sfx" ENRICHED="detections.enriched.v1$sfx" DLQ="detections.dlq.v1$sfx" ALERTS="alerts.v1$sfx"
}

running() {
  local f
  f=$(pidfile "$1")
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# ch_auth SERVICE: the service's ClickHouse user and password file as NAME=value words, when
# the server has users (.state/env names its administrator): writer, whose role writes the
# server's Vigie database (CHSERVER_DATABASE, vigie); on another database (make bench's
# vigie_bench) the administrator.
ch_auth() {
  local p="VIGIE_$(echo "$1" | tr a-z A-Z)_CLICKHOUSE" user=writer
  [ -n "${CLICKHOUSE_USER:-}" ] || return 0
  [ "$db" = "${CHSERVER_DATABASE:-vigie}" ] || user=$CLICKHOUSE_USER
  [ -s "$secrets/clickhouse-$user.password" ] || { log "no $secrets/clickhouse-$user.password: restart ClickHouse (make down; make up)"; return 1; }
  echo "${p}_USERNAME=$user ${p}_PASSWORD_FILE=$secrets/clickhouse-$user.password"
}

# env_of SERVICE: the service's configuration as NAME=value words.
env_of() {
  case "$1" in
    ingest)
      echo "VIGIE_INGEST_LISTEN=127.0.0.1:19080 VIGIE_INGEST_ADMIN_LISTEN=${admin[ingest]}" \
        "VIGIE_INGEST_KAFKA_BROKERS=$KAFKA_BROKERS VIGIE_INGEST_TOPICS_RAW=$RAW VIGIE_INGEST_TOPICS_DLQ=$DLQ" \
        "VIGIE_INGEST_CREDENTIALS_FILE=$secrets/ingest-credentials.yaml" \
        "VIGIE_INGEST_PSEUDONYM_KEY_FILE=$secrets/pseudonym-keys.yaml" \
        "VIGIE_INGEST_RATE_EVENTS_PER_SECOND=${VIGIE_LOCAL_INGEST_RATE:-20000} VIGIE_INGEST_RATE_BURST=${VIGIE_LOCAL_INGEST_BURST:-40000}"
      ;;
    enricher)
      echo "VIGIE_ENRICHER_KAFKA_BROKERS=$KAFKA_BROKERS VIGIE_ENRICHER_ADMIN_LISTEN=${admin[enricher]}" \
        "VIGIE_ENRICHER_TOPICS_RAW=$RAW VIGIE_ENRICHER_TOPICS_ENRICHED=$ENRICHED VIGIE_ENRICHER_TOPICS_DLQ=$DLQ" \
        "VIGIE_ENRICHER_CLICKHOUSE_ADDRS=$CLICKHOUSE_ADDR VIGIE_ENRICHER_CLICKHOUSE_DATABASE=$db $(ch_auth enricher)"
      ;;
    writer)
      echo "VIGIE_WRITER_KAFKA_BROKERS=$KAFKA_BROKERS VIGIE_WRITER_ADMIN_LISTEN=${admin[writer]}" \
        "VIGIE_WRITER_TOPICS_ENRICHED=$ENRICHED VIGIE_WRITER_TOPICS_DLQ=$DLQ" \
        "VIGIE_WRITER_CLICKHOUSE_ADDRS=$CLICKHOUSE_ADDR VIGIE_WRITER_CLICKHOUSE_DATABASE=$db $(ch_auth writer)"
      ;;
    correlator)
      # The scheduled rules step through event time: a replay compresses weeks into minutes,
      # so they are evaluated every second, up to 20 evaluated steps per rule and tick (the
      # rules take turns step by step, and steps a pre-check proves empty are skipped free).
      echo "VIGIE_CORRELATOR_KAFKA_BROKERS=$KAFKA_BROKERS VIGIE_CORRELATOR_ADMIN_LISTEN=${admin[correlator]}" \
        "VIGIE_CORRELATOR_TOPICS_ENRICHED=$ENRICHED VIGIE_CORRELATOR_TOPICS_ALERTS=$ALERTS" \
        "VIGIE_CORRELATOR_CLICKHOUSE_ADDRS=$CLICKHOUSE_ADDR VIGIE_CORRELATOR_CLICKHOUSE_DATABASE=$db $(ch_auth correlator)" \
        "VIGIE_CORRELATOR_SCHEDULER_TICK=${VIGIE_LOCAL_CORRELATOR_TICK:-1s}" \
        "VIGIE_CORRELATOR_SCHEDULER_MAX_STEPS_PER_TICK=${VIGIE_LOCAL_CORRELATOR_MAX_STEPS:-20}"
      ;;
  esac
}

wait_ready() { # service
  local url="http://${admin[$1]}/readyz"
  for _ in $(seq 1 120); do
    if curl -sf -o /dev/null --max-time 2 "$url"; then return 0; fi
    if ! running "$1"; then
      log "$1 exited while starting; last lines of .state/logs/$1.log:"
      tail -n 20 "$state/logs/$1.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  log "$1 not ready after 60 s ($url); see .state/logs/$1.log"
  return 1
}

start() {
  load_env
  topics
  build
  secrets
  mkdir -p "$state/logs" "$state/pids"
  log "migrating ClickHouse database $db at $CLICKHOUSE_ADDR"
  local try
  for try in 1 2 3; do
    "$bin/vigiectl" migrate -clickhouse.addrs="$CLICKHOUSE_ADDR" -clickhouse.database="$db" -log.level=warn && break
    [ "$try" = 3 ] && return 1
    log "migration attempt $try failed, retrying"
    sleep 2
  done
  # The services create no topics: apply schemas/kafka/topics.yaml, with the demo's suffix.
  local sfx="${RAW#detections.raw.v1}"
  log "applying the Kafka topics at $KAFKA_BROKERS${sfx:+ (suffix $sfx)}"
  "$bin/vigiectl" topics apply -kafka.brokers="$KAFKA_BROKERS" -topics.suffix="$sfx" -log.level=warn
  for s in "${services[@]}"; do
    if ! present "$s"; then
      log "$s: no services/$s/cmd/$s/main.go yet, skipped"
      continue
    fi
    if running "$s"; then
      log "$s already running (pid $(cat "$(pidfile "$s")"))"
      continue
    fi
    # shellcheck disable=SC2046 # the words of env_of are NAME=value pairs
    (cd "$state" && exec env -u CLICKHOUSE_USER -u CLICKHOUSE_PASSWORD -u CLICKHOUSE_ANALYST_USER -u CLICKHOUSE_ANALYST_PASSWORD \
      $(env_of "$s") "$bin/$s" >>"$state/logs/$s.log" 2>&1) &
    echo $! >"$(pidfile "$s")"
    wait_ready "$s"
    log "$s ready (pid $(cat "$(pidfile "$s")"), admin http://${admin[$s]})"
  done
}

stop() {
  local s pid
  for s in ingest enricher correlator writer; do
    running "$s" || { rm -f "$(pidfile "$s")"; continue; }
    pid=$(cat "$(pidfile "$s")")
    kill -TERM "$pid"
    for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$s (pid $pid) still running after 40 s: killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$s")"
    log "$s stopped"
  done
}

status() {
  for s in "${services[@]}"; do
    if running "$s"; then
      echo "$s: running (pid $(cat "$(pidfile "$s")"), admin http://${admin[$s]})"
    else
      echo "$s: stopped"
    fi
  done
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: services.sh build|start|stop|status" >&2; exit 2 ;;
esac
