#!/usr/bin/env bash
# Runs a real Apache Kafka broker (KRaft, no ZooKeeper, no Docker) on 127.0.0.1 from the jars
# that `make deps` fetched with Maven into .cache/kafka/libs.
#
#   kafka.sh fetch                 fetch the broker jars (idempotent)
#   kafka.sh start [single|cluster] start and wait until ready (idempotent)
#   kafka.sh stop  [single|cluster] stop by PID (waits, then kills after a timeout)
#   kafka.sh stop-node N | start-node N   stop/start one broker of the cluster (fault tests)
#   kafka.sh kill-node N           SIGKILL one broker of the cluster (a crash; start-node N after)
#   kafka.sh status
#
# single:  one broker+controller, 127.0.0.1:19092; writes KAFKA_BROKERS to .state/env.
# cluster: three broker+controllers, 127.0.0.1:19192,19292,19392, replication factor 3,
#          min.insync.replicas=2; writes KAFKA_CLUSTER_BROKERS to .state/env.
# Data, logs and PIDs live in .state/kafka-<shape>/ (git-ignored).
#
# KAFKA_INSTANCE=<name> runs a shape apart from the shared one, for tests that restart their
# broker while other tests use the shared one: its own state in .state/kafka-<shape>-<name>/
# and its own lock, nothing written to .state/env; move its ports with KAFKA_PORT or
# KAFKA_CLUSTER_PORT, and stop it with the same variables.
#
# KAFKA_SECURE=1 (with KAFKA_INSTANCE, single shape) makes the client listener SASL_SSL, as in
# production: TLS with a certificate of a CA made for the instance, SCRAM-SHA-512 for a user
# "vigie" whose password is generated (the broker talks to itself the same way). The instance
# directory then holds tls/ca.pem and sasl-password (0600), and client.env:
# KAFKA_SECURE_BROKERS, KAFKA_CA_FILE, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME,
# KAFKA_SASL_PASSWORD_FILE.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
libs="$root/.cache/kafka/libs"
state="$root/.state"
envfile="$state/env"

log() { printf 'kafka: %s\n' "$*" >&2; }

instance=${KAFKA_INSTANCE:-}
case "$instance" in *[!a-z0-9_-]*) log "KAFKA_INSTANCE: $instance is not [a-z0-9_-]"; exit 2 ;; esac
secure=${KAFKA_SECURE:-0}
if [ "$secure" = 1 ] && [ -z "$instance" ]; then log "KAFKA_SECURE=1 needs KAFKA_INSTANCE (the shared broker stays as it is)"; exit 2; fi
sdir() { echo "$state/kafka-$1${instance:+-$instance}"; } # shape -> its state directory

fetch() {
  if [ -f "$libs/.complete" ]; then return; fi
  log "fetching broker jars with Maven into $libs"
  rm -rf "$libs"
  # Maven 3.8 prints colour resets even in batch mode; strip them from the log.
  mvn -q -B -f "$root/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
  touch "$libs/.complete"
  log "fetched $(ls "$libs"/*.jar | wc -l) jars, $(du -sh "$libs" | cut -f1)"
}

# node_ids shape -> the node ids of that shape.
node_ids() { if [ "$1" = cluster ]; then echo 1 2 3; else echo 1; fi; }
# KAFKA_PORT / KAFKA_CLUSTER_PORT move the brokers, e.g. to run a second checkout beside this one.
port() { # shape node -> client port (the controller listens on the next port)
  if [ "$1" = cluster ]; then echo $((${KAFKA_CLUSTER_PORT:-19192} + 100 * ($2 - 1))); else echo "${KAFKA_PORT:-19092}"; fi
}
brokers() {
  local shape=$1 out="" n
  for n in $(node_ids "$shape"); do out="$out${out:+,}127.0.0.1:$(port "$shape" "$n")"; done
  echo "$out"
}
voters() {
  local shape=$1 out="" n
  for n in $(node_ids "$shape"); do out="$out${out:+,}$n@127.0.0.1:$(( $(port "$shape" "$n") + 1 ))"; done
  echo "$out"
}

# secure_material dir: a CA, the broker's certificate for 127.0.0.1 and localhost (PEM, key
# in PKCS#8 as Kafka's PEM key store wants it) and the SCRAM user's password, made once.
secure_material() {
  local dir=$1 tls=$1/tls
  if [ -f "$tls/broker.pem" ] && [ -f "$dir/sasl-password" ]; then return; fi
  mkdir -p "$tls"
  (
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=vigie local test CA" \
      -keyout "$tls/ca.key" -out "$tls/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$tls/broker.key" -out "$tls/broker.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext"
    openssl x509 -req -in "$tls/broker.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 30 \
      -extfile "$tls/san.ext" -out "$tls/broker.crt" >/dev/null 2>&1
    openssl pkcs8 -topk8 -nocrypt -in "$tls/broker.key" -out "$tls/broker.p8"
    cat "$tls/broker.p8" "$tls/broker.crt" >"$tls/broker.pem"
    openssl rand -hex 24 >"$dir/sasl-password"
  )
  chmod 644 "$tls/ca.pem"
}

write_config() { # shape node dir
  local shape=$1 n=$2 dir=$3 p rf isr listeners
  p=$(port "$shape" "$n")
  if [ "$shape" = cluster ]; then rf=3; isr=2; else rf=1; isr=1; fi
  if [ "$secure" = 1 ]; then
    listeners="listeners=SASL_SSL://127.0.0.1:$p,CONTROLLER://127.0.0.1:$((p + 1))
advertised.listeners=SASL_SSL://127.0.0.1:$p
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"vigie\" password=\"$(cat "$(dirname "$dir")/sasl-password")\";
ssl.keystore.type=PEM
ssl.keystore.location=$(dirname "$dir")/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$(dirname "$dir")/tls/ca.pem
ssl.endpoint.identification.algorithm=https"
  else
    listeners="listeners=PLAINTEXT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$((p + 1))
advertised.listeners=PLAINTEXT://127.0.0.1:$p
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  fi
  (umask 077; cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters "$shape")
$listeners
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
# Services and tests create their topics explicitly: a typo must fail, not create a topic.
auto.create.topics.enable=false
# Tests start and stop consumers all the time; do not wait for more members to join.
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
  )
  cat >"$dir/log4j2.yaml" <<LOG
Configuration:
  Appenders:
    File:
      name: file
      fileName: "$dir/server.log"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: file
LOG
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_node() { # shape node
  local shape=$1 n=$2 dir pidfile heap
  dir="$(sdir "$shape")/node-$n"
  pidfile="$dir/pid"
  if pid_alive "$pidfile"; then return; fi
  mkdir -p "$dir"
  if [ "$secure" = 1 ]; then secure_material "$(sdir "$shape")"; fi
  write_config "$shape" "$n" "$dir"
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cid_file scram=(); cid_file="$(sdir "$shape")/cluster-id"
    [ -f "$cid_file" ] || java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$cid_file"
    # The SCRAM user exists from the first start: the broker itself logs in with it.
    if [ "$secure" = 1 ]; then scram=(--add-scram "SCRAM-SHA-512=[name=vigie,password=$(cat "$(sdir "$shape")/sasl-password")]"); fi
    java -cp "$libs/*" -Dlog4j2.configurationFile="$dir/log4j2.yaml" kafka.tools.StorageTool format \
      -t "$(cat "$cid_file")" -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log" 2>&1 \
      || { log "format failed, see $dir/format.log"; exit 1; }
  fi
  if [ "$shape" = cluster ]; then heap=384m; else heap=768m; fi
  # setsid: the broker outlives this script and is stopped by its PID, not by a process group.
  # 9>&-: it must not inherit the starters' lock, or the next start would wait for it forever.
  setsid java -Xms128m -Xmx$heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.yaml" -cp "$libs/*" \
    kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
}

wait_ready() { # shape node
  local shape=$1 n=$2 dir deadline
  dir="$(sdir "$shape")/node-$n"
  deadline=$((SECONDS + 90))
  until grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null; do
    if ! pid_alive "$dir/pid"; then log "node $n exited, see $dir/server.log and $dir/stdout.log"; exit 1; fi
    if [ $SECONDS -ge $deadline ]; then log "node $n not ready after 90 s, see $dir/server.log"; exit 1; fi
    sleep 0.2
  done
}

# stop_nodes shape node...: SIGTERM every node first, then wait for all. Stopping a KRaft
# quorum one node at a time stalls the last ones: they wait for a quorum that left.
stop_nodes() {
  local shape=$1 n dir pid i pids=() alive
  shift
  for n in "$@"; do
    dir="$(sdir "$shape")/node-$n"
    if pid_alive "$dir/pid"; then
      pid=$(cat "$dir/pid")
      kill "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$dir/pid"
    # The next start must wait for a fresh "started" line, not find the old one.
    if [ -f "$dir/server.log" ]; then mv "$dir/server.log" "$dir/server.log.1"; fi
  done
  for i in $(seq 1 150); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.2
  done
  log "$shape nodes did not stop in 30 s, killing"
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  return 0
}

# kill_node shape node: SIGKILL, as a crash would, and wait until it is gone.
kill_node() {
  local dir pid i
  dir="$(sdir "$1")/node-$2"
  if pid_alive "$dir/pid"; then
    pid=$(cat "$dir/pid")
    kill -9 "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$dir/pid"
  if [ -f "$dir/server.log" ]; then mv "$dir/server.log" "$dir/server.log.1"; fi
}

set_env() { # key value: replace the key's line in the env file (not for an instance)
  [ -z "$instance" ] || return 0
  mkdir -p "$state"
  touch "$envfile"
  # umask 077: the env file holds ClickHouse's passwords too (clickhouse.sh), mode 0600.
  (umask 077; grep -v "^$1=" "$envfile" >"$envfile.tmp" || true; echo "$1=$2" >>"$envfile.tmp")
  mv "$envfile.tmp" "$envfile"
}
unset_env() { [ -z "$instance" ] && [ -f "$envfile" ] && { (umask 077; grep -v "^$1=" "$envfile" >"$envfile.tmp" || true); mv "$envfile.tmp" "$envfile"; }; return 0; }

env_key() { if [ "$1" = cluster ]; then echo KAFKA_CLUSTER_BROKERS; else echo KAFKA_BROKERS; fi; }

cmd=${1:-status}
shape=${2:-single}
case "$shape" in single|cluster) ;; *) [ "$cmd" = stop-node ] || [ "$cmd" = start-node ] || [ "$cmd" = kill-node ] || { log "unknown shape $shape (single|cluster)"; exit 2; } ;; esac

case "$cmd" in
  fetch) fetch ;;
  start)
    # One starter at a time, so that racing starters never spawn two brokers.
    mkdir -p "$state"
    exec 9>"$(sdir "$shape").lock"
    flock 9
    fetch
    t0=$(date +%s%N)
    for n in $(node_ids "$shape"); do start_node "$shape" "$n"; done
    for n in $(node_ids "$shape"); do wait_ready "$shape" "$n"; done
    set_env "$(env_key "$shape")" "$(brokers "$shape")"
    if [ "$secure" = 1 ]; then
      d=$(sdir "$shape")
      printf 'KAFKA_SECURE_BROKERS=%s\nKAFKA_CA_FILE=%s\nKAFKA_SASL_MECHANISM=scram-sha-512\nKAFKA_SASL_USERNAME=vigie\nKAFKA_SASL_PASSWORD_FILE=%s\n' \
        "$(brokers "$shape")" "$d/tls/ca.pem" "$d/sasl-password" >"$d/client.env"
    fi
    how=""; if [ "$secure" = 1 ]; then how=" (SASL_SSL, SCRAM-SHA-512)"; fi
    log "$shape ready at $(brokers "$shape")$how in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    ;;
  stop)
    # shellcheck disable=SC2046
    stop_nodes "$shape" $(node_ids "$shape")
    unset_env "$(env_key "$shape")"
    ;;
  stop-node) stop_nodes cluster "$2" ;;
  kill-node) kill_node cluster "$2" ;;
  start-node) start_node cluster "$2"; wait_ready cluster "$2" ;;
  status)
    for s in single cluster; do
      for n in $(node_ids "$s"); do
        if pid_alive "$state/kafka-$s/node-$n/pid"; then echo "$s node $n: running (pid $(cat "$state/kafka-$s/node-$n/pid"))"; fi
      done
    done
    ;;
  *) log "usage: kafka.sh fetch|start|stop|stop-node N|start-node N|kill-node N|status [single|cluster]"; exit 2 ;;
esac
