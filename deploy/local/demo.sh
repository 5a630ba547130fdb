#!/usr/bin/env bash
# `make demo`: the whole pipeline on the 2025 "Opération Prison Break" case, on this machine.
#
# Installs what is missing (make deps), starts Kafka and the local ClickHouse server
# (infra.sh up), builds and starts every service (services.sh start: migrations included),
# replays six weeks of detector traffic from every facility with the planted scenarios in
# about a minute, waits until the pipeline has drained and prints a report. The system keeps
# running for exploration until `make down`, unless DEMO_STOP=1.
#
# Knobs (environment):
#   DEMO_STOP=1          stop the services and the infrastructure after the report
#   DEMO_DEPS=0          skip `make deps` (already done)
#   DEMO_DAYS=42         simulated days            DEMO_SCALE=0.1   background volume (1 = national)
#   DEMO_PHONES=5000     the supplier's phones     DEMO_WALL=60s    wall time of the whole period (0: as fast as possible)
#   DEMO_SEED=1          the simulation's seed        DEMO_FLUSH=1h    event-time interval of sensor flushes
#                        (under the 1 h + 1 h a streaming rule of one hour waits for late events:
#                        longer flushes deliver one sensor's events hours after another's, and
#                        IMPOSSIBLE_TRAVEL misses what they hold)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/deploy/local"
state="$root/.state"
started=$(date +%s)

say() { printf '\n\033[1m▶ %s\033[0m (%ss)\n' "$*" "$(($(date +%s) - started))" >&2; }

if [ "${DEMO_DEPS:-1}" != 0 ]; then
  say "installing what is missing (make deps)"
  make -C "$root" --no-print-directory deps
fi

say "starting Kafka and the local ClickHouse server"
"$here/infra.sh" up
while IFS='=' read -r k v; do
  [ -n "$k" ] && [ -z "${!k:-}" ] && export "$k=$v"
done <"$state/env"

say "building the services; a fresh demo database"
"$here/services.sh" build
# A new demo starts from empty tables and topics of its own (suffix in .state/demo/env): the
# rows, event-time watermarks and streaming state of an earlier demo (same seed, same
# identities, same period) would otherwise mix with this one's.
"$here/services.sh" stop
"$root/bin/demoreport" -reset -clickhouse "$CLICKHOUSE_ADDR" -database "${VIGIE_DB:-vigie}"
mkdir -p "$state/demo"
suffix=".demo-$(date +%s | awk '{ s = ""; n = $1; do { s = sprintf("%c", 97 + n % 26) s; n = int(n / 26) } while (n > 0); print s }')"
echo "VIGIE_TOPIC_SUFFIX=$suffix" >"$state/demo/env"

say "starting the services"
"$here/services.sh" start

stop_all() {
  say "stopping (DEMO_STOP=1)"
  "$here/services.sh" stop
  "$here/infra.sh" down
}
if [ "${DEMO_STOP:-0}" = 1 ]; then trap stop_all EXIT; fi

mkdir -p "$state/demo"
summary="$state/demo/summary.json"
rm -f "$summary"
say "replaying ${DEMO_DAYS:-42} days of detector traffic with the planted scenarios"
"$root/bin/simulator" run \
  -tokens_file "$state/secrets/sensor-tokens.yaml" \
  -ingest.url http://127.0.0.1:19080 \
  -seed "${DEMO_SEED:-1}" -days "${DEMO_DAYS:-42}" -scale "${DEMO_SCALE:-0.1}" \
  -supplier_phones "${DEMO_PHONES:-5000}" -wall "${DEMO_WALL:-60s}" -flush_event_time "${DEMO_FLUSH:-1h}" \
  -summary_file "$summary" -log.format console -progress 10s >/dev/null

say "waiting for the pipeline to drain, then the report"
"$root/bin/demoreport" -summary_file "$summary" -key_file "$state/secrets/pseudonym-keys.yaml" -clickhouse "$CLICKHOUSE_ADDR" -database "${VIGIE_DB:-vigie}" \
  -brokers "$KAFKA_BROKERS" -dlq_topic "detections.dlq.v1$suffix" \
  -admin ingest=127.0.0.1:19081,enricher=127.0.0.1:19103,writer=127.0.0.1:19104,correlator=127.0.0.1:19107

say "demo done in $(($(date +%s) - started)) s"
