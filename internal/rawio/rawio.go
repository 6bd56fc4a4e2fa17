// Package rawio makes single non-blocking read(2) and write(2) calls on a
// socket through its syscall.RawConn, for callers that drive readiness
// themselves (an epoll of their own) and must never be parked by the Go
// runtime: the gateway and the wsbench client.
//
// Going through RawConn borrows the socket's use count, so the fd cannot be
// closed and reused while a call is on it. The callbacks are bound once to
// pooled objects, so a call allocates nothing. Safe for concurrent use.
package rawio

import (
	"errors"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrEOF is returned by Read at the end of the stream.
var ErrEOF = errors.New("rawio: end of stream")

// Read makes one non-blocking read(2) into p. It returns n > 0 with data,
// (0, nil) when the kernel has nothing (EAGAIN), (0, ErrEOF) at the end of
// the stream, or another error.
func Read(rc syscall.RawConn, p []byte) (int, error) {
	o := ops.Get().(*op)
	o.p = p
	err := rc.Read(o.readFn)
	n := o.n
	if err == nil {
		err = o.err
	}
	o.p, o.n, o.err = nil, 0, nil
	ops.Put(o)
	return n, err
}

// Write makes one non-blocking write(2) of p. It returns the bytes
// written, which may be fewer than len(p) (0 when the socket buffer is
// full), or an error other than EAGAIN.
func Write(rc syscall.RawConn, p []byte) (int, error) {
	o := ops.Get().(*op)
	o.p = p
	err := rc.Write(o.writeFn)
	n := o.n
	if err == nil {
		err = o.err
	}
	o.p, o.n, o.err = nil, 0, nil
	ops.Put(o)
	return n, err
}

// op carries one call through RawConn; its callbacks always return true,
// so the runtime never waits for readiness.
type op struct {
	p       []byte
	n       int
	err     error
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

var ops = sync.Pool{New: func() any {
	o := &op{}
	o.readFn = o.read
	o.writeFn = o.write
	return o
}}

func (o *op) read(fd uintptr) bool {
	for {
		n, err := unix.Read(int(fd), o.p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			o.n, o.err = 0, nil
		case err != nil:
			o.n, o.err = 0, err
		case n == 0 && len(o.p) > 0:
			o.n, o.err = 0, ErrEOF
		default:
			o.n, o.err = n, nil
		}
		return true
	}
}

func (o *op) write(fd uintptr) bool {
	for {
		n, err := unix.Write(int(fd), o.p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			o.n, o.err = 0, nil
		case err != nil:
			o.n, o.err = 0, err
		default:
			o.n, o.err = n, nil
		}
		return true
	}
}
