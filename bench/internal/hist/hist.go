package hist

import (
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms are in microseconds, from 1 µs to 60 s, with 3 significant
// digits: a recorded value is within 0.1% of the true one.
const (
	minUS  = 1
	maxUS  = 60_000_000
	digits = 3
)

// New returns an empty latency histogram.
func New() *hdrhistogram.Histogram { return hdrhistogram.New(minUS, maxUS, digits) }

// Record records a latency in microseconds, clamped to [0, 60 s]: a
// negative value (clocks of publisher and client disagree) counts as 0.
func Record(h *hdrhistogram.Histogram, us int64) {
	if us < 0 {
		us = 0
	}
	if us > maxUS {
		us = maxUS
	}
	_ = h.RecordValue(us)
}

// Locked is a histogram shared by a few goroutines that record rarely
// (handshakes); hot paths keep their own and merge.
type Locked struct {
	mu sync.Mutex // protects h
	h  *hdrhistogram.Histogram
}

// NewLocked returns an empty Locked.
func NewLocked() *Locked { return &Locked{h: New()} }

// Record records a latency in microseconds, as Record does.
func (l *Locked) Record(us int64) {
	l.mu.Lock()
	Record(l.h, us)
	l.mu.Unlock()
}

// Snapshot returns a copy of what l recorded so far.
func (l *Locked) Snapshot() *hdrhistogram.Histogram {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h.Clone()
}

// Encode returns the base64 V2-compressed form of h, for the worker pipe.
func Encode(h *hdrhistogram.Histogram) string {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "" // cannot happen for a valid histogram
	}
	return string(b)
}

// MergeEncoded merges an Encode string into h; "" merges nothing.
func MergeEncoded(h *hdrhistogram.Histogram, s string) error {
	if s == "" {
		return nil
	}
	o, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return err
	}
	h.Merge(o)
	return nil
}
