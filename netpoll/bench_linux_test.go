//go:build linux

package netpoll

import (
	"net"
	"syscall"
	"testing"
)

// cycler runs read cycles on one connection: the peer writes a byte, the
// poller delivers EventRead, the byte is read without blocking, Resume.
type cycler struct {
	p     *Poller
	d     *Desc
	cli   *net.TCPConn
	rc    syscall.RawConn
	ready chan Event
	r     *nbReader
	one   []byte
}

func newCycler(tb testing.TB) *cycler {
	c := &cycler{p: newPoller(tb), ready: make(chan Event, 1), r: newNBReader(1), one: []byte{1}}
	srv, cli := pair(tb, listen(tb))
	c.cli, c.rc = cli, rawConn(tb, srv)
	var err error
	if c.d, err = c.p.Observe(c.rc, func(e Event) {
		if e != EventClosed {
			c.ready <- e
		}
	}); err != nil {
		tb.Fatal(err)
	}
	return c
}

func (c *cycler) cycle(tb testing.TB) {
	if _, err := c.cli.Write(c.one); err != nil {
		tb.Fatal(err)
	}
	if e := <-c.ready; e != EventRead {
		tb.Fatalf("event %v", e)
	}
	if n, err := c.r.from(c.rc); n != 1 || err != nil {
		tb.Fatalf("read = %d, %v", n, err)
	}
	if err := c.p.Resume(c.d); err != nil {
		tb.Fatal(err)
	}
}

// The read cycle, dispatch on the poller goroutine included, allocates
// nothing.
func TestResumeCycleAllocs(t *testing.T) {
	if portable {
		t.Skip("the portable implementation starts a goroutine per wait")
	}
	c := newCycler(t)
	if n := testing.AllocsPerRun(200, func() { c.cycle(t) }); n != 0 {
		t.Fatalf("%v allocs per read cycle, want 0", n)
	}
}

func BenchmarkResumeCycle(b *testing.B) {
	c := newCycler(b)
	b.ReportAllocs()
	for b.Loop() {
		c.cycle(b)
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// BenchmarkObserveCloseSocket measures registering a socket and releasing it.
// The closer does nothing, so the same socket is observed again each time.
func BenchmarkObserveCloseSocket(b *testing.B) {
	p := newPoller(b)
	srv, _ := pair(b, listen(b))
	rc := rawConn(b, srv)
	cb := func(Event) {}
	b.ReportAllocs()
	for b.Loop() {
		d, err := p.Observe(rc, cb)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.CloseSocket(d, nopCloser{}); err != nil {
			b.Fatal(err)
		}
	}
}
