#!/usr/bin/env bash
# bench/scale.sh — many connections on one host: GATEWAYS gateway processes
# share one port with --reuseport (each process is limited to 20,000 open
# files here), one NATS server in its own process, and wsbench spreads its
# clients over worker processes and loopback source addresses. While it
# runs, bench/procmon.sh samples the CPU and RSS of each group of processes,
# the kernel's TCP sockets and memory, and the load (OUT/procmon.csv).
#
#   CONNS=100000 bash bench/scale.sh
#   CONNS=1000000 HOLD=5m SAMPLE=10000 bash bench/scale.sh   # the million
#
# Environment:
#   CONNS (100000); GATEWAYS (ceil(CONNS/18500)); WORKERS (ceil(CONNS/18500))
#   SCENARIO (scale: hold, unicast to SAMPLE distinct users, MESSAGES
#     broadcasts; or any wsbench scenario); HOLD (1m); SAMPLE (10000);
#     MESSAGES (1); MSG_RATE (unicasts and broadcasts per second; 2000)
#   RATE (connects per second over all workers; 3000); DIALERS (per worker; 8)
#   PROCS (GOMAXPROCS of every gateway and worker process; 1)
#   PING (the gateways' --ping-interval; 25s) and IDLE (--idle-timeout; 60s)
#   PERF (seconds of a host-wide `perf record`, 0 = off) started PERF_DELAY
#     seconds (0) after wsbench
#   BACKLOG (net.core.netdev_max_backlog during the run; 65536) and PORTS
#     (net.ipv4.ip_local_port_range during the run; "1024 65535")
#   OUT (bench/results/latest); SOURCES (127.0.0.1-127.0.0.50)
#   PREBUILT: a directory with wsgate, natsd and wsbench binaries to run
#     instead of building the working tree (to compare two builds)
#   WSBENCH_FLAGS, WSGATE_FLAGS: more flags for wsbench and the gateways.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-100000}
GATEWAYS=${GATEWAYS:-$(( (CONNS + 18499) / 18500 ))}
WORKERS=${WORKERS:-$(( (CONNS + 18499) / 18500 ))}
SCENARIO=${SCENARIO:-scale}
HOLD=${HOLD:-1m}
SAMPLE=${SAMPLE:-10000}
MESSAGES=${MESSAGES:-1}
MSG_RATE=${MSG_RATE:-2000}
RATE=${RATE:-3000}
DIALERS=${DIALERS:-8}
PROCS=${PROCS:-1}
PING=${PING:-25s}
IDLE=${IDLE:-60s}
PERF=${PERF:-0}
SOURCES=${SOURCES:-127.0.0.1-127.0.0.50}
OUT=${OUT:-bench/results/latest}
BIN=$(mktemp -d)
mkdir -p "$OUT"

if [[ -n ${PREBUILT:-} ]]; then
  cp "$PREBUILT/wsgate" "$PREBUILT/natsd" "$PREBUILT/wsbench" "$BIN/"
else
  go build -o "$BIN/wsgate" ./cmd/wsgate
  go build -o "$BIN/natsd" ./bench/natsd
  go build -o "$BIN/wsbench" ./cmd/wsbench
fi

# Both ends of every connection are on this host, so every packet goes
# through the loopback's per-CPU backlog, which drops beyond
# net.core.netdev_max_backlog (1000 by default) when softirq falls behind
# a saturated host: drops, then retransmissions, then connections aborted
# on timeout. The run raises it (BACKLOG) when it may and puts it back.
BACKLOG=${BACKLOG:-65536}
backlog0=$(cat /proc/sys/net/core/netdev_max_backlog)
if ! sysctl -qw net.core.netdev_max_backlog="$BACKLOG" 2>/dev/null; then
  echo "scale.sh: cannot raise net.core.netdev_max_backlog ($backlog0); loopback drops may abort connections" >&2
fi
# The clients bind to a source address with port 0, and the kernel's
# search for a free port grows with the share of the range in use: with
# the default 32768-60999 (28,231 ports per address) it was 37 % of the
# host at 680,000 connections over 50 addresses. PORTS widens the range
# for the run.
PORTS=${PORTS:-1024 65535}
ports0=$(tr '\t' ' ' </proc/sys/net/ipv4/ip_local_port_range)
if ! sysctl -qw net.ipv4.ip_local_port_range="$PORTS" 2>/dev/null; then
  echo "scale.sh: cannot widen net.ipv4.ip_local_port_range ($ports0)" >&2
fi

pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  sysctl -qw net.core.netdev_max_backlog="$backlog0" 2>/dev/null || true
  sysctl -qw net.ipv4.ip_local_port_range="$ports0" 2>/dev/null || true
  rm -rf "$BIN"
}
trap cleanup EXIT

"$BIN/natsd" -listen 127.0.0.1:14222 -store-dir "$BIN/js" -prof-port 16060 >/dev/null & pids+=($!)
echo "$!" >"$BIN/natsd.pids"
sleep 0.5
server_args=()
: >"$BIN/gateways.pids"
for i in $(seq 0 $((GATEWAYS - 1))); do
  # shellcheck disable=SC2086 # WSGATE_FLAGS is a list of flags
  GOMAXPROCS=$PROCS "$BIN/wsgate" --auth=none --reuseport --listen 127.0.0.1:18080 --admin 127.0.0.1:$((19090 + i)) \
    --nats-url nats://127.0.0.1:14222 --durable=false --log-level warn --pprof \
    --ping-interval "$PING" --idle-timeout "$IDLE" ${WSGATE_FLAGS:-} & pids+=($!)
  echo "$!" >>"$BIN/gateways.pids"
  server_args+=(--server-pid "$!" --server-metrics "http://127.0.0.1:$((19090 + i))/metrics")
done
for i in $(seq 0 $((GATEWAYS - 1))); do
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$((19090 + i))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done

# wsbench and its workers: the coordinator's pid, then its children's as
# they start.
: >"$BIN/wsbench.pids"
bash bench/procmon.sh "$OUT/procmon.csv" 5 gateways="$BIN/gateways.pids" nats="$BIN/natsd.pids" \
  wsbench="$BIN/wsbench.pids" & pids+=($!)

label="$SCENARIO-$CONNS"
scenario_args=(--messages "$MESSAGES" --msg-rate "$MSG_RATE" --hold "$HOLD")
[[ $SCENARIO == scale ]] && scenario_args+=(--sample "$SAMPLE")
# shellcheck disable=SC2086 # WSBENCH_FLAGS is a list of flags
GOMAXPROCS=$PROCS "$BIN/wsbench" "$SCENARIO" --label "$label" --url ws://127.0.0.1:18080/ws \
  --nats nats://127.0.0.1:14222 --nats-pid "$(cat "$BIN/natsd.pids")" \
  --conns "$CONNS" --workers "$WORKERS" --rate "$RATE" --dialers "$DIALERS" "${scenario_args[@]}" \
  --source-addrs "$SOURCES" "${server_args[@]}" --timeout 10m \
  --json "$OUT/$label.json" --html "$OUT/$label.html" ${WSBENCH_FLAGS:-} & bench=$!
pids+=("$bench")
echo "$bench" >"$BIN/wsbench.pids"
(
  for _ in $(seq 120); do
    sleep 1
    { echo "$bench"; pgrep -P "$bench" || true; } >"$BIN/wsbench.pids.new"
    mv "$BIN/wsbench.pids.new" "$BIN/wsbench.pids"
  done
) &
if [[ $PERF != 0 ]]; then
  (sleep "${PERF_DELAY:-0}" && perf record -e cpu-clock -a -g -o "$OUT/ramp.perf.data" -- sleep "$PERF" >/dev/null 2>&1) &
fi
wait "$bench"
