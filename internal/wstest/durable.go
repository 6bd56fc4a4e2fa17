package wstest

import (
	"fmt"
	"sync"
)

// Positions is a durable client's bookkeeping, kept the way
// docs/protocol.md tells clients to keep it, so that the tests check the
// gateway against the rule a real client follows:
//
//   - a durable frame is applied when its prev is the channel's last seq
//     (or the channel has no position yet), and the last seq becomes its
//     seq;
//   - a frame whose prev is not the last seq shows a gap: it is dropped and
//     the channel is resumed from the last seq;
//   - between a resume op and its "resumed" answer, the channel's frames
//     are dropped (the replay that follows the answer covers them), and
//     the answer's seq becomes the last seq;
//   - after a reconnect, and when the gateway says it missed notifications
//     ({"type":"missed"}), every channel with a position is resumed;
//   - a resume answered "unavailable" (JetStream, or the stream's epoch
//     just after a NATS reconnect, not known yet) is sent again.
//
// It is safe for concurrent use.
type Positions struct {
	mu       sync.Mutex
	epoch    uint64
	last     map[string]uint64
	resuming map[string]bool
	refs     map[float64]string // resume ref → its channel, until answered
	applied  map[string][]uint64
	lost     int // answers with recovered:false
}

// NewPositions returns empty bookkeeping.
func NewPositions() *Positions {
	return &Positions{last: map[string]uint64{}, resuming: map[string]bool{}, refs: map[float64]string{}, applied: map[string][]uint64{}}
}

// Resume returns the resume op for ch from its position (seq 0 in a known
// epoch included), and marks ch as resuming. A channel without a position
// resumes without one (from the user's acked watermark).
func (p *Positions) Resume(ch string, ref int) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resuming[ch] = true
	p.refs[float64(ref)] = ch
	op := map[string]any{"op": "resume", "channel": ch, "ref": ref}
	if last, ok := p.last[ch]; ok && p.epoch != 0 {
		op["seq"], op["epoch"] = last, p.epoch
	}
	return op
}

// Handle takes a frame the client read. It returns the channels to resume:
// the frame's, when it shows a gap (and the channel is not resuming
// already); for "missed", every channel with a position that is not
// resuming; for a resume answered "unavailable", that resume's channel,
// to send again. It returns an error for a frame that breaks the
// protocol's promises, and for a resume refused otherwise.
func (p *Positions) Handle(m map[string]any) (resume []string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, _ := m["channel"].(string)
	switch m["type"] {
	case "missed":
		for c := range p.last {
			if !p.resuming[c] {
				p.resuming[c] = true
				resume = append(resume, c)
			}
		}
		return resume, nil
	case "error":
		ref, _ := m["ref"].(float64)
		failed, ok := p.refs[ref]
		if !ok || ref == 0 {
			return nil, nil // not a resume's
		}
		delete(p.refs, ref)
		if m["code"] != "unavailable" {
			return nil, fmt.Errorf("%s: resume refused: %v", failed, m)
		}
		return []string{failed}, nil // resuming still: send it again
	case "resumed":
		ref, _ := m["ref"].(float64)
		delete(p.refs, ref)
		p.resuming[ch] = false
		p.last[ch] = uint64(num(m["seq"]))
		p.epoch = uint64(num(m["epoch"]))
		if m["recovered"] != true {
			p.lost++
		}
		return nil, nil
	case "message":
	default:
		return nil, nil
	}
	if _, durable := m["seq"]; !durable || p.resuming[ch] {
		return nil, nil
	}
	seq, prev := uint64(num(m["seq"])), uint64(num(m["prev"]))
	last, known := p.last[ch]
	if known && prev != last {
		p.resuming[ch] = true
		return []string{ch}, nil
	}
	if known && seq <= last {
		return nil, fmt.Errorf("%s: seq %d after %d with prev %d", ch, seq, last, prev)
	}
	p.last[ch] = seq
	// Epoch 0: the gateway is looking the stream up again (after a NATS
	// reconnect); the frame says nothing about the epoch, so the known
	// one stays, as protocol.md tells clients.
	if e := uint64(num(m["epoch"])); e != 0 {
		p.epoch = e
	}
	p.applied[ch] = append(p.applied[ch], seq)
	return nil, nil
}

// Applied returns the sequences applied on ch, in order.
func (p *Positions) Applied(ch string) []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.applied[ch]...)
}

// Unrecovered returns how many resumes were answered recovered:false.
func (p *Positions) Unrecovered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}
