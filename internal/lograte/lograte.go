// Package lograte keeps repeated log lines from flooding: a Limiter lets
// one event through per period and counts the ones it holds back, so the
// line that passes can say how many it stands for.
//
// A Limiter's zero value is ready (period 10 s) and safe for concurrent use.
package lograte

import (
	"sync"
	"time"
)

// DefaultPeriod is the period of a zero Limiter.
const DefaultPeriod = 10 * time.Second

// Limiter lets one event through per Period.
type Limiter struct {
	// Period between events let through. Zero means DefaultPeriod.
	Period time.Duration

	mu   sync.Mutex
	next time.Time // guarded by mu: when the next event may pass
	held int       // guarded by mu: events held back since the last one passed
}

// Allow reports whether this event may be logged and, if so, how many were
// held back before it.
func (l *Limiter) Allow() (ok bool, held int) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.held++
		return false, 0
	}
	held, l.held = l.held, 0
	period := l.Period
	if period == 0 {
		period = DefaultPeriod
	}
	l.next = now.Add(period)
	return true, held
}
