package fdlimit

import "math"

// Reserved is how many descriptors Capacity keeps for everything but client
// sockets (listeners, the admin server and its clients, NATS, the epoll and
// eventfd, logs).
//
// An idle wsgate with an embedded NATS server and the admin listener holds
// about 20: stdin, stdout and stderr; the epoll instance and eventfd of the
// Go runtime's poller and of netpoll's; the cgroup files the runtime keeps
// open to follow its CPU quota; the WebSocket listener and the duplicate
// the accept loop waits on; the admin listener; the embedded NATS listener
// and both ends of the bus's connection to it. The other 44 are headroom
// for what comes and goes: admin clients (scrapes, probes, pprof), the
// /proc files the process collector opens on each scrape, publishers
// connected to the embedded NATS server, and the sockets of a NATS
// reconnect and its DNS lookup. That is a small price for a budget that
// holds: 0.1% of a 65536 limit, 6% of a 1024 one.
const Reserved = 64

// Raise raises the soft RLIMIT_NOFILE to the hard limit and returns the soft
// limit now in force, read back after the change.
//
// On macOS the soft limit is capped at kern.maxfilesperproc (OPEN_MAX,
// 10240, when that cannot be read or is refused), since setrlimit fails
// above it and the hard limit is often RLIM_INFINITY. On other Unix systems
// Raise only reports the soft limit. Where there is no such limit (Windows)
// it returns math.MaxUint64, which Capacity reads as no limit at all.
//
// Raise is idempotent. An error leaves the limit as it was and still
// returns the current soft limit when it can be read (0 when it cannot).
func Raise() (uint64, error) { return raise() }

// Capacity returns how many client connections fit under an open-file limit,
// after Reserved; 0 when the limit is below Reserved. A limit beyond what an
// int holds (RLIM_INFINITY) gives math.MaxInt.
func Capacity(limit uint64) int {
	if limit <= Reserved {
		return 0
	}
	return int(min(limit-Reserved, math.MaxInt))
}
