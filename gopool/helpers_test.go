package gopool

import (
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor polls cond until it holds, failing after five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wstest.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errors.New("waiting for " + what)
	})
}

// newPool returns a pool that is closed when the test ends.
func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(p.Close)
	return p
}

// gate holds tasks until opened. Create it after the pool: cleanups run in
// reverse order, so the gate opens before the pool's Close waits.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) wait() { <-g.ch }

// saturate fills every worker with a task held by g and every queue slot
// with more of them, and waits until that is visible in Stats.
func saturate(t *testing.T, p *Pool, g *gate) {
	t.Helper()
	for i := range p.size {
		if err := p.Schedule(g.wait); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
		waitFor(t, "another busy worker", func() bool { return p.Stats().Busy == i+1 })
	}
	for range cap(p.work) {
		if err := p.Schedule(g.wait); err != nil {
			t.Fatalf("Schedule: %v", err)
		}
	}
	if got, want := p.Stats().Queued, cap(p.work); got != want {
		t.Fatalf("Queued = %d, want %d", got, want)
	}
}
