//go:build linux && !netpoll_portable

package netpoll

import (
	"errors"
	"testing"
	"time"
)

// Heartbeat stamps LastBeat from the poller goroutine; while a callback
// blocks that goroutine, the stamp stays old, which is how a caller sees
// a wedged poller.
func TestHeartbeat(t *testing.T) {
	p := newPoller(t)
	before := p.LastBeat()
	if err := p.Heartbeat(); err != nil {
		t.Fatal(err)
	}
	waitBeatAfter(t, p, before)

	ln := listen(t)
	srv, cli := pair(t, ln)
	blocked, unblock := make(chan struct{}), make(chan struct{})
	d, err := p.Observe(rawConn(t, srv), func(ev Event) {
		if ev&EventRead != 0 {
			close(blocked)
			<-unblock // a callback that hangs the poller goroutine
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(d)
	cli.Write([]byte("x"))
	<-blocked
	stuck := p.LastBeat()
	if err := p.Heartbeat(); err != nil {
		t.Fatal(err)
	}
	// No timing claim: only that the beat cannot move while the goroutine
	// is held, then does once it is free.
	time.Sleep(20 * time.Millisecond)
	if got := p.LastBeat(); !got.Equal(stuck) {
		t.Fatalf("LastBeat moved from %v to %v while the poller was blocked", stuck, got)
	}
	close(unblock)
	waitBeatAfter(t, p, stuck)

	p.Close()
	if err := p.Heartbeat(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Heartbeat after Close = %v, want ErrClosed", err)
	}
}

func waitBeatAfter(t *testing.T, p *Poller, after time.Time) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !p.LastBeat().After(after) {
		if time.Now().After(deadline) {
			t.Fatalf("LastBeat stayed at %v", p.LastBeat())
		}
		time.Sleep(time.Millisecond)
	}
}
