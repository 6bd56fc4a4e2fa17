package engine

import (
	"strconv"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/bench/internal/config"
	"github.com/wsgate/wsgate/bench/internal/hist"
)

// The resume scenario's clients keep durable notifications as
// docs/protocol.md ("Resume and acks") tells a client to: per connection,
// the seq and epoch of the last durable frame applied on its user
// channel. They apply a durable frame only when its prev is that seq (or
// when they have no position yet); after a reconnect they send resume
// with their position and drop the channel's frames until the resumed
// answer, whose seq becomes their position. Every frame they apply after
// the resume is checked against the stream sequences the publisher got
// acked for their user while they were away (Expectation.Durable).

// durState is what a durable-aware connection keeps about its user
// channel, and what it applied since its resume. It is guarded by the
// conn's mu.
type durState struct {
	last, epoch uint64 // the position: the seq of the last durable frame applied, and its epoch

	cut       bool // closed by Cut, not reconnected yet or never
	resuming  bool // resume sent, its answer not read yet
	resumed   bool // the answer was read
	expectSet bool // expect holds what to check (SetResume)
	done      bool // every expected frame applied
	resumeAt  int64
	expect    []uint64 // the acked sequences published to the user while cut, in order
	matched   int      // expect[:matched] were applied, in order

	applied      int // durable frames applied after the resume
	stray        int // applied after the resume but not the next expected sequence
	dupApplied   int // applied with a seq not above the position: a duplicate the rule let through
	dupDropped   int // dropped: seq not above the position (a duplicate, removed)
	gapDropped   int // dropped: prev is not the position and seq is above it (a gap)
	whileResume  int // dropped between the resume and its answer
	unrecovered  bool
	resumeFailed bool // answered with an error frame
}

// ResumeTotals are the resume scenario's figures of one engine, or
// several summed.
type ResumeTotals struct {
	Cut             int64  `json:"cut"`                // connections closed by the cut
	Resumed         int64  `json:"resumed"`            // resumed answers read
	Unrecovered     int64  `json:"unrecovered"`        // answered recovered:false
	ResumeErrors    int64  `json:"resume_errors"`      // answered with an error frame (unavailable, ...)
	Complete        int64  `json:"complete"`           // connections that applied every expected notification
	Expected        int64  `json:"expected"`           // acked sequences published while cut, over the resumed connections' users
	Applied         int64  `json:"applied"`            // durable frames applied after the resume
	Lost            int64  `json:"lost"`               // expected sequences never applied
	Stray           int64  `json:"stray"`              // applied sequences that were not the next expected one
	DupApplied      int64  `json:"dup_applied"`        // duplicates left after de-duplication: must be 0
	DupDropped      int64  `json:"dup_dropped"`        // duplicates removed by the prev rule
	GapDropped      int64  `json:"gap_dropped"`        // frames dropped because their prev showed a gap
	DroppedInResume int64  `json:"dropped_in_resume"`  // frames dropped between a resume and its answer
	CutNS           int64  `json:"cut_ns"`             // when the cut began, unix ns
	FirstResumeNS   int64  `json:"first_resume_ns"`    // the first resume op sent
	LastCompleteNS  int64  `json:"last_complete_ns"`   // the last connection complete
	FirstReconnNS   int64  `json:"first_reconnect_ns"` // the first reconnect's dial
	LastReconnNS    int64  `json:"last_reconnect_ns"`  // the last reconnect's welcome
	Recovery        string `json:"recovery"`           // per connection, cut → complete, µs (hist.Encode)
	ResumeLatency   string `json:"resume_latency"`     // per connection, resume op → complete, µs
}

// Merge adds o to t: counts summed, the earliest cut and first resume, the
// latest completion. Histograms are merged by the caller.
func (t *ResumeTotals) Merge(o ResumeTotals) {
	t.Cut += o.Cut
	t.Resumed += o.Resumed
	t.Unrecovered += o.Unrecovered
	t.ResumeErrors += o.ResumeErrors
	t.Complete += o.Complete
	t.Expected += o.Expected
	t.Applied += o.Applied
	t.Lost += o.Lost
	t.Stray += o.Stray
	t.DupApplied += o.DupApplied
	t.DupDropped += o.DupDropped
	t.GapDropped += o.GapDropped
	t.DroppedInResume += o.DroppedInResume
	if o.CutNS != 0 && (t.CutNS == 0 || o.CutNS < t.CutNS) {
		t.CutNS = o.CutNS
	}
	if o.FirstResumeNS != 0 && (t.FirstResumeNS == 0 || o.FirstResumeNS < t.FirstResumeNS) {
		t.FirstResumeNS = o.FirstResumeNS
	}
	t.LastCompleteNS = max(t.LastCompleteNS, o.LastCompleteNS)
	if o.FirstReconnNS != 0 && (t.FirstReconnNS == 0 || o.FirstReconnNS < t.FirstReconnNS) {
		t.FirstReconnNS = o.FirstReconnNS
	}
	t.LastReconnNS = max(t.LastReconnNS, o.LastReconnNS)
}

// Cut closes every open connection at once, from the client side and
// without a close frame, as a network loss or a killed app would, and
// returns how many it closed. Each keeps its position for the resume.
func (e *Engine) Cut() int64 {
	e.cutNS.Store(time.Now().UnixNano())
	var n int64
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		if c.state == stateOpen && c.dur != nil {
			e.release(c, stateIdle)
			c.dur.cut = true
			n++
		}
		c.mu.Unlock()
	}
	e.cutConns.Add(n)
	return n
}

// CutByServer records at (unix ns) as the cut and waits, up to wait,
// until the server has closed every open connection (--cut-cmd: a
// gateway restart); those it closed are cut, the rest are closed as Cut
// does. It returns how many connections were cut.
func (e *Engine) CutByServer(at int64, wait time.Duration) int64 {
	e.cutNS.Store(at)
	deadline := time.Now().Add(wait)
	for e.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var n int64
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		switch {
		case c.dur == nil:
		case c.state == stateOpen:
			e.release(c, stateIdle)
			c.dur.cut = true
			n++
		case c.state == stateClosed:
			c.state, c.dur.cut = stateIdle, true
			n++
		}
		c.mu.Unlock()
	}
	e.cutConns.Add(n)
	return n
}

// SetResume tells the cut connections what their users were sent while
// cut (x.Durable, by run-wide connection index), then reconnects them at
// this worker's share of the rate; each sends resume once welcomed. It
// returns when every reconnect has resolved, with how many succeeded.
func (e *Engine) SetResume(x *Expectation) int64 {
	var ks []int32
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		if d := c.dur; d != nil && d.cut && c.state == stateIdle {
			g := e.global(int32(k))
			d.expect, d.expectSet, d.matched, d.done = nil, true, 0, false
			if g < len(x.Durable) {
				d.expect = x.Durable[g]
			}
			ks = append(ks, int32(k))
		}
		c.mu.Unlock()
	}
	before := e.reconnects.Load()
	since := time.Unix(0, e.cutNS.Load())
	e.reconnWG.Add(len(ks))
	rate := e.cfg.Rate / float64(e.spec.Workers)
	start := time.Now()
	for i, k := range ks {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > time.Millisecond {
			time.Sleep(d)
		}
		e.dialq <- dialJob{k: k, reconnect: true, since: since}
	}
	e.reconnWG.Wait()
	return e.reconnects.Load() - before
}

// appendResume appends the resume op of conn k's user channel from its
// position, and marks it resuming. c.mu must be held.
func (e *Engine) appendResume(dst []byte, k int32, d *durState) []byte {
	b := append(dst, `{"op":"resume","channel":"`...)
	b = e.channel(b, e.global(k))
	b = append(b, '"')
	if d.last > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, d.last, 10)
		b = append(b, `,"epoch":`...)
		b = strconv.AppendUint(b, d.epoch, 10)
	}
	b = append(b, `,"ref":1}`...)
	now := time.Now().UnixNano()
	d.resuming, d.resumed, d.resumeAt = true, false, now
	atomicMin(&e.firstResume, now)
	return appendClientFrame(nil, ws.OpText, b)
}

// appendResumeParam appends "&resume=<channel>:<seq>:<epoch>" for conn g
// when the scenario gives positions in the upgrade request and the conn,
// reconnecting, has one.
func (e *Engine) appendResumeParam(req []byte, g int) []byte {
	if !e.cfg.ResumeInURL {
		return req
	}
	k := (g - e.spec.Index) / e.spec.Workers // global's inverse
	if k < 0 || k >= len(e.conns) || e.global(int32(k)) != g {
		return req
	}
	c := &e.conns[k]
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dur
	if d == nil || !d.cut || d.epoch == 0 {
		return req
	}
	req = append(req, "&resume="...)
	req = e.channel(req, g)
	req = append(req, ':')
	req = strconv.AppendUint(req, d.last, 10)
	req = append(req, ':')
	return strconv.AppendUint(req, d.epoch, 10)
}

// durable applies the protocol's rule to m on conn c (c.mu held) and
// reports whether m is a message frame to count as delivered.
func (r *reader) durable(c *conn, m *message, now int64) bool {
	d, e := c.dur, r.e
	switch m.kind {
	case kindResumed:
		if !d.resuming && !e.cfg.ResumeInURL {
			return false
		}
		if e.cfg.ResumeInURL { // an answer means something is missing
			d.last, d.epoch = m.pos.seq, m.pos.epoch
			d.unrecovered = !m.recovered
			return false
		}
		d.resuming, d.resumed = false, true
		d.last, d.epoch = m.pos.seq, m.pos.epoch
		d.unrecovered = !m.recovered
		e.resumedN.Add(1)
		e.checkDone(d, now)
		return false
	case kindError:
		if d.resuming {
			d.resuming, d.resumeFailed = false, true
		}
		return false
	case kindMessage:
	default:
		return false
	}
	p := m.pos
	if p.seq == 0 {
		return true // a volatile frame
	}
	switch {
	case d.resuming:
		d.whileResume++
		return false
	case d.last != 0 && p.prev != d.last:
		if p.seq <= d.last {
			d.dupDropped++
		} else {
			d.gapDropped++
		}
		return false
	}
	if d.last != 0 && p.seq <= d.last {
		d.dupApplied++
	}
	d.last, d.epoch = p.seq, p.epoch
	if d.resumed {
		d.applied++
		if d.matched < len(d.expect) && d.expect[d.matched] == p.seq {
			d.matched++
		} else {
			d.stray++
		}
		e.checkDone(d, now)
	}
	return true
}

// checkDone marks d complete once its resume was answered and every
// expected notification applied (with NoResume, once it is welcomed).
// The conn's mu must be held.
func (e *Engine) checkDone(d *durState, now int64) {
	if d.done || !d.resumed || !d.expectSet || d.matched < len(d.expect) {
		return
	}
	d.done = true
	e.complete.Add(1)
	e.recoveryHist.Record((now - e.cutNS.Load()) / 1000)
	e.resumeHist.Record((now - d.resumeAt) / 1000)
	atomicMax(&e.lastComplete, now)
}

// resumeTotals sums the connections' resume figures. Called by finish with
// every conn's mu free.
func (e *Engine) resumeTotals() *ResumeTotals {
	if e.cfg.Scenario != config.ScenarioResume {
		return nil
	}
	t := &ResumeTotals{
		Cut: e.cutConns.Load(), Resumed: e.resumedN.Load(), Complete: e.complete.Load(),
		CutNS: e.cutNS.Load(), FirstResumeNS: e.firstResume.Load(), LastCompleteNS: e.lastComplete.Load(),
		FirstReconnNS: e.reconnFirst.Load(), LastReconnNS: e.reconnLast.Load(),
		Recovery: hist.Encode(e.recoveryHist.Snapshot()), ResumeLatency: hist.Encode(e.resumeHist.Snapshot()),
	}
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		if d := c.dur; d != nil && d.expectSet {
			t.Expected += int64(len(d.expect))
			t.Lost += int64(len(d.expect) - d.matched)
			t.Applied += int64(d.applied)
			t.Stray += int64(d.stray)
			t.DupApplied += int64(d.dupApplied)
			t.DupDropped += int64(d.dupDropped)
			t.GapDropped += int64(d.gapDropped)
			t.DroppedInResume += int64(d.whileResume)
			if d.unrecovered {
				t.Unrecovered++
			}
			if d.resumeFailed {
				t.ResumeErrors++
			}
		}
		c.mu.Unlock()
	}
	return t
}
