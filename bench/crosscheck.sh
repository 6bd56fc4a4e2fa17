#!/usr/bin/env bash
# bench/crosscheck.sh — the standard comparison of compare.sh with a second
# client, run by `make bench-crosscheck`: bench/crosscheck, gorilla/websocket
# with a goroutine per connection, which shares no code with wsbench (a
# harness can flatter the server it was tuned with). Each round runs wsgate,
# the gorilla baseline and the floor server (crosscheck floor-server: the
# same handshake, then one frame written to every connection per broadcast),
# in an order rotated every round, each with a fresh server and a fresh NATS
# server in processes of their own, the client measuring each from /proc:
#
#   $OUT/r<k>/<label>.json  connect rate, server CPU per connect, RSS per idle
#                           connection, deliveries (lost, dup, reordered),
#                           broadcast latency, server CPU per million delivered
#   $OUT/summary.txt        a table per round, the ratios by round and their
#                           medians (crosscheck summary)
#
# Environment: ROUNDS (3), CONNS (15000), MESSAGES (20), MSG_RATE (2),
# PAYLOAD (200), DIALERS (256), OUT (bench/results/crosscheck/latest),
# QUIET_LOAD (1.5) and QUIET_MAX (120): before each run wait up to QUIET_MAX
# seconds for the 1-minute load average to fall below QUIET_LOAD (the host is
# shared; the load our own previous run leaves takes a while to decay). The
# load before each run, and how long it waited, is in $OUT/load.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-15000}
MESSAGES=${MESSAGES:-20}
MSG_RATE=${MSG_RATE:-2}
PAYLOAD=${PAYLOAD:-200}
DIALERS=${DIALERS:-256}
QUIET_LOAD=${QUIET_LOAD:-1.5}
QUIET_MAX=${QUIET_MAX:-120}
OUT=${OUT:-bench/results/crosscheck/latest}
source bench/lib.sh
mkdir -p "$OUT"
rm -rf "$OUT"/r[0-9]* # the rounds of an earlier run would join the summary

go build -o "$BIN/wsgate" ./cmd/wsgate
go build -o "$BIN/baseline" ./bench/baseline
go build -o "$BIN/natsd" ./bench/natsd
go build -o "$BIN/crosscheck" ./bench/crosscheck
note_build

check_ports 14222 18080 19090


# start_server LABEL: start a server, exactly as compare.sh starts wsgate and
# the baseline; sets srv.
start_server() {
  case $1 in
    wsgate) "$BIN/wsgate" --auth=none --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 \
      --nats-url nats://127.0.0.1:14222 --durable=false --log-level warn & ;;
    baseline) "$BIN/baseline" --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 \
      --nats-url nats://127.0.0.1:14222 & ;;
    floor) "$BIN/crosscheck" floor-server --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 \
      --nats nats://127.0.0.1:14222 & ;;
  esac
  srv=$!; pids+=("$srv")
}

# run ROUND LABEL: start NATS and the server, run the client, stop both. A
# failed run is reported and leaves its server out of the round.
run() {
  local dir=$OUT/r$1 label=$2 nats
  mkdir -p "$dir"
  quiet "r$1/$label"
  "$BIN/natsd" -listen 127.0.0.1:14222 >/dev/null & nats=$!; pids+=("$nats")
  sleep 0.5
  start_server "$label"
  wait_http "http://127.0.0.1:19090/healthz"
  sleep 1 # the server's start settles before its RSS is first read
  "$BIN/crosscheck" run --label "$label" --url ws://127.0.0.1:18080/ws --nats nats://127.0.0.1:14222 \
    --conns "$CONNS" --dialers "$DIALERS" --messages "$MESSAGES" --msg-rate "$MSG_RATE" --payload-size "$PAYLOAD" \
    --server-pid "$srv" --json "$dir/$label.json" | tee "$dir/$label.txt" ||
    echo "r$1/$label: crosscheck run failed" >&2
  stop "$srv" "$nats"
}

order=(wsgate baseline floor)
for r in $(seq "$ROUNDS"); do
  for i in 0 1 2; do
    run "$r" "${order[(i + r - 1) % 3]}"
  done
done

echo
"$BIN/crosscheck" summary "$OUT" | tee "$OUT/summary.txt"
