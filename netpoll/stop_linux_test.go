//go:build linux

package netpoll

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/internal/wstest"
)

func TestResumeWhileArmedAndAfterStop(t *testing.T) {
	o := observe(t)
	p, d, cli, rc, cb, ch, errc := o.p, o.d, o.cli, o.rc, o.cb, o.ch, o.errc
	if _, err := p.Observe(rc, cb); err == nil {
		t.Fatal("second Observe of the same socket succeeded")
	}
	for range 3 {
		if err := p.Resume(d); err != nil {
			t.Fatalf("Resume while armed: %v", err)
		}
	}
	if _, err := cli.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, ch); e != EventRead {
		t.Fatalf("event %v, want read", e)
	}
	if err := p.Stop(d); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := p.Stop(d); !errors.Is(err, ErrNotObserved) {
		t.Fatalf("second Stop = %v, want ErrNotObserved", err)
	}
	if err := p.Resume(d); !errors.Is(err, ErrNotObserved) {
		t.Fatalf("Resume after Stop = %v, want ErrNotObserved", err)
	}
	if err := p.WantWrite(d); !errors.Is(err, ErrNotObserved) {
		t.Fatalf("WantWrite after Stop = %v, want ErrNotObserved", err)
	}
	// The socket can be observed again once stopped.
	d2, err := p.Observe(rc, cb)
	if err != nil {
		t.Fatalf("Observe after Stop: %v", err)
	}
	if e := waitEvent(t, ch); e != EventRead { // the unread byte
		t.Fatalf("event %v, want read", e)
	}
	if err := p.Stop(d2); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	noEvent(t, ch)
	drainErrs(t, errc)
}

// No callback starts or is running once Stop has returned, while events
// are hammered at the Desc and Stop races from several goroutines.
func TestNoCallbackAfterStop(t *testing.T) {
	p := newPoller(t)
	ln := listen(t)
	const rounds = 50
	var late, running, total atomic.Int64
	for r := range rounds {
		srv, cli := pair(t, ln)
		rc := rawConn(t, srv)
		var stopped atomic.Bool
		kick := make(chan struct{}, 1)
		var d *Desc
		var dmu sync.Mutex
		dmu.Lock()
		d, err := p.Observe(rc, func(Event) {
			running.Add(1)
			defer running.Add(-1)
			total.Add(1)
			if stopped.Load() {
				late.Add(1)
			}
			select {
			case kick <- struct{}{}:
			default:
			}
		})
		dmu.Unlock()
		if err != nil {
			t.Fatalf("Observe: %v", err)
		}
		// The byte is never read, so every Resume fires again at once;
		// the socket is always writable, so every WantWrite fires too.
		if _, err := cli.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-kick:
					dmu.Lock()
					_ = p.Resume(d)
					_ = p.WantWrite(d)
					dmu.Unlock()
				}
			}
		})
		// Stop after a varying number of callbacks.
		want := total.Load() + int64(r%7)*10
		wstest.CheckFor(t, waitLimit, time.Millisecond, func() error {
			if total.Load() < want {
				return errors.New("callbacks not delivered")
			}
			return nil
		})
		var nilErrs atomic.Int32
		var stoppers sync.WaitGroup
		for range 3 {
			stoppers.Go(func() {
				err := p.Stop(d)
				if err == nil {
					nilErrs.Add(1)
				} else if !errors.Is(err, ErrNotObserved) {
					t.Errorf("Stop: %v", err)
				}
				if n := running.Load(); n != 0 {
					t.Errorf("round %d: %d callbacks running after Stop returned", r, n)
				}
				stopped.Store(true)
			})
		}
		stoppers.Wait()
		if n := nilErrs.Load(); n != 1 {
			t.Errorf("round %d: %d Stop calls returned nil, want 1", r, n)
		}
		// Keep events coming for a moment: more data, more Resumes.
		cli.Write([]byte{2})
		for range 10 {
			dmu.Lock()
			_ = p.Resume(d)
			dmu.Unlock()
		}
		close(done)
		wg.Wait()
		srv.Close()
		cli.Close()
	}
	if n := late.Load(); n != 0 {
		t.Fatalf("%d callbacks started after Stop returned", n)
	}
	t.Logf("%d callbacks over %d rounds", total.Load(), rounds)
}

func TestCloseDeliversClosedOnce(t *testing.T) {
	p, err := New(Config{OnError: func(err error) { t.Errorf("OnError: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	const n = 4
	var got [n]atomic.Int32
	var closed [n]atomic.Int32
	var after atomic.Int32
	var closeReturned atomic.Bool
	var clis []*net.TCPConn
	var descs []*Desc
	for i := range n {
		srv, cli := pair(t, ln)
		clis = append(clis, cli)
		d, err := p.Observe(rawConn(t, srv), func(e Event) {
			if closeReturned.Load() {
				after.Add(1)
			}
			got[i].Add(1)
			if e == EventClosed {
				closed[i].Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, d)
	}
	if err := p.Stop(descs[0]); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	closeReturned.Store(true)
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, c := range clis {
		c.Write([]byte{1})
	}
	for i := range n {
		want := int32(1)
		if i == 0 {
			want = 0 // stopped before Close
		}
		if c := closed[i].Load(); c != want || got[i].Load() != want {
			t.Errorf("desc %d: %d EventClosed of %d callbacks, want %d", i, c, got[i].Load(), want)
		}
	}
	if a := after.Load(); a != 0 {
		t.Errorf("%d callbacks after Close returned", a)
	}
	if _, err := p.Observe(rawConn(t, clis[0]), func(Event) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Observe after Close = %v, want ErrClosed", err)
	}
	for _, f := range []func(*Desc) error{p.Resume, p.WantWrite, p.Stop} {
		if err := f(descs[1]); !errors.Is(err, ErrNotObserved) {
			t.Errorf("after Close: %v, want ErrNotObserved", err)
		}
	}
	// With no wait loop left, CloseSocket closes at once.
	c := &recordingCloser{}
	if err := p.CloseSocket(descs[2], c); !errors.Is(err, ErrNotObserved) {
		t.Errorf("CloseSocket after Close = %v, want ErrNotObserved", err)
	}
	if !c.closed.Load() {
		t.Error("CloseSocket after Close did not close")
	}
}

// A failed registration leaves nothing behind: a regular file cannot be
// added to epoll, and a second try fails the same way, not as "already
// registered".
func TestObserveFailureLeavesNoRegistration(t *testing.T) {
	if portable {
		t.Skip("the portable implementation does not register with epoll")
	}
	p := newPoller(t)
	f, err := os.CreateTemp(t.TempDir(), "regular")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		_, err := p.Observe(rc, func(Event) {})
		if !errors.Is(err, unix.EPERM) {
			t.Fatalf("Observe #%d of a regular file = %v, want EPERM", i+1, err)
		}
	}
}
