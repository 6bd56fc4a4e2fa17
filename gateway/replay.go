package gateway

import (
	"context"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wire"
)

// A replay reads the stream in steps of at most ReplayBatch notifications.
// After each step it goes to the back of the queue, so ReplayReaders
// goroutines share their time between every running replay, and a
// reconnect storm slows each replay down instead of starving anyone: live
// traffic runs on the pool, never on a reader. A replay whose connection
// has more than half its WriteQueueLimit waiting is parked for replayPause
// without a reader, so a replay never makes its own client a slow consumer.

// replayPause is how long a replay whose client has not read what it was
// sent waits before it looks again.
const replayPause = 20 * time.Millisecond

// replayFrame is one notification read for a replay, framed for its
// connection.
type replayFrame struct {
	seq   uint64
	frame []byte
}

func (rs *resumer) queueRead(r *replay) {
	rs.mu.Lock()
	if rs.closed {
		rs.mu.Unlock()
		return
	}
	rs.reads = append(rs.reads, r)
	rs.mu.Unlock()
	rs.readers.Signal()
}

// takeRead waits for a replay to step, or returns nil once stopped.
func (rs *resumer) takeRead() *replay {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for len(rs.reads) == 0 && !rs.closed {
		rs.readers.Wait()
	}
	if rs.closed {
		return nil
	}
	r := rs.reads[0]
	rs.reads[0] = nil
	rs.reads = rs.reads[1:]
	return r
}

func (rs *resumer) readLoop() {
	defer rs.s.wg.Done()
	for r := rs.takeRead(); r != nil; r = rs.takeRead() {
		rs.step(r)
	}
}

// step reads and writes the next part of r, then requeues it, parks it
// while its client catches up, or ends it.
func (rs *resumer) step(r *replay) {
	s, c := rs.s, r.c
	c.wmu.Lock()
	behind := c.wq != nil && c.wq.bytes > s.cfg.WriteQueueLimit/2
	gone := r.done || c.state.Load() != stateOpen
	c.wmu.Unlock()
	if gone {
		return
	}
	if behind {
		time.AfterFunc(replayPause, func() { rs.queueRead(r) })
		return
	}

	want := min(s.cfg.ReplayBatch, s.cfg.ReplayLimit-r.sent)
	if r.verify {
		want++ // the anchor itself comes first
	}
	room := s.cfg.ReplayLimit - r.sent
	frames := make([]replayFrame, 0, want)
	var over uint64 // read beyond room: the anchor was not found
	verify, prev := r.verify, r.last
	deflate := c.deflate
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	var more uint64
	err := s.historyCall(historyRead, func() (err error) {
		more, err = rs.h.Read(ctx, r.channel, r.next, want, func(seq uint64, data []byte) {
			if verify {
				verify = false
				if seq == r.anchor {
					return // the position is still stored: nothing after it was evicted
				}
				r.reason = lostEvicted
			}
			if len(frames) == room {
				over++
				return
			}
			frame, body := wire.MessageFrame(r.channel, data, wire.Position{Seq: seq, Prev: prev, Epoch: r.curEpoch})
			if deflate && len(frame) >= s.cfg.CompressThreshold {
				if z := wire.Compress(ws.OpText, body); z != nil {
					frame = z
				}
			}
			frames = append(frames, replayFrame{seq, frame})
			prev = seq
		})
		return err
	})
	cancel()
	if err != nil {
		rs.fail(r, err)
		return
	}
	more += over
	if verify && len(frames) == 0 && r.verify {
		// Nothing at or after the anchor: it was evicted, and so was
		// whatever the lookup saw after it.
		r.reason = lostEvicted
	}
	r.verify = false
	if !r.firstRead {
		r.firstRead = true
		if uint64(len(frames))+more > uint64(s.cfg.ReplayLimit) {
			r.cut = true
			if r.reason == "" {
				r.reason = lostLimit
			}
		}
	}

	c.wmu.Lock()
	if r.done || c.state.Load() != stateOpen {
		c.wmu.Unlock()
		return
	}
	werr := rs.answerLocked(r)
	written := 0
	for _, f := range frames {
		if werr != nil || written > 0 && c.wq != nil && c.wq.bytes > s.cfg.WriteQueueLimit/2 {
			break
		}
		werr = c.writeLocked(f.frame, false)
		r.last, r.next = f.seq, f.seq+1
		written++
	}
	r.sent += written
	if len(frames) == 0 && more == 0 && r.next <= r.anchor {
		r.next = r.anchor + 1
	}
	end := werr != nil || written == len(frames) && more == 0 || r.sent >= s.cfg.ReplayLimit
	if end && werr == nil {
		// Cut by the limit, the live frames held would follow a gap: the
		// client resumes from r.last for the rest, and gets them then.
		werr = c.endReplay(r, r.sent >= s.cfg.ReplayLimit && (more > 0 || written < len(frames)))
	} else if end {
		c.endReplay(r, true)
	}
	c.wmu.Unlock()
	s.metrics.replayed.Add(float64(written))
	c.closeOnWriteError(werr)
	if end {
		s.metrics.replaySeconds.Observe(time.Since(r.start).Seconds())
		return
	}
	rs.queueRead(r)
}
