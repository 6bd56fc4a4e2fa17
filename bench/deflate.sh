#!/usr/bin/env bash
# bench/deflate.sh — issue 5: bytes on the wire and CPU with and without
# permessage-deflate. The broadcast scenario against wsgate as it ships
# (compression on, --compress-threshold 256), the same clients once without
# and once with --deflate, for two payloads:
#   json1k  a realistic notification of about 1 KiB (a 1,087-byte frame):
#           compressed; also with --deflate --inflate-once ("once"), which
#           keeps wsbench's own inflating (one per recipient, on the same
#           cores as the gateway) out of the latency;
#   pad200  the standard 200-byte payload (a 251-byte frame): under the
#           threshold, never compressed, so with and without should match.
# Every run gets a fresh gateway and a fresh NATS server, each in a process of
# its own; wsbench reads the gateway's CPU from /proc and its bytes written
# (wsgate_written_bytes_total) from /metrics. Then `wsbench compare` of each
# payload's runs. Even rounds reverse the order (off, on, once / once, on,
# off) so that drift on a shared host does not always favour the same side.
#
# Environment: CONNS (5000), MESSAGES (20), MSG_RATE (2), RATE (5000),
# DIALERS (64), ROUNDS (1), OUT (bench/results/<today>). Writes
# $OUT/deflate-<payload>-<off|on|once>.json (-r<N> from the second round on) and
# the comparisons to $OUT/deflate-compare.txt. Listens on loopback ports
# 24222, 28080 and 29090 (not those of compare.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-5000}
MESSAGES=${MESSAGES:-20}
MSG_RATE=${MSG_RATE:-2}
RATE=${RATE:-5000}
DIALERS=${DIALERS:-64}
ROUNDS=${ROUNDS:-1}
OUT=${OUT:-bench/results/$(date +%F)}
NATS_PORT=24222 WS_PORT=28080 ADMIN_PORT=29090
source bench/lib.sh
mkdir -p "$OUT"

go build -o "$BIN/wsgate" ./cmd/wsgate
go build -o "$BIN/natsd" ./bench/natsd
go build -o "$BIN/wsbench" ./cmd/wsbench

check_ports $NATS_PORT $WS_PORT $ADMIN_PORT

# run NAME PAYLOAD_FLAGS... : fresh NATS and gateway, one broadcast run, stop both.
run() {
  local name=$1; shift
  echo "== $name, load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  "$BIN/natsd" -listen 127.0.0.1:$NATS_PORT >/dev/null & local nats=$!; pids+=("$nats")
  sleep 0.5
  "$BIN/wsgate" --auth=none --listen 127.0.0.1:$WS_PORT --admin 127.0.0.1:$ADMIN_PORT \
    --nats-url nats://127.0.0.1:$NATS_PORT --durable=false --log-level warn & local srv=$!; pids+=("$srv")
  wait_http "http://127.0.0.1:$ADMIN_PORT/readyz"
  "$BIN/wsbench" broadcast --label "$name" --url ws://127.0.0.1:$WS_PORT/ws --nats nats://127.0.0.1:$NATS_PORT \
    --conns "$CONNS" --rate "$RATE" --dialers "$DIALERS" --messages "$MESSAGES" --msg-rate "$MSG_RATE" \
    "$@" --server-pid "$srv" --server-metrics "http://127.0.0.1:$ADMIN_PORT/metrics" --json "$OUT/$name.json"
  stop "$srv" "$nats"
}

declare -A payload=([json1k]="--payload-kind json1k" [pad200]="--payload-kind pad --payload-size 200")
declare -A modes=([json1k]="off on once" [pad200]="off on")
declare -A flags=([off]="" [on]="--deflate" [once]="--deflate --inflate-once")
declare -A files=()
for round in $(seq "$ROUNDS"); do
  suffix=""; if [ "$round" -gt 1 ]; then suffix="-r$round"; fi
  for p in json1k pad200; do
    order=${modes[$p]}
    if [ $((round % 2)) -eq 0 ]; then order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    for mode in $order; do
      name="deflate-$p-$mode$suffix"
      # shellcheck disable=SC2086 # the flags are words
      run "$name" ${payload[$p]} ${flags[$mode]}
      files[$p]="${files[$p]:-} $OUT/$name.json"
    done
  done
done

echo
{
  for p in json1k pad200; do
    echo "== $p (file names below)"
    # shellcheck disable=SC2086
    "$BIN/wsbench" compare ${files[$p]}
    echo
  done
} | tee "$OUT/deflate-compare.txt"
