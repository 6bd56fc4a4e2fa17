package gateway

import (
	"context"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// A graceful drain has three phases, each logged and shown by
// wsgate_drain_phase:
//
//  1. delay: /readyz answers 503 "draining" at once, and the server keeps
//     serving (new clients included) for DrainDelay, so that load
//     balancers take it out of rotation before anything is refused;
//  2. closing: listeners close, and every connection gets a 1001 close
//     frame at its own moment of the DrainTimeout window. The window is cut
//     into one slot per connection and each closes at a random point of its
//     slot, in a random order: the rate is bounded (about n/DrainTimeout per
//     second, at most two closes per slot) and clients reconnecting to other
//     gateways arrive as a trickle, not a wave;
//  3. closed: once every client has answered its close frame (or
//     CloseTimeout has passed for it), the server closes.

// drainPhase is the state of a drain.
type drainPhase int32

const (
	phaseServing drainPhase = iota
	phaseDelay
	phaseClosing
	phaseClosed
)

var phaseNames = [...]string{"serving", "delay", "closing", "closed"}

func (p drainPhase) String() string { return phaseNames[p] }

// Shutdown drains the server gracefully (see the phases above) and then
// closes it. If ctx ends first, or Close is called, Shutdown closes the
// server at once and returns ctx's error; a second signal to the process
// should do that. A second Shutdown waits for the first.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
	start := time.Now()
	s.setPhase(phaseDelay)
	s.log.Info("drain: not ready; serving until load balancers notice",
		zap.Duration("drain_delay", max(s.cfg.DrainDelay, 0)), zap.Int("connections", s.hub.count()))
	if s.cfg.DrainDelay > 0 && !s.wait(ctx, s.cfg.DrainDelay) {
		return s.cutShort(ctx, start)
	}

	s.stopping.Store(true)
	s.closeListeners()
	var conns []*Conn
	for i := 0; i < shardCount; i++ {
		conns = s.hub.appendShard(i, conns)
	}
	window := max(s.cfg.DrainTimeout, 0)
	s.setPhase(phaseClosing)
	s.log.Info("drain: stopped accepting; closing connections with 1001",
		zap.Int("connections", len(conns)), zap.Duration("drain_timeout", window))
	if !s.closeSpread(ctx, conns, window) {
		return s.cutShort(ctx, start)
	}

	s.setPhase(phaseClosed)
	s.log.Info("drain: every connection told; waiting for close handshakes",
		zap.Int("connections", s.hub.count()), zap.Duration("elapsed", time.Since(start)))
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.hub.count() > 0 {
		select {
		case <-ctx.Done():
			return s.cutShort(ctx, start)
		case <-s.done:
			return s.cutShort(ctx, start)
		case <-t.C:
		}
	}
	s.log.Info("drain: done", zap.Duration("elapsed", time.Since(start)))
	return s.Close()
}

// closeSpread closes conns with 1001 over window, each at a random point of
// its own slot of the window, in random order. It reports false when ctx
// ends or the server closes first.
func (s *Server) closeSpread(ctx context.Context, conns []*Conn, window time.Duration) bool {
	n := len(conns)
	if n == 0 {
		return true
	}
	rand.Shuffle(n, func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	at := closeOffsets(n, window)
	start := time.Now()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	next := 0
	for {
		for elapsed := time.Since(start); next < n && at[next] <= elapsed; next++ {
			conns[next].close(ReasonShutdown)
			conns[next] = nil
		}
		if next == n {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-s.done:
			return false
		case <-t.C:
		}
	}
}

// closeOffsets returns when each of n connections closes, as offsets from
// the start of a drain window: offset i is a random point of slot i, which
// is [i, i+1) × window/n. They are in increasing order and below window.
func closeOffsets(n int, window time.Duration) []time.Duration {
	at := make([]time.Duration, n)
	slot := window / time.Duration(n)
	if slot <= 0 {
		return at // no window: all at once
	}
	for i := range at {
		at[i] = time.Duration(i)*slot + rand.N(slot)
	}
	return at
}

// wait waits for d; it reports false when ctx ends or the server closes.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

// cutShort ends a drain that ctx (or Close) interrupted: it closes the
// server at once.
func (s *Server) cutShort(ctx context.Context, start time.Time) error {
	s.log.Warn("drain: cut short; closing now",
		zap.Stringer("phase", drainPhase(s.phase.Load())), zap.Int("connections", s.hub.count()),
		zap.Duration("elapsed", time.Since(start)))
	s.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrServerClosed
}

func (s *Server) setPhase(p drainPhase) { s.phase.Store(int32(p)) }
