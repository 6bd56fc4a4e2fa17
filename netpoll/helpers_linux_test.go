//go:build linux

package netpoll

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newPoller returns a Poller closed at the end of the test. Errors reported
// through OnError fail the test.
func newPoller(t testing.TB) *Poller {
	t.Helper()
	p, err := New(Config{OnError: func(err error) {
		// Test cleanups close conns that a pending CloseSocket closes again.
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("OnError: %v", err)
		}
	}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

func listen(t testing.TB) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func dial(t testing.TB, ln net.Listener) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func accept(t testing.TB, ln *net.TCPListener) *net.TCPConn {
	t.Helper()
	c, err := ln.AcceptTCP()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pair returns the server and client ends of a new TCP connection.
func pair(t testing.TB, ln *net.TCPListener) (srv, cli *net.TCPConn) {
	t.Helper()
	cli = dial(t, ln)
	srv = accept(t, ln)
	return srv, cli
}

func rawConn(t testing.TB, c *net.TCPConn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatalf("SyscallConn: %v", err)
	}
	return rc
}

func sysFd(t testing.TB, rc syscall.RawConn) int {
	t.Helper()
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		t.Fatalf("Control: %v", err)
	}
	return fd
}

// nbReader reads once without blocking, without allocating.
type nbReader struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func newNBReader(size int) *nbReader {
	r := &nbReader{buf: make([]byte, size)}
	r.fn = r.read
	return r
}

func (r *nbReader) read(fd uintptr) bool {
	r.n, r.err = unix.Read(int(fd), r.buf)
	return true
}

func (r *nbReader) from(rc syscall.RawConn) (int, error) {
	if err := rc.Read(r.fn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// readNB reads once without blocking, straight from the socket.
func readNB(rc syscall.RawConn, buf []byte) (n int, err error) {
	cerr := rc.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), buf)
		return true
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}

func nonblocking(t testing.TB, rc syscall.RawConn) bool {
	t.Helper()
	var flags int
	var err error
	if cerr := rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }); cerr != nil {
		t.Fatalf("Control: %v", cerr)
	}
	if err != nil {
		t.Fatalf("F_GETFL: %v", err)
	}
	return flags&unix.O_NONBLOCK != 0
}

// events returns a callback that sends every event on the returned channel.
// A full channel is reported on errc rather than blocking the poller.
func events(errc chan<- error) (func(Event), <-chan Event) {
	ch := make(chan Event, 64)
	return func(e Event) {
		select {
		case ch <- e:
		default:
			select {
			case errc <- fmt.Errorf("event channel full, dropped %v", e):
			default:
			}
		}
	}, ch
}

const waitLimit = 5 * time.Second

func waitEvent(t testing.TB, ch <-chan Event) Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(waitLimit):
		t.Fatalf("no event within %v", waitLimit)
		return 0
	}
}

// noEvent fails if an event is already queued on ch.
func noEvent(t testing.TB, ch <-chan Event) {
	t.Helper()
	select {
	case e := <-ch:
		t.Fatalf("unexpected event %v", e)
	default:
	}
}

func drainErrs(t testing.TB, errc <-chan error) {
	t.Helper()
	for {
		select {
		case err := <-errc:
			t.Error(err)
		default:
			return
		}
	}
}

// fillSendBuffer writes to c without blocking until the kernel says EAGAIN
// and returns the number of bytes written.
func fillSendBuffer(t testing.TB, rc syscall.RawConn) int {
	t.Helper()
	buf := make([]byte, 64<<10)
	total := 0
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		for {
			n, err := unix.Write(int(fd), buf)
			if n > 0 {
				total += n
			}
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					werr = err
				}
				return true
			}
		}
	}); err != nil {
		t.Fatalf("RawConn.Write: %v", err)
	}
	if werr != nil {
		t.Fatalf("write: %v", werr)
	}
	return total
}

// observed is one loopback connection whose server side is observed by a
// fresh Poller, with its events on ch and callback errors on errc.
type observed struct {
	p        *Poller
	d        *Desc
	srv, cli *net.TCPConn
	rc       syscall.RawConn
	cb       func(Event)
	ch       <-chan Event
	errc     chan error
}

func observe(t *testing.T) *observed {
	t.Helper()
	o := &observed{p: newPoller(t), errc: make(chan error, 1)}
	o.srv, o.cli = pair(t, listen(t))
	o.rc = rawConn(t, o.srv)
	o.cb, o.ch = events(o.errc)
	d, err := o.p.Observe(o.rc, o.cb)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	o.d = d
	return o
}
