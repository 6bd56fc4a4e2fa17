#!/usr/bin/env bash
# bench/control.sh — the control plane's figures, run by `make bench-control`,
# each part with fresh processes: a NATS server with JetStream (bench/natsd, its
# files in a fresh directory) and wsgate gateways with --nats-url, --auth=none,
# --gateway-id gw<i>, all on loopback beside wsbench.
#
#   control-r<n>          wsbench control: CONTROL_CONNS connections over 3
#                         gateways, QUERIES presence queries and DISCONNECTS
#                         disconnects (reason reconnect), one at a time
#   connect-rev{0,N}-r<n> wsbench connect, DENY_CONNS connections against one
#                         gateway after storing 0 or N=REVOCATIONS revocations
#                         (--revocations), alternately in each round: the
#                         revocation check's cost at upgrade
#   upstream-<rate>-r<n>  wsbench upstream through one gateway at each rate of
#                         UP_RATES requests/s, over rate/5 connections (5 per
#                         connection per second, under the gateway's 10/s)
#   check-wsbench-<rate>-r<n>, the second client: wsbench upstream --no-responder
#   check-node-<rate>-r<n>  and bench/upstream_check.mjs (Node, ws), one after
#                         the other against the same gateway and the same
#                         responder (wsgate upstream --echo), CHECK_RATE
#                         requests/s
#
# then the medians and ratios in $OUT/summary.txt. ONLY (a space-separated list
# of control, deny, upstream, check) runs only those parts. Environment: ROUNDS
# (3), CONTROL_CONNS (10000), QUERIES (2000), DISCONNECTS (500), DENY_CONNS
# (10000), REVOCATIONS (10000), RATE (20000 connects/s asked), UP_RATES
# ("2000 5000 10000 15000 20000"), UP_HOLD (10s), CHECK_RATE (5000), DIALERS (256 per
# worker: with wsbench's default 64 the ramp is bound by the dialers), OUT
# (bench/results/control/latest), QUIET_LOAD (1.5) and QUIET_MAX (120): before
# each run wait up to QUIET_MAX seconds for the 1-minute load average to fall
# below QUIET_LOAD (the host is shared; the load our own previous run leaves
# takes a minute to decay). The load average before each run, and how long it
# waited, is in $OUT/load.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
CONTROL_CONNS=${CONTROL_CONNS:-10000}
QUERIES=${QUERIES:-2000}
DISCONNECTS=${DISCONNECTS:-500}
DENY_CONNS=${DENY_CONNS:-10000}
REVOCATIONS=${REVOCATIONS:-10000}
RATE=${RATE:-20000}
UP_RATES=${UP_RATES:-"2000 5000 10000 15000 20000"}
UP_HOLD=${UP_HOLD:-10s}
CHECK_RATE=${CHECK_RATE:-5000}
QUIET_LOAD=${QUIET_LOAD:-1.5}
QUIET_MAX=${QUIET_MAX:-120}
DIALERS=${DIALERS:-256}
OUT=${OUT:-bench/results/control/latest}
source bench/lib.sh
mkdir -p "$OUT"
part() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

go build -o "$BIN/wsgate" ./cmd/wsgate
go build -o "$BIN/natsd" ./bench/natsd
go build -o "$BIN/wsbench" ./cmd/wsbench
note_build

check_ports 14222 18081 18082 18083 19091 19092 19093

# start_fleet N: a fresh NATS process and N gateways; sets nats, gws (pids),
# urls (--url flags) and spids (--server-pid flags).
start_fleet() {
  local n=$1 i
  rm -rf "$BIN/js"
  "$BIN/natsd" -listen 127.0.0.1:14222 -store-dir "$BIN/js" >/dev/null & nats=$!; pids+=("$nats")
  sleep 0.5
  gws=(); urls=(); spids=()
  for i in $(seq "$n"); do
    "$BIN/wsgate" --auth=none --gateway-id "gw$i" --listen "127.0.0.1:1808$i" --admin "127.0.0.1:1909$i" \
      --nats-url nats://127.0.0.1:14222 --drain-delay=0 --drain-timeout=0 --log-level warn &
    gws+=($!); pids+=($!)
    urls+=(--url "ws://127.0.0.1:1808$i/ws"); spids+=(--server-pid "$!")
  done
  for i in $(seq "$n"); do wait_http "http://127.0.0.1:1909$i/readyz"; done
  sleep 3 # idle first: the start's garbage is collected
}

stop_fleet() { stop "${gws[@]}" "$nats"; }


# bench NAME SCENARIO FLAGS...: one wsbench run into $OUT/NAME.json.
bench() {
  local name=$1 scenario=$2; shift 2
  quiet "$name"
  "$BIN/wsbench" "$scenario" --label "$name" --nats nats://127.0.0.1:14222 --nats-pid "$nats" \
    --dialers "$DIALERS" "${urls[@]}" "${spids[@]}" --json "$OUT/$name.json" "$@" | tee "$OUT/$name.txt"
}

if part control; then
  for r in $(seq "$ROUNDS"); do
    start_fleet 3
    bench "control-r$r" control --conns "$CONTROL_CONNS" --rate "$RATE" --queries "$QUERIES" --disconnects "$DISCONNECTS" --seed "$r"
    stop_fleet
  done
fi

if part deny; then
  for r in $(seq "$ROUNDS"); do
    # Alternate which goes first, so that neither always runs on a warmer host.
    order="0 $REVOCATIONS"; [ $((r % 2)) -eq 0 ] && order="$REVOCATIONS 0"
    for n in $order; do
      start_fleet 1
      bench "connect-rev$n-r$r" connect --conns "$DENY_CONNS" --rate "$RATE" --revocations "$n" --user-prefix idle
      stop_fleet
    done
  done
fi

if part upstream; then
  for r in $(seq "$ROUNDS"); do
    for rate in $UP_RATES; do
      start_fleet 1
      bench "upstream-$rate-r$r" upstream --conns $((rate / 5)) --rate "$RATE" --msg-rate "$rate" --hold "$UP_HOLD"
      stop_fleet
    done
  done
fi

if part check; then
  for r in $(seq "$ROUNDS"); do
    start_fleet 1
    "$BIN/wsgate" upstream --nats-url nats://127.0.0.1:14222 --channel rpc.bench --echo >/dev/null 2>"$BIN/echo.log" &
    echo_pid=$!; pids+=("$echo_pid")
    sleep 0.5
    bench "check-wsbench-$CHECK_RATE-r$r" upstream --conns $((CHECK_RATE / 5)) --rate "$RATE" --msg-rate "$CHECK_RATE" \
      --hold "$UP_HOLD" --no-responder
    quiet "check-node-$CHECK_RATE-r$r"
    node bench/upstream_check.mjs --url ws://127.0.0.1:18081/ws --conns $((CHECK_RATE / 5)) --rate "$CHECK_RATE" \
      --duration "${UP_HOLD%s}" | tee "$OUT/check-node-$CHECK_RATE-r$r.json"
    stop "$echo_pid"
    stop_fleet
  done
fi

python3 bench/control_summary.py "$OUT" | tee "$OUT/summary.txt"
