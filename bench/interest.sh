#!/usr/bin/env bash
# bench/interest.sh — what per-user interest costs a NATS cluster: three
# natsd processes with routes on loopback, SUBS subscriptions on node 1
# (bench/interest), RSS and route bytes per subscription on every node.
#
#   SUBS=200000 OUT=bench/results/interest bash bench/interest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SUBS=${SUBS:-200000}
BATCH=${BATCH:-10000}
OUT=${OUT:-bench/results/latest}
BIN=$(mktemp -d)
mkdir -p "$OUT"
go build -o "$BIN/natsd" ./bench/natsd
go build -o "$BIN/interest" ./bench/interest

pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$BIN"; }
trap cleanup EXIT
routes=(nats-route://127.0.0.1:16241 nats-route://127.0.0.1:16242 nats-route://127.0.0.1:16243)
for i in 1 2 3; do
  others=$(printf '%s\n' "${routes[@]}" | grep -v ":1624$i\$" | paste -sd,)
  "$BIN/natsd" -name "n$i" -listen "127.0.0.1:1423$i" -cluster "127.0.0.1:1624$i" -routes "$others" >/dev/null & pids+=($!)
done
for i in 1 2 3; do # each node accepts clients
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/1423$i") 2>/dev/null && break; sleep 0.1; done
done
sleep 3 # and the routes connect
"$BIN/interest" -url nats://127.0.0.1:14231,nats://127.0.0.1:14232,nats://127.0.0.1:14233 \
  -pid "$(IFS=,; echo "${pids[*]}")" -subs "$SUBS" -batch "$BATCH" -json "$OUT/interest-$SUBS.json"
