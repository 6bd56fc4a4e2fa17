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
routes=(nats-route://127.0.0.1:16231 nats-route://127.0.0.1:16232 nats-route://127.0.0.1:16233)
for i in 0 1 2; do
  others=$(printf '%s\n' "${routes[@]}" | grep -v ":1623$((i + 1))\$" | paste -sd,)
  "$BIN/natsd" -name "n$((i + 1))" -listen "127.0.0.1:1422$((i + 1))" -cluster "127.0.0.1:1623$((i + 1))" \
    -routes "$others" >/dev/null & pids+=($!)
done
sleep 3 # routes connect
"$BIN/interest" -url nats://127.0.0.1:14221,nats://127.0.0.1:14222,nats://127.0.0.1:14223 \
  -pid "$(IFS=,; echo "${pids[*]}")" -subs "$SUBS" -batch "$BATCH" -json "$OUT/interest-$SUBS.json"
