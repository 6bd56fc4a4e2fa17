#!/usr/bin/env bash
# bench/drain.sh — the graceful-drain measurement: N connections on gateway
# A, SIGTERM to A, every client reconnecting to gateway B as it is closed;
# how long the drain takes and how the reconnects spread over it. NATS, A
# and B run as processes of their own on free loopback ports; bench/drain
# starts and kills them.
#
# Environment: N (10000), DRAIN_DELAY (5s), DRAIN_TIMEOUT (30s),
# OUT (bench/results/<today>). Writes $OUT/drain-10k.json (drain-<N>.json
# for another N) and the printed table next to it as .txt.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
DRAIN_DELAY=${DRAIN_DELAY:-5s}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-30s}
OUT=${OUT:-bench/results/$(date +%F)}
NAME=drain-$N
if [ "$N" = 10000 ]; then NAME=drain-10k; fi
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
mkdir -p "$OUT"

go build -o "$BIN/wsgate" ./cmd/wsgate
go build -o "$BIN/natsd" ./bench/natsd
go build -o "$BIN/drain" ./bench/drain

"$BIN/drain" -n "$N" -drain-delay "$DRAIN_DELAY" -drain-timeout "$DRAIN_TIMEOUT" \
  -bin "$BIN/wsgate" -natsd "$BIN/natsd" -json "$OUT/$NAME.json" | tee "$OUT/$NAME.txt"
