// Package fdlimit sizes the gateway to the process's open-file limit.
//
// Every client connection is a socket, and a socket is a file descriptor:
// a gateway that accepts more clients than RLIMIT_NOFILE allows fails its
// accepts with EMFILE, and then also fails to open anything else it needs
// (an admin client, a NATS reconnect). So at start-up the gateway raises
// the soft limit as far as it may and turns what it got into a connection
// budget, keeping Reserved descriptors for itself:
//
//	soft, err := fdlimit.Raise()
//	if err != nil {
//		log.Warn("cannot raise the open-file limit", zap.Error(err), zap.Uint64("soft", soft))
//	}
//	maxConns := fdlimit.Capacity(soft)
//
// Since Go 1.19 the runtime raises the soft limit on its own before main
// runs (on Linux to one below the hard limit, so that it can tell a later
// prlimit from its own change). Raise takes it the rest of the way, and
// more to the point it reports the limit in force, which nothing in the
// standard library does. A hard limit set low on purpose (prlimit, systemd
// LimitNOFILE=, ulimit -Hn) is respected: only root could raise it.
//
// # Concurrency
//
// The limit is a property of the whole process: call Raise once, at
// start-up, before other goroutines open files. Capacity is pure and safe
// anywhere.
package fdlimit
