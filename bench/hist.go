package bench

import (
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms are in microseconds, from 1 µs to 60 s, with 3 significant
// digits: a recorded value is within 0.1% of the true one.
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// recordUS records a latency in microseconds, clamped to [0, 60 s]: a
// negative value (clocks of publisher and client disagree) counts as 0.
func recordUS(h *hdrhistogram.Histogram, us int64) {
	if us < 0 {
		us = 0
	}
	if us > histMax {
		us = histMax
	}
	_ = h.RecordValue(us)
}

// lockedHist is a histogram shared by a few goroutines that record rarely
// (handshakes); hot paths keep their own and merge.
type lockedHist struct {
	mu sync.Mutex // protects h
	h  *hdrhistogram.Histogram
}

func newLockedHist() *lockedHist { return &lockedHist{h: newHist()} }

func (l *lockedHist) record(us int64) {
	l.mu.Lock()
	recordUS(l.h, us)
	l.mu.Unlock()
}

func (l *lockedHist) snapshot() *hdrhistogram.Histogram {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h.Clone()
}

// encodeHist returns the base64 V2-compressed form, for the worker pipe.
func encodeHist(h *hdrhistogram.Histogram) string {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "" // cannot happen for a valid histogram
	}
	return string(b)
}

// mergeEncoded merges an encodeHist string into h.
func mergeEncoded(h *hdrhistogram.Histogram, s string) error {
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

// Percentiles are latency percentiles in microseconds.
type Percentiles struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50"`
	P90   int64 `json:"p90"`
	P99   int64 `json:"p99"`
	P999  int64 `json:"p999"`
	Max   int64 `json:"max"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: h.TotalCount(),
		P50:   h.ValueAtQuantile(50),
		P90:   h.ValueAtQuantile(90),
		P99:   h.ValueAtQuantile(99),
		P999:  h.ValueAtQuantile(99.9),
		Max:   h.Max(),
	}
}
