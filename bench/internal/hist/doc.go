// Package hist records wsbench's latencies — handshakes, deliveries,
// reconnects — in HDR histograms of microseconds, and carries them from the
// worker processes to the coordinator, which merges them.
//
//	h := hist.New()
//	hist.Record(h, time.Since(start).Microseconds())
//	s := hist.Encode(h) // a worker's result
//	err := hist.MergeEncoded(total, s)
//
// A histogram from New belongs to one goroutine at a time (the engine's
// readers each keep their own and hold a lock per read task); a Locked may
// be recorded into from any goroutine.
package hist
