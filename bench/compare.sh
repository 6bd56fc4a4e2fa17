#!/usr/bin/env bash
# bench/compare.sh — the standard comparison of issue 3, run by `make bench-compare`:
# the same broadcast scenario against wsgate and against the gorilla baseline,
# one after the other, each with a fresh server and a fresh NATS server in a
# process of its own, plus the kernel floor; then the ratios.
#
# Environment: CONNS (15000), MESSAGES (20), MSG_RATE (2), PAYLOAD (200),
# RATE (30000 connects/s asked: as fast as the host allows), DIALERS (256),
# OUT (bench/results/latest). Everything listens on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-15000}
MESSAGES=${MESSAGES:-20}
MSG_RATE=${MSG_RATE:-2}
PAYLOAD=${PAYLOAD:-200}
RATE=${RATE:-30000}
DIALERS=${DIALERS:-256}
OUT=${OUT:-bench/results/latest}
source bench/lib.sh
mkdir -p "$OUT"

go build -o "$BIN/wsgate" ./cmd/wsgate
go build -o "$BIN/baseline" ./bench/baseline
go build -o "$BIN/natsd" ./bench/natsd
go build -o "$BIN/wsbench" ./cmd/wsbench

check_ports 14222 18080 19090

# run LABEL CMD... : start NATS and the server CMD, run the broadcast scenario, stop both.
run() {
  local label=$1; shift
  "$BIN/natsd" -listen 127.0.0.1:14222 >/dev/null & local nats=$!; pids+=("$nats")
  sleep 0.5
  "$@" & local srv=$!; pids+=("$srv")
  wait_http "http://127.0.0.1:19090/metrics"
  "$BIN/wsbench" broadcast --label "$label" --url ws://127.0.0.1:18080/ws --nats nats://127.0.0.1:14222 \
    --conns "$CONNS" --rate "$RATE" --dialers "$DIALERS" --messages "$MESSAGES" --msg-rate "$MSG_RATE" \
    --payload-size "$PAYLOAD" --server-pid "$srv" --server-metrics http://127.0.0.1:19090/metrics --json "$OUT/$label.json" --html "$OUT/$label.html"
  stop "$srv" "$nats"
}

run wsgate "$BIN/wsgate" --auth=none --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 \
  --nats-url nats://127.0.0.1:14222 --durable=false --log-level warn
run baseline "$BIN/baseline" --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 \
  --nats-url nats://127.0.0.1:14222
"$BIN/wsbench" floor --label floor --conns "$CONNS" --rate "$RATE" --dialers "$DIALERS" --messages "$MESSAGES" --msg-rate "$MSG_RATE" \
  --payload-size "$PAYLOAD" --json "$OUT/floor.json"

echo
"$BIN/wsbench" compare "$OUT/baseline.json" "$OUT/wsgate.json" "$OUT/floor.json"
