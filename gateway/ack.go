package gateway

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/wire"
)

// Acks: a client acks the last durable notification it has processed on a
// channel, cumulatively:
//
//	{"op":"ack","channel":"user.42","seq":17,"epoch":1764650000000}
//
// The gateway keeps one acked watermark per user and channel in the
// History, so that a device that resumes without a position of its own (a
// new one, or one that lost its storage) starts after what the user has
// acked. Acks are merged in memory and written every AckInterval, one
// write per user and channel whatever the number of acks; an ack is not
// answered unless it is refused. A gateway that dies loses at most an
// interval of acks: their notifications are delivered again, never lost.

// ackKey names one watermark.
type ackKey struct {
	user, channel string
}

// acker merges acks and writes them.
type acker struct {
	s *Server
	h History

	mu      sync.Mutex
	pending map[ackKey]wire.Position // the newest ack of each key since the last write
}

func newAcker(s *Server, h History) *acker {
	return &acker{s: s, h: h, pending: make(map[ackKey]wire.Position)}
}

// ack records an ack. A watermark only moves forward within an epoch; an
// ack from a newer epoch replaces one from an older.
func (a *acker) ack(user, ch string, m wire.Position) {
	k := ackKey{user, ch}
	a.mu.Lock()
	if p, ok := a.pending[k]; !ok || p.Epoch != m.Epoch || p.Seq < m.Seq {
		a.pending[k] = m
	}
	a.mu.Unlock()
}

// unwritten returns the ack not yet written for user on ch, or zero.
func (a *acker) unwritten(user, ch string) wire.Position {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending[ackKey{user, ch}]
}

// run writes the merged acks every AckInterval until Server.Close, and
// once more then.
func (a *acker) run() {
	defer a.s.wg.Done()
	t := time.NewTicker(a.s.cfg.AckInterval)
	defer t.Stop()
	for {
		select {
		case <-a.s.done:
			a.flush()
			return
		case <-t.C:
			a.flush()
		}
	}
}

// flush writes every pending ack. An ack beyond the channel's last stored
// sequence (a client acking the future) is lowered to it, so that it
// cannot hide notifications stored later. A write that fails is kept for
// the next flush unless a newer ack replaced it.
func (a *acker) flush() {
	a.mu.Lock()
	if len(a.pending) == 0 {
		a.mu.Unlock()
		return
	}
	all := a.pending
	a.pending = make(map[ackKey]wire.Position, len(all))
	a.mu.Unlock()

	keys := make([]ackKey, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	for len(keys) > 0 {
		n := min(len(keys), maxBatch)
		a.write(keys[:n], all)
		keys = keys[n:]
	}
}

// write writes the marks of keys: one request for the channels' last
// sequences, then one put per mark.
func (a *acker) write(keys []ackKey, all map[ackKey]wire.Position) {
	s := a.s
	channels := make([]string, len(keys))
	last := make([]uint64, len(keys))
	for i, k := range keys {
		channels[i] = k.channel
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	defer cancel()
	err := s.historyCall(historyLast, func() error { return a.h.Last(ctx, channels, last) })
	for i, k := range keys {
		m := all[k]
		if err == nil {
			if m.Epoch != a.h.Epoch() || last[i] == 0 {
				continue // a stale epoch, or nothing stored to ack
			}
			m.Seq = min(m.Seq, last[i])
			err = s.historyCall(historyPutMark, func() error { return a.h.PutMark(ctx, k.user, k.channel, m) })
			if err == nil {
				s.metrics.marksWritten.Inc()
				continue
			}
		}
		a.ack(k.user, k.channel, m) // again at the next flush
	}
	if err != nil {
		if ok, held := s.historyErrs.Allow(); ok {
			s.log.Warn("acked watermarks not written; retrying", zap.Int("marks", len(keys)), zap.Error(err), zap.Int("suppressed", held))
		}
	}
}

// requestAck records an ack of op.Channel up to op.Seq.
func (c *Conn) requestAck(op clientOp) {
	c.wmu.Lock()
	code, msg := c.checkPosition(op.Channel, op.Seq, op.Epoch)
	user := c.user
	c.wmu.Unlock()
	switch {
	case code != "":
	case op.Seq == 0:
		code, msg = codeBadRequest, "an ack needs the seq and epoch of the last notification processed"
	case op.Epoch != c.srv.history.Epoch():
		code, msg = codeStaleEpoch, "the position is from another epoch of the stream; resume the channel"
	}
	if code != "" {
		c.write(errorFrame(op.Ref, code, msg))
		return
	}
	c.srv.metrics.acks.Inc()
	c.srv.acks.ack(user, op.Channel, wire.Position{Seq: op.Seq, Epoch: op.Epoch})
}
