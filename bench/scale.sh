#!/usr/bin/env bash
# bench/scale.sh — many connections on one host: GATEWAYS gateway processes
# share one port with --reuseport (each process is limited to 20,000 open
# files here), one NATS server in its own process, and wsbench spreads its
# clients over worker processes and loopback source addresses.
#
#   CONNS=100000 GATEWAYS=6 bash bench/scale.sh
#
# Environment: CONNS (100000), GATEWAYS (ceil(CONNS/16000)), RATE (5000/s),
# MESSAGES (5), MSG_RATE (1), OUT (bench/results/latest), SOURCES
# (127.0.0.1-127.0.0.50).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-100000}
GATEWAYS=${GATEWAYS:-$(( (CONNS + 15999) / 16000 ))}
RATE=${RATE:-5000}
MESSAGES=${MESSAGES:-5}
MSG_RATE=${MSG_RATE:-1}
SOURCES=${SOURCES:-127.0.0.1-127.0.0.50}
OUT=${OUT:-bench/results/latest}
BIN=$(mktemp -d)
mkdir -p "$OUT"

go build -o "$BIN/wsgate" ./cmd/wsgate
go build -o "$BIN/natsd" ./bench/natsd
go build -o "$BIN/wsbench" ./cmd/wsbench

pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$BIN"; }
trap cleanup EXIT

"$BIN/natsd" -listen 127.0.0.1:14222 >/dev/null & pids+=($!)
sleep 0.5
server_args=()
for i in $(seq 0 $((GATEWAYS - 1))); do
  "$BIN/wsgate" --auth=none --reuseport --listen 127.0.0.1:18080 --admin 127.0.0.1:$((19090 + i)) \
    --nats-url nats://127.0.0.1:14222 --durable=false --log-level warn & pids+=($!)
  server_args+=(--server-pid "$!" --server-metrics "http://127.0.0.1:$((19090 + i))/metrics")
done
for i in $(seq 0 $((GATEWAYS - 1))); do
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$((19090 + i))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done

"$BIN/wsbench" broadcast --label "scale-$CONNS" --url ws://127.0.0.1:18080/ws --nats nats://127.0.0.1:14222 \
  --conns "$CONNS" --rate "$RATE" --messages "$MESSAGES" --msg-rate "$MSG_RATE" --source-addrs "$SOURCES" \
  "${server_args[@]}" --timeout 10m --json "$OUT/scale-$CONNS.json" --html "$OUT/scale-$CONNS.html"
