# bench/lib.sh — what the benchmark scripts share; source it after cd-ing
# to the repository root. It makes $BIN (a temporary directory, removed on
# exit) and kills every process recorded in pids on exit.

BIN=$(mktemp -d)
pids=()
cleanup() { local p; for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$BIN"; }
trap cleanup EXIT

# check_ports PORT...: fail when something already listens on a port.
check_ports() {
  for port in "$@"; do
    if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "port $port is in use: stop what listens there first" >&2; exit 1
    fi
  done
}

# wait_http URL: wait up to 10 s for URL to answer 2xx.
wait_http() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# stop PID...: end the processes and wait for them.
stop() { local p; for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }

# quiet NAME: wait up to QUIET_MAX seconds (120) for the 1-minute load
# average to fall below QUIET_LOAD (1.5), and log the load before run NAME
# in $OUT/load.txt. The host is shared, and the load a previous run leaves
# takes a while to decay.
quiet() {
  local waited=0 max=${QUIET_MAX:-120} load=${QUIET_LOAD:-1.5}
  while [ "$waited" -lt "$max" ] && ! awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v q="$load" 'BEGIN {exit !(l < q)}'; do
    sleep 5; waited=$((waited + 5))
  done
  echo "$1: load $(cut -d' ' -f1-3 /proc/loadavg) before (waited ${waited}s)" >> "$OUT/load.txt"
}

# note_build: record in $OUT/build.txt which commit the binaries were built
# from, and whether code outside bench/ had uncommitted changes.
note_build() {
  echo "built from $(git rev-parse --short HEAD)$(git diff --quiet -- . ':!bench' || echo ' with uncommitted changes outside bench/') at $(date -u +%FT%TZ)" >> "$OUT/build.txt"
}
