// Package netpoll tells when raw sockets become readable or writable, so
// that a server can hold hundreds of thousands of idle connections without
// a goroutine, and its stack, per connection.
//
// On Linux a Poller is one epoll instance driven by a single goroutine.
// The epoll fd is itself registered in the Go runtime's network poller:
// the goroutine collects ready events with epoll_wait and a zero timeout
// and parks in the runtime while nothing is ready, so no thread ever sits
// in a blocking epoll_wait. (A thread blocked in a system call makes the
// runtime's monitor thread take its P away at every wait and poll every
// 20 µs afterwards; with dozens of gateway processes on a host that costs
// more CPU than the sockets.) Each socket's own file descriptor is
// registered, taken with syscall.RawConn.Control: never a dup from File()
// or Fd(), which would switch the socket to blocking mode and break its
// deadlines. Registrations are one-shot: after a callback the caller
// re-arms read interest with Resume once it has read what it wanted. On
// other systems a portable implementation with one goroutine per armed
// interest provides the same API for development; on Linux the build tag
// netpoll_portable selects it, so that its tests can run there too.
//
// Usage:
//
//	p, err := netpoll.New(netpoll.Config{OnError: onError})
//	if err != nil {
//		return err
//	}
//	defer p.Close()
//
//	rc, err := tcpConn.SyscallConn()
//	if err != nil {
//		return err
//	}
//	// cb may run before Observe returns: publish the Desc under a lock.
//	c := &conn{tcp: tcpConn}
//	c.mu.Lock()
//	c.desc, err = p.Observe(rc, func(ev netpoll.Event) {
//		if ev&netpoll.EventClosed == 0 {
//			pool.Schedule(c.readTask)
//		}
//	})
//	c.mu.Unlock()
//
//	// readTask, on a pool goroutine, after reading what is there:
//	p.Resume(c.desc) // wait for the next frame, or
//	p.CloseSocket(c.desc, c.tcp) // stop observing and close the socket
//
// Concurrency contract:
//
//   - All Poller methods are safe for concurrent use, from any goroutine,
//     for different Descs or the same one.
//   - A callback runs on the poller goroutine while holding its Desc's
//     mutex, so it never runs twice at once for a Desc and never after
//     Stop, CloseSocket or Close has returned. It must be quick (schedule the
//     work on a pool), must not call Poller methods for its own Desc (that
//     deadlocks; do it from the scheduled task), may call them for other
//     Descs, and must not call Close.
//   - A callback gets one event per armed interest: read interest is armed
//     by Observe and Resume, write interest by WantWrite. EventClosed comes
//     at most once, from Close, to Descs still observed.
//   - An observed socket must be closed with CloseSocket, never directly or
//     right after Stop: an event already fetched for its fd could otherwise
//     reach a new socket that reuses the fd number.
package netpoll
