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

func (rs *resumer) queueRead(r ...*replay) {
	if len(r) == 0 {
		return
	}
	rs.mu.Lock()
	if rs.closed {
		rs.mu.Unlock()
		return
	}
	rs.reads = append(rs.reads, r...)
	rs.mu.Unlock()
	if len(r) == 1 {
		rs.readers.Signal()
	} else {
		rs.readers.Broadcast()
	}
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
		if group := rs.takeGroup(r); group != nil {
			rs.stepGroup(group)
			continue
		}
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
			frames = append(frames, replayFrame{seq, r.frame(seq, prev, data)})
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
	written, werr := rs.writeLocked(r, frames)
	if len(frames) == 0 && more == 0 && r.next <= r.anchor {
		r.next = r.anchor + 1
	}
	end := werr != nil || written == len(frames) && more == 0 || r.sent >= s.cfg.ReplayLimit
	// Cut by the limit, the live frames held would follow a gap: the
	// client resumes from r.last for the rest, and gets them then.
	rs.afterWrite(r, written, werr, end, r.sent >= s.cfg.ReplayLimit && (more > 0 || written < len(frames)))
}

// frame builds the replayed frame of notification seq for r's connection,
// compressed when it negotiated permessage-deflate and the frame is big
// enough.
func (r *replay) frame(seq, prev uint64, data []byte) []byte {
	s := r.c.srv
	frame, body := wire.MessageFrame(r.channel, data, wire.Position{Seq: seq, Prev: prev, Epoch: r.curEpoch})
	if r.c.deflate && len(frame) >= s.cfg.CompressThreshold {
		if z := wire.Compress(ws.OpText, body); z != nil {
			frame = z
		}
	}
	return frame
}

// writeLocked writes r's answer, once, and then frames until the client's
// write queue is over half its limit, and returns how many frames it
// wrote. r.c.wmu must be held.
func (rs *resumer) writeLocked(r *replay, frames []replayFrame) (written int, err error) {
	c := r.c
	err = rs.answerLocked(r)
	for _, f := range frames {
		if err != nil || written > 0 && c.wq != nil && c.wq.bytes > rs.s.cfg.WriteQueueLimit/2 {
			break
		}
		err = c.writeLocked(f.frame, false)
		r.last, r.next = f.seq, f.seq+1
		written++
	}
	r.sent += written
	return written, err
}

// afterWrite ends r (dropping the live frames held when drop says they
// would follow a gap) or queues its next step, and unlocks r.c.wmu.
func (rs *resumer) afterWrite(r *replay, written int, werr error, end, drop bool) {
	s, c := rs.s, r.c
	if end && werr == nil {
		werr = c.endReplay(r, drop)
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

// A reconnect storm makes many replays of ranges that overlap: each
// replay's read (next_by_subj) makes JetStream step through every message
// stored after its position, whatever the channel, so a thousand replays
// of the last ten seconds step through the last ten seconds a thousand
// times. When at least groupMin replays that have not been read yet wait
// for a reader, one reader takes them all and reads their range once
// (History.Scan, every channel), routing each notification to the replays
// of its channel; a replay that cannot finish within the group goes on
// alone from where the group left it.
const (
	groupMin       = 16
	groupMax       = 4096
	groupScanBatch = 1000
	groupMaxBytes  = 32 << 20 // frames a group holds before it stops reading
)

// groupMember is what a group read gathered for one replay, before it is
// written.
type groupMember struct {
	r        *replay
	frames   []replayFrame
	prev     uint64 // the seq of the last frame gathered (the anchor before)
	found    bool   // the anchor was seen: nothing after it was evicted
	seen     bool   // a notification of the channel was seen
	cut      bool   // more than ReplayLimit: frames stop at the limit
	complete bool   // the read went past r.target
}

// takeGroup returns r with the other replays waiting for a reader that
// have not been read yet, when there are enough of them to read together,
// taking them out of the queue; nil otherwise.
func (rs *resumer) takeGroup(r *replay) []*replay {
	if r.firstRead {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	fresh := 0
	for _, x := range rs.reads {
		if !x.firstRead {
			fresh++
		}
	}
	if fresh+1 < groupMin {
		return nil
	}
	group := []*replay{r}
	rest := rs.reads[:0]
	for _, x := range rs.reads {
		if !x.firstRead && len(group) < groupMax {
			group = append(group, x)
		} else {
			rest = append(rest, x)
		}
	}
	clear(rs.reads[len(rest):])
	rs.reads = rest
	return group
}

// stepGroup reads the range of group once and writes each member what it
// gathered, as step would have: the answer, then the frames, paced.
func (rs *resumer) stepGroup(group []*replay) {
	s := rs.s
	members := make([]*groupMember, len(group))
	byChannel := make(map[string][]*groupMember, len(group))
	from, to := group[0].next, group[0].target
	for i, r := range group {
		m := &groupMember{r: r, prev: r.last}
		members[i] = m
		byChannel[r.channel] = append(byChannel[r.channel], m)
		from, to = min(from, r.next), max(to, r.target)
	}
	held := 0 // bytes of frames gathered
	next := from
	for next <= to && held < groupMaxBytes {
		ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
		n := 0
		var more uint64
		err := s.historyCall(historyScan, func() (err error) {
			more, err = rs.h.Scan(ctx, next, groupScanBatch, func(ch string, seq uint64, data []byte) {
				n++
				next = seq + 1
				for _, m := range byChannel[ch] {
					held += m.gather(s, seq, data)
				}
			})
			return err
		})
		cancel()
		if err != nil {
			for _, r := range group {
				rs.fail(r, err)
			}
			return
		}
		if n == 0 || more == 0 {
			next = max(next, to+1) // the stream holds nothing more
			break
		}
	}
	for _, m := range members {
		m.complete = m.complete || next > m.r.target
		rs.finishGroupMember(m)
	}
}

// gather takes notification seq of the member's channel, and returns the
// bytes it kept.
func (m *groupMember) gather(s *Server, seq uint64, data []byte) int {
	r := m.r
	if seq < r.next || seq > r.target || m.cut {
		return 0
	}
	if !m.seen {
		m.seen = true
		if r.verify && seq == r.anchor {
			m.found = true
			return 0 // the position itself: present
		}
	}
	if len(m.frames) == s.cfg.ReplayLimit-r.sent {
		m.cut = true
		return 0
	}
	frame := r.frame(seq, m.prev, data)
	m.frames = append(m.frames, replayFrame{seq, frame})
	m.prev = seq
	return len(frame)
}

// finishGroupMember writes what the group gathered for m.r, or, when the
// group stopped short of its target, hands it back to be read alone.
func (rs *resumer) finishGroupMember(m *groupMember) {
	r := m.r
	if !m.complete && !m.cut {
		rs.queueRead(r) // untouched: read alone, as if the group had not been
		return
	}
	r.firstRead = true
	if r.verify && !m.found && r.reason == "" {
		r.reason = lostEvicted
	}
	r.verify = false
	if m.cut {
		r.cut = true
		if r.reason == "" {
			r.reason = lostLimit
		}
	}
	c := r.c
	c.wmu.Lock()
	if r.done || c.state.Load() != stateOpen {
		c.wmu.Unlock()
		return
	}
	written, werr := rs.writeLocked(r, m.frames)
	// Past the target, what came was held live; cut, it would follow a
	// gap. Not all written, the client is behind: the rest alone, paced.
	rs.afterWrite(r, written, werr, werr != nil || written == len(m.frames), m.cut)
}
