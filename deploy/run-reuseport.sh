#!/usr/bin/env bash
# deploy/run-reuseport.sh N [wsgate flags...]
#
# Starts N wsgate processes that share one WebSocket port with SO_REUSEPORT
# (--reuseport), each with an admin listener of its own on ADMIN_BASE,
# ADMIN_BASE+1, ... (default 9091...). SIGTERM or SIGINT to this script is
# passed on to every process, once, and the script waits until all have
# drained and exited. It exits 0 when every process did.
#
#	WSGATE_NATS_URL=nats://nats:4222 WSGATE_JWT_SECRET=... \
#	  deploy/run-reuseport.sh 4 --listen :8080
#
# Environment: WSGATE (the binary, default wsgate on PATH), ADMIN_BASE
# (9091), ADMIN_HOST (empty: all interfaces, so that a load balancer on
# another host can check each process; the gateway's own default is
# loopback), and any WSGATE_* variable,
# which every process reads. An external NATS (--nats-url or
# WSGATE_NATS_URL) is required: the embedded one is per process.
#
# Under systemd prefer deploy/systemd/wsgate@.service. If you run this
# script as a service anyway, set KillMode=mixed: with the default
# (control-group) systemd signals every process itself as well, and the
# second SIGTERM a gateway receives cuts its drain short.
set -u

usage() { echo "usage: $0 N [wsgate flags...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
n=$1
shift
case $n in '' | *[!0-9]* | 0) usage ;; esac

WSGATE=${WSGATE:-wsgate}
ADMIN_BASE=${ADMIN_BASE:-9091}
ADMIN_HOST=${ADMIN_HOST:-}

nats=${WSGATE_NATS_URL:-}
for arg in "$@"; do
	case $arg in
	--nats-url=* | -nats-url=*) nats=${arg#*=} ;;
	--nats-url | -nats-url) nats=set ;;
	--admin* | -admin* | --reuseport* | -reuseport*)
		echo "$0: $arg: the script sets --reuseport and each process's --admin (ADMIN_BASE, ADMIN_HOST)" >&2
		exit 2
		;;
	esac
done
if [ -z "$nats" ]; then
	echo "$0: set --nats-url or WSGATE_NATS_URL: processes sharing a port need an external NATS" >&2
	exit 2
fi

pids=()
forwarded=
forward() {
	[ -n "$forwarded" ] && return # a second signal here must not cut the drains short
	forwarded=$1
	echo "$0: $1: draining ${#pids[@]} gateways" >&2
	kill -s "$1" "${pids[@]}" 2>/dev/null
}
trap 'forward TERM' TERM
trap 'forward INT' INT

for ((i = 0; i < n; i++)); do
	port=$((ADMIN_BASE + i))
	"$WSGATE" --reuseport --admin "$ADMIN_HOST:$port" "$@" &
	pids+=($!)
	echo "$0: started pid $! with admin $ADMIN_HOST:$port" >&2
done

status=0
for pid in "${pids[@]}"; do
	while :; do
		wait "$pid"
		rc=$?
		# A trapped signal ends wait early (status above 128) while the
		# process still drains: wait again.
		if [ "$rc" -gt 128 ] && kill -0 "$pid" 2>/dev/null; then
			continue
		fi
		if [ "$rc" -gt 128 ]; then
			# It may have exited right after the interruption: its own
			# status is still there to collect (127 once it was collected).
			wait "$pid" 2>/dev/null
			r=$?
			[ "$r" -ne 127 ] && rc=$r
		fi
		break
	done
	echo "$0: pid $pid exited with status $rc" >&2
	if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
		status=$rc
	fi
done
exit "$status"
