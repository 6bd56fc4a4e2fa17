//go:build !linux && !unix

package netpoll

import "syscall"

// waitReady waits until the socket behind rc is readable (or writable if
// write) without consuming data. On Windows RawConn.Read waits with a
// zero-byte read, which completes as soon as data is queued, so returning
// false once and then true is enough. RawConn.Write cannot wait for
// writability there: the socket is reported writable at once.
func waitReady(rc syscall.RawConn, write bool) Event {
	if write {
		if err := rc.Write(func(uintptr) bool { return true }); err != nil {
			return readyErr(err, EventWrite)
		}
		return EventWrite
	}
	first := true
	err := rc.Read(func(uintptr) bool {
		if first {
			first = false
			return false
		}
		return true
	})
	if err != nil {
		return readyErr(err, EventRead)
	}
	return EventRead
}
