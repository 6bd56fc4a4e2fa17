//go:build linux

package netpoll

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/internal/wstest"
)

// blocker returns a Desc whose callback, once triggered by block, holds the
// poller goroutine until the returned unblock is called (also at cleanup).
// returned reports whether the blocking callback has returned.
func blocker(t *testing.T, p *Poller, ln *net.TCPListener) (block, unblock func(), returned *atomic.Bool) {
	srv, cli := pair(t, ln)
	entered, release := make(chan struct{}), make(chan struct{})
	returned = new(atomic.Bool)
	var once sync.Once
	unblock = func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before newPoller's Close
	if _, err := p.Observe(rawConn(t, srv), func(e Event) {
		if e == EventClosed {
			return
		}
		close(entered)
		<-release
		returned.Store(true)
	}); err != nil {
		t.Fatalf("Observe: %v", err)
	}
	block = func() {
		if _, err := cli.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		<-entered
	}
	return block, unblock, returned
}

// CloseSocket must not close before the poller goroutine has run the barrier,
// that is, after the batch it is busy with.
func TestReleaseClosesAfterBarrier(t *testing.T) {
	if portable {
		t.Skip("the portable implementation closes at once: it has no stale events")
	}
	p := newPoller(t)
	ln := listen(t)
	block, unblock, returned := blocker(t, p, ln)
	srv, _ := pair(t, ln)
	d, err := p.Observe(rawConn(t, srv), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	block() // the poller goroutine now sits in the blocker's callback
	c := &recordingCloser{inner: srv, sample: returned}
	if err := p.CloseSocket(d, c); err != nil {
		t.Fatalf("CloseSocket: %v", err)
	}
	if c.closed.Load() {
		t.Fatal("CloseSocket closed synchronously, before the poller goroutine reached a barrier")
	}
	if err := p.CloseSocket(d, nil); !errors.Is(err, ErrNotObserved) {
		t.Fatalf("second CloseSocket = %v, want ErrNotObserved", err)
	}
	unblock()
	wstest.CheckFor(t, waitLimit, time.Millisecond, func() error {
		if !c.closed.Load() {
			return errors.New("released conn not closed")
		}
		return nil
	})
	if !c.sampled.Load() {
		t.Fatal("closed while the poller goroutine was still in the earlier batch")
	}
}

// Close runs the closes CloseSocket left pending.
func TestCloseRunsPendingReleases(t *testing.T) {
	p, err := New(Config{OnError: func(err error) { t.Errorf("OnError: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	block, unblock, _ := blocker(t, p, ln)
	srv, _ := pair(t, ln)
	d, err := p.Observe(rawConn(t, srv), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	block()
	c := &recordingCloser{inner: srv}
	if err := p.CloseSocket(d, c); err != nil {
		t.Fatalf("CloseSocket: %v", err)
	}
	closeErr := make(chan error, 1)
	go func() { closeErr <- p.Close() }()
	unblock()
	if err := <-closeErr; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !c.closed.Load() {
		t.Fatal("Close returned with a CloseSocket close still pending")
	}
}

// Trap 2. Old sockets become readable while the poller goroutine cannot
// run (GOMAXPROCS=1 and this goroutine keeps the only P), so it holds a
// batch of events whose callbacks are looked up by fd number only once it
// runs. Meanwhile the old sockets are released and new ones, already
// waiting in the accept backlog, are accepted and observed. Had the old fds
// been closed, the new sockets would reuse their numbers and get the stale
// events while their clients have sent nothing.
func TestReleaseNoStaleEventOnReusedFd(t *testing.T) {
	spurious, reused := staleEventRace(t, func(p *Poller, d *Desc, c *net.TCPConn) {
		if err := p.CloseSocket(d, c); err != nil {
			t.Errorf("CloseSocket: %v", err)
		}
	})
	t.Logf("new sockets on a fd number released in the same round: %d", reused)
	if spurious != 0 {
		t.Fatalf("%d events delivered to new sockets with nothing to read", spurious)
	}
}

// The same race with what CloseSocket exists to prevent, Stop then an
// immediate close, shows that the test above can see the bug.
func TestStopThenCloseControl(t *testing.T) {
	if testing.Short() {
		t.Skip("control experiment")
	}
	spurious, reused := staleEventRace(t, func(p *Poller, d *Desc, c *net.TCPConn) {
		if err := p.Stop(d); err != nil {
			t.Errorf("Stop: %v", err)
		}
		c.Close()
	})
	t.Logf("Stop+Close: fd numbers reused %d, spurious events %d", reused, spurious)
	if spurious == 0 {
		t.Log("the stale-event race did not show this time")
	}
}

func staleEventRace(t *testing.T, release func(*Poller, *Desc, *net.TCPConn)) (spurious, reused int64) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	p := newPoller(t)
	ln := listen(t)
	const rounds, n = 20, 32
	var bad, good atomic.Int64
	sync := make(chan struct{}, 1)
	syncSrv, syncCli := pair(t, ln)
	syncRC := rawConn(t, syncSrv)
	syncDesc, err := p.Observe(syncRC, func(e Event) {
		if e != EventClosed {
			sync <- struct{}{}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// roundTrip returns once the poller goroutine has finished every batch
	// it had collected, and leaves it about to wait in epoll_wait again.
	roundTrip := func() {
		syncCli.Write([]byte{1})
		<-sync
		readNB(syncRC, make([]byte, 1))
		if err := p.Resume(syncDesc); err != nil {
			t.Fatal(err)
		}
	}
	for range rounds {
		olds := make([]*net.TCPConn, n)
		oldCli := make([]*net.TCPConn, n)
		oldDesc := make([]*Desc, n)
		oldFds := make(map[int]bool)
		for i := range n {
			olds[i], oldCli[i] = pair(t, ln)
			rc := rawConn(t, olds[i])
			oldFds[sysFd(t, rc)] = true
			if oldDesc[i], err = p.Observe(rc, func(Event) {}); err != nil {
				t.Fatal(err)
			}
		}
		// New clients wait in the backlog, so that Accept below never
		// parks this goroutine.
		newCli := make(map[string]*net.TCPConn, n)
		for range n {
			c := dial(t, ln)
			newCli[c.LocalAddr().String()] = c
		}
		roundTrip()
		runtime.Gosched()

		// From here to the next roundTrip nothing may park: the poller
		// goroutine, woken by the first write, waits for the only P.
		for _, c := range oldCli {
			c.Write([]byte{1})
		}
		for i := range n {
			release(p, oldDesc[i], olds[i])
		}
		news := make([]*net.TCPConn, n)
		newDesc := make([]*Desc, n)
		for i := range n {
			news[i] = accept(t, ln)
			rc := rawConn(t, news[i])
			fd := sysFd(t, rc)
			if oldFds[fd] {
				reused++
			}
			if newDesc[i], err = p.Observe(rc, func(e Event) {
				var buf [1]byte
				_, _, err := unix.Recvfrom(fd, buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
				if errors.Is(err, unix.EAGAIN) {
					bad.Add(1) // nothing was sent: a stale event
				} else {
					good.Add(1)
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		// Let the poller goroutine run the batch it holds, then check that
		// the new sockets work.
		roundTrip()
		before := good.Load()
		for i, c := range news {
			p.Resume(newDesc[i]) // re-arm what a stale event used up
			newCli[c.RemoteAddr().String()].Write([]byte{1})
		}
		wstest.CheckFor(t, waitLimit, time.Millisecond, func() error {
			if good.Load()-before < n {
				return errors.New("new sockets not all readable")
			}
			return nil
		})
		for i := range n {
			p.CloseSocket(newDesc[i], news[i])
			oldCli[i].Close()
		}
		for _, c := range newCli {
			c.Close()
		}
	}
	return bad.Load(), reused
}
