#!/usr/bin/env bash
# Starts and stops the local infrastructure the services, tests and demo need: one Kafka
# broker and the local ClickHouse server, both on 127.0.0.1. Their addresses go to .state/env.
#
#   infra.sh up        start what is not running (idempotent)
#   infra.sh down      stop the services (services.sh), then everything started here, by PID
#   infra.sh running   exit 0 when everything is already up
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

case "${1:-}" in
  up)
    "$here/kafka.sh" start single
    "$here/clickhouse.sh" start
    ;;
  down)
    "$here/services.sh" stop
    "$here/clickhouse.sh" stop
    "$here/kafka.sh" stop single
    "$here/kafka.sh" stop cluster
    "$here/clickhouse18.sh" stop 2>/dev/null || true
    ;;
  running)
    "$here/kafka.sh" status | grep -q "^single node 1: running" && "$here/clickhouse.sh" status | grep -q ": running"
    ;;
  *) echo "usage: infra.sh up|down|running" >&2; exit 2 ;;
esac
