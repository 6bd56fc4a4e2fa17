package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wstest"
)

func TestCloseOffsets(t *testing.T) {
	for _, tc := range []struct {
		n      int
		window time.Duration
	}{
		{1, time.Second},
		{7, 30 * time.Second},
		{10000, 30 * time.Second},
		{3, 0},
		{1000, time.Microsecond}, // a window shorter than n nanoseconds
	} {
		t.Run(fmt.Sprintf("%d/%v", tc.n, tc.window), func(t *testing.T) {
			at := closeOffsets(tc.n, tc.window)
			if len(at) != tc.n {
				t.Fatalf("%d offsets, want %d", len(at), tc.n)
			}
			slot := tc.window / time.Duration(tc.n)
			for i, d := range at {
				lo, hi := time.Duration(i)*slot, time.Duration(i+1)*slot
				if slot == 0 {
					lo, hi = 0, 1
				}
				if d < lo || d >= hi {
					t.Fatalf("offset %d = %v, outside its slot [%v, %v)", i, d, lo, hi)
				}
				if i > 0 && d < at[i-1] {
					t.Fatalf("offset %d = %v before offset %d = %v", i, d, i-1, at[i-1])
				}
			}
		})
	}
	// The offsets are random within their slots: two schedules differ.
	a, b := closeOffsets(100, time.Second), closeOffsets(100, time.Second)
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	if same == len(a) {
		t.Fatal("two schedules are identical: no jitter")
	}
}

// TestDrain walks the three phases of Shutdown: readiness off while new
// clients are still served, then 1001 to everyone over the window, then
// Close.
func TestDrain(t *testing.T) {
	const delay, window = 300 * time.Millisecond, 400 * time.Millisecond
	e := newEnv(t, func(c *Config) { c.DrainDelay, c.DrainTimeout = delay, window })
	var clients []*client
	for i := range 20 {
		clients = append(clients, e.connect(fmt.Sprintf("u%d", i)))
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	wstest.CheckFor(t, time.Second, poll, func() error {
		if got := e.srv.notReady(); got != "draining" {
			return fmt.Errorf("readiness %q during the drain delay, want draining", got)
		}
		return nil
	})
	// The delay phase still serves, new clients included: a load balancer
	// may send a few before it notices.
	if phase := drainPhase(e.srv.phase.Load()); phase == phaseDelay {
		late := e.connect("late")
		clients = append(clients, late)
	}

	var wg sync.WaitGroup
	codes := make(chan ws.StatusCode, len(clients))
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- c.closeCode()
		}()
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != ws.StatusGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := counterValue(e.srv.metrics.closes[ReasonShutdown]); got != float64(len(clients)) {
		t.Fatalf("closes{reason=shutdown} = %v, want %d", got, len(clients))
	}
	if _, err := e.dialURL(e.url+"?token="+token(t, "after", time.Hour), nil); err == nil {
		t.Fatal("a connection was accepted after the drain")
	}
}

// A context that ends during the drain closes the server at once.
func TestDrainCutShort(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DrainDelay, c.DrainTimeout = time.Hour, time.Hour })
	c := e.connect("a")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	wstest.CheckFor(t, time.Second, poll, func() error {
		if !e.srv.draining.Load() {
			return errors.New("not draining")
		}
		return nil
	})
	cancel() // the second signal
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Shutdown = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return when its context ended")
	}
	if _, err := c.read(5 * time.Second); err == nil {
		t.Fatal("the connection outlived Close")
	}
	// A second Shutdown after Close returns at once.
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// Two Shutdowns at once: the second waits for the first.
func TestShutdownTwice(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DrainDelay, c.DrainTimeout = 50*time.Millisecond, 50*time.Millisecond })
	e.connect("a")
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- e.srv.Shutdown(context.Background()) }()
	}
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Shutdown did not return")
		}
	}
	if !e.srv.closed.Load() {
		t.Fatal("the server is not closed after Shutdown")
	}
}

// Closing many connections at once makes our close frame cross the
// client's answer: the read task may see the connection open while the
// drain has already sent 1001. The answer must still end the close
// handshake at once, not at CloseTimeout (a 7% tail in the 10,000-client
// drain before the fix).
func TestDrainCloseHandshakesComplete(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.DrainDelay, c.DrainTimeout, c.CloseTimeout = -1, time.Second, 5*time.Second
	})
	var clients []*client
	for i := range 1000 {
		clients = append(clients, e.connect(fmt.Sprintf("u%d", i)))
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.closeCode()  // the client library answers the close frame
			c.Conn.Close() // and hangs up, as browsers do
		}()
	}
	if err := e.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n := counterValue(e.srv.metrics.closeTimeouts); n != 0 {
		t.Fatalf("%v close handshakes timed out although every client answered", n)
	}
}
