package engine

import (
	"bytes"
	"math"
	"strconv"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/bench/internal/config"
	"github.com/wsgate/wsgate/bench/internal/hist"
	"github.com/wsgate/wsgate/internal/rawio"
)

// The control and upstream scenarios' part of the engine: the arrival of
// the close frames a control disconnect makes the gateway send, and the
// request ops of upstream with their replies and errors.

// UpstreamTotals are an engine's upstream figures. The replies' latencies
// (the send time in each request's data, echoed by the responder → the
// reply read) are the delivery histogram, and the replies its count.
type UpstreamTotals struct {
	Sent        int64            `json:"sent"`         // request ops written whole
	WriteFailed int64            `json:"write_failed"` // not written: the connection closed, or a short write
	Errors      map[string]int64 `json:"errors"`       // error frames by code (rate_limited, timeout, …)
	FirstSendNS int64            `json:"first_send_ns"`
	LastSendNS  int64            `json:"last_send_ns"`
}

var (
	typeReply = []byte(`{"type":"reply"`)
	keyCode   = []byte(`"code":"`)
)

// noteServerClose records when conn k read a close frame from the server
// (control: a disconnect's close). now is the read's time, unix ns.
func (e *Engine) noteServerClose(k int32, now int64) {
	if e.cfg.Scenario != config.ScenarioControl {
		return
	}
	e.mu.Lock()
	if e.serverCloses == nil {
		e.serverCloses = make(map[int]int64)
	}
	e.serverCloses[e.global(k)] = now
	e.mu.Unlock()
}

// Upstream sends request ops on this worker's open connections,
// round-robin, at rate per second for d, each {"op":"request","channel":
// <UpstreamChannel>,"ref":N,"data":{"seq":N,"ts":T}} with T the time of
// the write (unix ns). It returns how many it wrote whole; the replies
// come to the readers.
func (e *Engine) Upstream(rate float64, d time.Duration) int64 {
	var ks []int32
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		if c.state == stateOpen {
			ks = append(ks, int32(k))
		}
		c.mu.Unlock()
	}
	if len(ks) == 0 || rate <= 0 {
		return 0
	}
	n := int(math.Round(rate * d.Seconds()))
	var body, frame []byte
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if w := time.Until(due); w > time.Millisecond {
			time.Sleep(w)
		}
		c := &e.conns[ks[i%len(ks)]]
		c.mu.Lock()
		ok := c.state == stateOpen
		if ok {
			now := time.Now().UnixNano()
			body = e.appendRequest(body[:0], int64(i+1), now)
			frame = appendClientFrame(frame[:0], ws.OpText, body)
			w, err := rawio.Write(c.rc, frame)
			ok = err == nil && w == len(frame)
			if ok {
				atomicMin(&e.upFirst, now)
				atomicMax(&e.upLast, now)
			}
		}
		c.mu.Unlock()
		if ok {
			e.upSent.Add(1)
		} else {
			e.upFailed.Add(1)
		}
	}
	return e.upSent.Load()
}

// appendRequest appends the request op with ref and seq n, sent at ts.
func (e *Engine) appendRequest(dst []byte, n, ts int64) []byte {
	dst = append(dst, `{"op":"request","channel":"`...)
	dst = append(dst, e.cfg.UpstreamChannel...)
	dst = append(dst, `","ref":`...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, `,"data":{"seq":`...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, `}}`...)
}

// onUpstream handles a text frame of the upstream scenario: a reply is
// counted as delivered with its latency, an error by its code. r.mu is
// held.
func (r *reader) onUpstream(p []byte, frameLen int, now int64) {
	switch {
	case bytes.HasPrefix(p, typeReply):
		i := bytes.Index(p, keyData)
		if i < 0 {
			break
		}
		ts, ok := numberAfter(p[i:], keyTS)
		if !ok {
			r.e.unsequenced.Add(1)
			return
		}
		hist.Record(r.hist, (now-ts)/1000)
		r.lastDelivery = now
		r.frameBytes += int64(frameLen)
		r.delivered.Add(1)
	case bytes.HasPrefix(p, typeError):
		code := "unknown"
		if i := bytes.Index(p, keyCode); i >= 0 {
			rest := p[i+len(keyCode):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				code = string(rest[:j])
			}
		}
		if r.upErrors == nil {
			r.upErrors = make(map[string]int64)
		}
		r.upErrors[code]++
	}
}

// upstreamTotals sums the readers' upstream errors with the sends; nil
// outside upstream.
func (e *Engine) upstreamTotals() *UpstreamTotals {
	if e.cfg.Scenario != config.ScenarioUpstream {
		return nil
	}
	t := &UpstreamTotals{Sent: e.upSent.Load(), WriteFailed: e.upFailed.Load(), Errors: map[string]int64{},
		FirstSendNS: e.upFirst.Load(), LastSendNS: e.upLast.Load()}
	for _, r := range e.readers {
		r.mu.Lock()
		for k, v := range r.upErrors {
			t.Errors[k] += v
		}
		r.mu.Unlock()
	}
	return t
}
