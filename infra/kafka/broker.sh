#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, broker+controller) on loopback,
# built from Apache's jars on Maven Central. No Docker needed.
#
#   infra/kafka/broker.sh fetch    download jars into var/kafka/libs (once)
#   infra/kafka/broker.sh start    format storage if new, start, wait until it answers
#   infra/kafka/broker.sh stop     stop cleanly (SIGTERM, then wait)
#   infra/kafka/broker.sh status   exit 0 if running and answering
#   infra/kafka/broker.sh reset    stop and delete the broker's data
#
# Settings (environment): DG_KAFKA_PORT (19092), DG_KAFKA_CONTROLLER_PORT (19093),
# DG_DATA_DIR (var), DG_KAFKA_HEAP (512m), DG_KAFKA_START_TIMEOUT (90 s),
# DG_KAFKA_LIBS (jar folder, default $DG_DATA_DIR/kafka/libs; point a second broker at the first one's jars),
# DG_KAFKA_EXTRA_LISTENERS (e.g. "SASL_SSL://127.0.0.1:29094,SSL://127.0.0.1:29095": added to listeners and
# advertised.listeners, each named after its protocol), DG_KAFKA_EXTRA_PROPERTIES (a file appended to
# server.properties: TLS key/trust stores, JAAS, sasl.enabled.mechanisms; a later line wins).
# The PLAINTEXT listener stays, for the start-up check and inter-broker traffic.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data_dir="${DG_DATA_DIR:-$root/var}"
kdir="$data_dir/kafka"
libs="${DG_KAFKA_LIBS:-$kdir/libs}"   # DG_KAFKA_LIBS: reuse jars fetched elsewhere (a second broker)
logs="$kdir/data"
pidfile="$kdir/broker.pid"
logfile="$kdir/broker.log"
port="${DG_KAFKA_PORT:-19092}"
cport="${DG_KAFKA_CONTROLLER_PORT:-19093}"
heap="${DG_KAFKA_HEAP:-512m}"
timeout_s="${DG_KAFKA_START_TIMEOUT:-90}"
extra_listeners="${DG_KAFKA_EXTRA_LISTENERS:-}"
extra_props="${DG_KAFKA_EXTRA_PROPERTIES:-}"

say() { echo "[broker] $*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || { say "error: '$1' is not installed ($2)"; exit 2; }
}

fetch() {
  if [ -f "$libs/.complete" ] && [ "$libs/.complete" -nt "$here/pom.xml" ]; then
    return 0
  fi
  need mvn "needed once to fetch Kafka's jars from Maven Central"
  need java "Java 17+ runs the broker"
  say "fetching Apache Kafka jars from Maven Central into $libs ..."
  rm -rf "$libs"; mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$libs" >"$kdir/mvn.log" 2>&1 \
    || { say "error: mvn failed, see $kdir/mvn.log"; tail -20 "$kdir/mvn.log" >&2; exit 1; }
  touch "$libs/.complete"
  say "fetched $(ls "$libs" | wc -l) jars"
}

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid; pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

answers() {
  # A TCP connect is not enough: ask for metadata through the Python client.
  "${DG_PYTHON:-$root/.venv/bin/python}" - "$port" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"}).list_topics(timeout=2)
sys.exit(0 if md.brokers else 1)
PY
}

write_config() {
  mkdir -p "$logs"
  local more="" map=""
  if [ -n "$extra_listeners" ]; then
    more=",$extra_listeners"
    local l
    for l in ${extra_listeners//,/ }; do map="$map,${l%%://*}:${l%%://*}"; done
  fi
  if [ -n "$extra_props" ] && [ ! -f "$extra_props" ]; then
    say "error: DG_KAFKA_EXTRA_PROPERTIES=$extra_props is not a file"; exit 2
  fi
  cat >"$kdir/server.properties" <<CFG
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport$more
advertised.listeners=PLAINTEXT://127.0.0.1:$port$more
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT$map
log.dirs=$logs
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
CFG
  if [ -n "$extra_props" ]; then
    { echo "# from DG_KAFKA_EXTRA_PROPERTIES=$extra_props"; cat "$extra_props"; } >>"$kdir/server.properties"
  fi
}

start() {
  if pid="$(running_pid)"; then
    say "already running (pid $pid) on 127.0.0.1:$port"; return 0
  fi
  if port_taken "$port" || port_taken "$cport"; then
    say "error: port $port or $cport is already used by another process (set DG_KAFKA_PORT / DG_KAFKA_CONTROLLER_PORT)"; exit 1
  fi
  fetch
  write_config
  local cp="$libs/*"
  if [ ! -f "$logs/meta.properties" ]; then
    local cid
    cid="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    java -cp "$cp" -Dlog4j2.configurationFile="$here/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cid" -c "$kdir/server.properties" >>"$logfile" 2>&1 \
      || { say "error: formatting KRaft storage failed, see $logfile"; exit 1; }
  fi
  say "starting Kafka on 127.0.0.1:$port (log: $logfile)"
  nohup java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.properties" \
    -cp "$cp" kafka.Kafka "$kdir/server.properties" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local waited=0
  until answers; do
    if ! running_pid >/dev/null; then
      say "error: broker exited during start-up; last log lines:"; tail -20 "$logfile" >&2; exit 1
    fi
    if [ "$waited" -ge "$timeout_s" ]; then
      say "error: broker did not answer within ${timeout_s}s; see $logfile"; exit 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  say "ready after ${waited}s (pid $(cat "$pidfile"))"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then say "not running"; rm -f "$pidfile"; return 0; fi
  say "stopping (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return 0; }
    sleep 0.5
  done
  say "did not stop within 30s; killing"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidfile"
}

case "${1:-}" in
  fetch) mkdir -p "$kdir"; fetch ;;
  start) mkdir -p "$kdir"; start ;;
  stop) stop ;;
  status) running_pid >/dev/null && answers ;;
  reset) stop; rm -rf "$logs"; say "data deleted" ;;
  *) echo "usage: $0 fetch|start|stop|status|reset" >&2; exit 2 ;;
esac
