//go:build (!linux || netpoll_portable) && unix

package netpoll

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// waitReady waits in the Go runtime poller until the socket behind rc is
// readable (or writable if write), without consuming data, and returns the
// conditions seen. RawConn.Read forgets readiness that arrived before it
// was called and the runtime poller is edge-triggered, so "return false
// once, then true" would wait for the next edge even with data queued: the
// state is probed with poll(2) instead.
func waitReady(rc syscall.RawConn, write bool) Event {
	var revents int16
	probe := func(fd uintptr) bool {
		events := int16(unix.POLLIN)
		if write {
			events = unix.POLLOUT
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
		for {
			n, err := unix.Poll(fds, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				revents = unix.POLLERR
				return true
			}
			revents = fds[0].Revents
			return n > 0
		}
	}
	var err error
	if write {
		err = rc.Write(probe)
	} else {
		err = rc.Read(probe)
	}
	if err != nil {
		if write {
			return readyErr(err, EventWrite)
		}
		return readyErr(err, EventRead)
	}
	var e Event
	if revents&unix.POLLIN != 0 {
		e |= EventRead
	}
	if revents&unix.POLLOUT != 0 {
		e |= EventWrite
	}
	if revents&unix.POLLHUP != 0 {
		e |= EventHup
	}
	if revents&unix.POLLERR != 0 {
		e |= EventErr
	}
	return e
}
