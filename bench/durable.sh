#!/usr/bin/env bash
# bench/durable.sh — issue 10's comparisons, run by `make bench-durable`: what
# durable notifications cost, each figure measured side by side in one run of
# this script, every run with a fresh gateway and a fresh NATS process (JetStream
# on, its files in a fresh directory):
#
#   connect-{off,on}          wsbench connect, IDLE_CONNS idle connections against
#                             --durable=false and --durable: RSS and goroutines per
#                             idle connection, connect rate, server CPU per connect
#   unicast-{volatile,durable} wsbench unicast against a --durable gateway, with and
#                             without wsbench --durable: live delivery p99
#   broadcast-{volatile,durable} the same with broadcasts
#   resume-k$MISSED           wsbench resume: RESUME_CONNS connections cut at once,
#                             MISSED durable notifications each meanwhile, then all
#                             resume: recovery, history requests, CPU per resume
#   resume-k0                 the same with nothing missed: the requests of
#                             RESUME_CONNS simultaneous resumes
#   resume-url-k0             resume-k0 with the positions in the upgrade request
#                             (--resume-in-url): no resume op, no answer
#   resume-restart-k$MISSED   resume-k$MISSED cut by a gateway restart (SIGKILL, then
#                             the same command line) instead of from the client
#                             side; the gateway's figures come from /metrics only
#   reconnect-off             the same storm against --durable=false, clients
#                             that do not resume (wsbench resume --no-resume):
#                             the reconnect rate without durable
#
# then the ratios (wsbench compare) in $OUT/compare.txt; the load average
# before each run is in $OUT/load.txt.
#
# ONLY (a space-separated list of the names above, without -r<n>) runs only
# those. Environment: ROUNDS (1), IDLE_CONNS (10000), DELIVERY_CONNS (5000),
# UNICAST_MESSAGES (2000 at 200/s), BROADCASTS (20 at 2/s), RESUME_CONNS (10000),
# MISSED (10), RATE (30000 connects/s asked), DIALERS (256),
# OUT (bench/results/latest). Everything listens on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-1}
IDLE_CONNS=${IDLE_CONNS:-10000}
DELIVERY_CONNS=${DELIVERY_CONNS:-5000}
UNICAST_MESSAGES=${UNICAST_MESSAGES:-2000}
BROADCASTS=${BROADCASTS:-20}
RESUME_CONNS=${RESUME_CONNS:-10000}
MISSED=${MISSED:-10}
RATE=${RATE:-30000}
DIALERS=${DIALERS:-256}
OUT=${OUT:-bench/results/latest}
source bench/lib.sh
mkdir -p "$OUT"

go build -o "$BIN/wsgate" ./cmd/wsgate
go build -o "$BIN/natsd" ./bench/natsd
go build -o "$BIN/wsbench" ./cmd/wsbench

check_ports 14222 18080 19090

# run NAME DURABLE SCENARIO WSBENCH-FLAGS...: start NATS with JetStream and a
# gateway with --durable=DURABLE, let it idle, run the scenario, stop both.
run() {
  local name=$1 durable=$2 scenario=$3; shift 3
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" ${name%-r[0-9]*} "* ]]; then return 0; fi
  rm -rf "$BIN/js"
  "$BIN/natsd" -listen 127.0.0.1:14222 -store-dir "$BIN/js" >/dev/null & local nats=$!; pids+=("$nats")
  sleep 0.5
  "$BIN/wsgate" --auth=none --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 \
    --nats-url nats://127.0.0.1:14222 --durable="$durable" --drain-delay=0 --drain-timeout=0 --log-level warn &
  local srv=$!; pids+=("$srv")
  wait_http "http://127.0.0.1:19090/readyz"
  sleep 3 # idle first, as make idle-rss does: the start's garbage is collected
  # The host is shared: the load before each run says what else ran.
  echo "$name: load $(cut -d' ' -f1-3 /proc/loadavg) before" >> "$OUT/load.txt"
  "$BIN/wsbench" "$scenario" --label "$name" --url ws://127.0.0.1:18080/ws --nats nats://127.0.0.1:14222 \
    --rate "$RATE" --dialers "$DIALERS" --server-pid "$srv" --nats-pid "$nats" \
    --server-metrics http://127.0.0.1:19090/metrics --json "$OUT/$name.json" "$@"
  stop "$srv" "$nats"
}

# run_restart NAME WSBENCH-FLAGS...: resume cut by a gateway restart. The cut
# command kills the gateway with SIGKILL and starts it again with the same
# flags (not as a child of this script: its pid is in $BIN/gw.pid).
run_restart() {
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" ${name%-r[0-9]*} "* ]]; then return 0; fi
  rm -rf "$BIN/js"
  "$BIN/natsd" -listen 127.0.0.1:14222 -store-dir "$BIN/js" >/dev/null & local nats=$!; pids+=("$nats")
  sleep 0.5
  cat > "$BIN/gw.sh" <<EOS
#!/bin/sh
# start the gateway, or with "restart" kill it first; return once it is ready
if [ "\$1" = restart ]; then
  old=\$(cat $BIN/gw.pid); kill -9 "\$old"
  # its 10,000 sockets close before its port is free again
  while kill -0 "\$old" 2>/dev/null; do sleep 0.05; done; sleep 0.1
fi
"$BIN/wsgate" --auth=none --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 --nats-url nats://127.0.0.1:14222 \\
  --drain-delay=0 --drain-timeout=0 --log-level warn </dev/null >>$BIN/gw.log 2>&1 &
echo \$! > $BIN/gw.pid
for _ in \$(seq 300); do curl -fsS http://127.0.0.1:19090/readyz >/dev/null 2>&1 && exit 0; sleep 0.1; done
echo "the gateway did not come back in 30 s:" >&2; tail -5 $BIN/gw.log >&2; exit 1
EOS
  chmod +x "$BIN/gw.sh"
  "$BIN/gw.sh"
  sleep 3
  echo "$name: load $(cut -d' ' -f1-3 /proc/loadavg) before" >> "$OUT/load.txt"
  "$BIN/wsbench" resume --label "$name" --url ws://127.0.0.1:18080/ws --nats nats://127.0.0.1:14222 \
    --rate "$RATE" --dialers "$DIALERS" --nats-pid "$nats" --server-metrics http://127.0.0.1:19090/metrics \
    --cut-cmd "$BIN/gw.sh restart" --json "$OUT/$name.json" "$@"
  stop "$(cat "$BIN/gw.pid")" "$nats"
}

for r in $(seq "$ROUNDS"); do
  s=""; [ "$ROUNDS" -gt 1 ] && s="-r$r"
  run "connect-off$s" false connect --conns "$IDLE_CONNS" --user-prefix idle
  run "connect-on$s" true connect --conns "$IDLE_CONNS" --user-prefix idle
  run "unicast-volatile$s" true unicast --conns "$DELIVERY_CONNS" --messages "$UNICAST_MESSAGES" --msg-rate 200
  run "unicast-durable$s" true unicast --conns "$DELIVERY_CONNS" --messages "$UNICAST_MESSAGES" --msg-rate 200 --durable
  run "broadcast-volatile$s" true broadcast --conns "$DELIVERY_CONNS" --messages "$BROADCASTS" --msg-rate 2
  run "broadcast-durable$s" true broadcast --conns "$DELIVERY_CONNS" --messages "$BROADCASTS" --msg-rate 2 --durable
  run "resume-k$MISSED$s" true resume --conns "$RESUME_CONNS" --missed "$MISSED" --timeout 4m
  run "resume-k0$s" true resume --conns "$RESUME_CONNS" --missed 0
  run "resume-url-k0$s" true resume --conns "$RESUME_CONNS" --missed 0 --resume-in-url
  run_restart "resume-restart-k$MISSED$s" --conns "$RESUME_CONNS" --missed "$MISSED" --timeout 4m
  run "reconnect-off$s" false resume --conns "$RESUME_CONNS" --missed 0 --no-resume
done

{
  # run_restart NAME WSBENCH-FLAGS...: resume cut by a gateway restart. The cut
# command kills the gateway with SIGKILL and starts it again with the same
# flags (not as a child of this script: its pid is in $BIN/gw.pid).
run_restart() {
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" ${name%-r[0-9]*} "* ]]; then return 0; fi
  rm -rf "$BIN/js"
  "$BIN/natsd" -listen 127.0.0.1:14222 -store-dir "$BIN/js" >/dev/null & local nats=$!; pids+=("$nats")
  sleep 0.5
  cat > "$BIN/gw.sh" <<EOS
#!/bin/sh
# start the gateway, or with "restart" kill it first; return once it is ready
if [ "\$1" = restart ]; then
  old=\$(cat $BIN/gw.pid); kill -9 "\$old"
  # its 10,000 sockets close before its port is free again
  while kill -0 "\$old" 2>/dev/null; do sleep 0.05; done; sleep 0.1
fi
"$BIN/wsgate" --auth=none --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 --nats-url nats://127.0.0.1:14222 \\
  --drain-delay=0 --drain-timeout=0 --log-level warn </dev/null >>$BIN/gw.log 2>&1 &
echo \$! > $BIN/gw.pid
for _ in \$(seq 300); do curl -fsS http://127.0.0.1:19090/readyz >/dev/null 2>&1 && exit 0; sleep 0.1; done
echo "the gateway did not come back in 30 s:" >&2; tail -5 $BIN/gw.log >&2; exit 1
EOS
  chmod +x "$BIN/gw.sh"
  "$BIN/gw.sh"
  sleep 3
  echo "$name: load $(cut -d' ' -f1-3 /proc/loadavg) before" >> "$OUT/load.txt"
  "$BIN/wsbench" resume --label "$name" --url ws://127.0.0.1:18080/ws --nats nats://127.0.0.1:14222 \
    --rate "$RATE" --dialers "$DIALERS" --nats-pid "$nats" --server-metrics http://127.0.0.1:19090/metrics \
    --cut-cmd "$BIN/gw.sh restart" --json "$OUT/$name.json" "$@"
  stop "$(cat "$BIN/gw.pid")" "$nats"
}

for r in $(seq "$ROUNDS"); do
    s=""; [ "$ROUNDS" -gt 1 ] && s="-r$r"
    for pair in "connect-off connect-on" "unicast-volatile unicast-durable" "broadcast-volatile broadcast-durable" "reconnect-off resume-k0" "reconnect-off resume-url-k0" "resume-k0 resume-k$MISSED" "resume-k$MISSED resume-restart-k$MISSED"; do
      set -- $pair
      [ -f "$OUT/$1$s.json" ] && [ -f "$OUT/$2$s.json" ] || continue
      echo "== $1$s vs $2$s"
      "$BIN/wsbench" compare "$OUT/$1$s.json" "$OUT/$2$s.json"
      echo
    done
  done
} | tee "$OUT/compare${ONLY:+-$(echo $ONLY | tr ' ' '+')}.txt"
