package gateway

import (
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"time"

	"github.com/wsgate/wsgate/gopool"
)

// Health and readiness answer two different questions.
//
// /healthz: is the process working at all? It fails only when the process
// is wedged, and restarting it is the cure: the poller goroutine has not
// answered a heartbeat, or the pool has been saturated, for StallTimeout.
//
// /readyz: should a load balancer send new clients here? It fails while
// the gateway drains, the bus is down, connections are near MaxConns,
// memory is near its limit, or the pool has been saturated for
// SaturationTimeout, and recovers by itself when the cause goes.

// checkHealth runs on the sweeper each tick: it asks the poller for a
// heartbeat, and notes since when the pool has been saturated.
func (s *Server) checkHealth(now time.Time) {
	s.poller.Heartbeat()
	if saturated(s.pool.Stats(), s.backlog.len()) {
		s.saturatedSince.CompareAndSwap(0, now.UnixNano())
	} else {
		s.saturatedSince.Store(0)
	}
}

// saturated reports whether every worker is busy and tasks wait for one.
func saturated(st gopool.Stats, backlog int) bool {
	return st.Busy >= st.Size && (st.Queued > 0 || backlog > 0)
}

// saturatedFor returns how long the pool has been saturated, as the
// sweeper saw it.
func (s *Server) saturatedFor(now time.Time) time.Duration {
	if since := s.saturatedSince.Load(); since != 0 {
		return now.Sub(time.Unix(0, since))
	}
	return 0
}

// unhealthy returns why the process is wedged, or "".
func (s *Server) unhealthy() string {
	if s.closed.Load() {
		return "" // stopped on purpose: alive, and no longer ready
	}
	now := time.Now()
	// The sweeper heartbeats every sweep period; allow a few of them.
	if stale := now.Sub(s.poller.LastBeat()); stale > s.cfg.StallTimeout+3*s.cfg.sweepPeriod() {
		return "event loop stalled for " + stale.Truncate(time.Millisecond).String()
	}
	if d := s.saturatedFor(now); d > s.cfg.StallTimeout {
		return "pool saturated for " + d.Truncate(time.Millisecond).String()
	}
	return ""
}

// notReady returns why the gateway should get no new clients, or "".
func (s *Server) notReady() string {
	switch {
	case s.closed.Load():
		return "closed"
	case s.draining.Load():
		return "draining"
	case !s.bus.Connected():
		return "bus disconnected"
	}
	if limit := s.softConnLimit(); limit > 0 && int(s.admitted.Load()) >= limit {
		return "connections at soft limit " + strconv.Itoa(limit)
	}
	if s.cfg.SoftMemoryLimit > 0 {
		if used := runtimeMemory(); used >= uint64(s.cfg.SoftMemoryLimit) {
			return "memory " + strconv.FormatUint(used>>20, 10) + " MiB at soft limit " +
				strconv.FormatInt(s.cfg.SoftMemoryLimit>>20, 10) + " MiB"
		}
	}
	if d := s.saturatedFor(time.Now()); d > s.cfg.SaturationTimeout {
		return "pool saturated for " + d.Truncate(time.Millisecond).String()
	}
	return ""
}

// durableState is the /readyz line about durable notifications, "" without
// them: whether the gateway knows the stream's epoch, and whether its last
// request to JetStream (a resume's lookup or read, an ack's write)
// succeeded. It never makes the gateway unready: volatile notifications do
// not need JetStream, and a resume that fails is answered "unavailable".
func (s *Server) durableState() string {
	switch {
	case s.history == nil:
		return ""
	case s.history.Epoch() == 0:
		return "durable: unavailable: the stream is not known (JetStream down or the stream missing)"
	}
	if f := s.historyFailure.Load(); f != nil {
		return "durable: unavailable since " + f.at.UTC().Format(time.RFC3339) + ": " + f.err
	}
	return "durable: ok"
}

// historyFailure is the first failure of the History requests that have
// failed since the last that succeeded.
type historyFailure struct {
	at  time.Time
	err string
}

// softConnLimit is the number of open connections at which /readyz turns
// 503, or 0 without MaxConns.
func (s *Server) softConnLimit() int {
	if s.cfg.MaxConns <= 0 {
		return 0
	}
	return max(int(float64(s.cfg.MaxConns)*s.cfg.ReadyConnsRatio), 1)
}

// memSamples are the runtime/metrics samples of runtimeMemory, pooled.
var memSamples = sync.Pool{New: func() any {
	return &[2]rtmetrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
}}

// runtimeMemory returns the memory GOMEMLIMIT applies to: all mapped Go
// memory less the heap returned to the OS.
func runtimeMemory() uint64 {
	samples := memSamples.Get().(*[2]rtmetrics.Sample)
	rtmetrics.Read(samples[:])
	used := samples[0].Value.Uint64() - samples[1].Value.Uint64()
	memSamples.Put(samples)
	return used
}
