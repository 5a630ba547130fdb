#!/usr/bin/env bash
# `make bench`: the whole pipeline at steady rates on this machine, raising the rate until it
# falls behind; prints a table (sustained events/s, p50/p99 detection-to-queryable and
# detection-to-alert latency, CPU and RSS per process, Kafka and the ClickHouse server
# included) and keeps it in deploy/bench/results-<date>.md.
#
# It stops the services of a running demo, starts them on a database and topics of their own
# (vigie_bench, suffix .bench-…), and stops them at the end; Kafka and ClickHouse stay up.
#
#   BENCH_RATES=2000,5000,10000,20000,35000,50000   events/s of the steps
#   BENCH_STEP=60s      length of each step (the issue's target is 5 minutes at 50,000/s)
#   BENCH_DRAIN=30s     time allowed after a step for the rows to catch up
#   BENCH_OUT=deploy/bench/results-<UTC date>.md
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/deploy/local"
state="$root/.state"

"$here/infra.sh" up >/dev/null
while IFS='=' read -r k v; do
  [ -n "$k" ] && [ -z "${!k:-}" ] && export "$k=$v"
done <"$state/env"

"$here/services.sh" build
"$here/services.sh" stop
export VIGIE_DB=vigie_bench
VIGIE_TOPIC_SUFFIX=".bench-$(date +%s)"
export VIGIE_TOPIC_SUFFIX
"$root/bin/demoreport" -reset -clickhouse "$CLICKHOUSE_ADDR" -database "$VIGIE_DB"
# Ingest's per-sensor rate limit is for real sensors, not for a benchmark's few hundred.
VIGIE_LOCAL_INGEST_RATE=1000000 VIGIE_LOCAL_INGEST_BURST=2000000 "$here/services.sh" start
trap '"$here/services.sh" stop' EXIT

out="${BENCH_OUT:-$root/deploy/bench/results-$(date -u +%F).md}"
mkdir -p "$(dirname "$out")"
"$root/bin/simbench" \
  -tokens_file "$state/secrets/sensor-tokens.yaml" \
  -clickhouse "$CLICKHOUSE_ADDR" -database "$VIGIE_DB" \
  -rates "${BENCH_RATES:-2000,5000,10000,20000,35000,50000}" \
  -step "${BENCH_STEP:-60s}" -drain "${BENCH_DRAIN:-30s}" \
  -procs "ingest=$state/pids/ingest.pid,enricher=$state/pids/enricher.pid,writer=$state/pids/writer.pid,correlator=$state/pids/correlator.pid,kafka=$state/kafka-single/node-1/pid,clickhouse=${BENCH_CH_PIDFILE:-$state/pids/chserver.pid},simulator=self" \
  -out "$out"
echo "results kept in ${out#"$root"/}"
