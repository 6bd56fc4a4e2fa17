package engine

import "github.com/wsgate/wsgate/bench/internal/config"

// seqWindow is how far below the highest sequence number seen a duplicate
// can still be told from a late (reordered) first arrival.
const seqWindow = 64

// seqState tracks the sequence numbers one connection received on its one
// channel (see the package documentation for the exact rules). It is 32
// bytes.
type seqState struct {
	window uint64 // bit i set: seq last-1-i was received
	last   uint32 // highest seq received; 0 before the first
	first  uint32 // lowest seq received
	recv   uint32 // distinct seqs received
	dup    uint32 // duplicates
	reord  uint32 // first arrivals below a higher seq already received
	_      uint32
}

// add records the arrival of seq (seq ≥ 1).
func (s *seqState) add(seq uint32) {
	switch {
	case s.recv == 0:
		s.last, s.first, s.recv, s.window = seq, seq, 1, 0
	case seq > s.last:
		shift := seq - s.last
		// Go defines shifts by ≥ 64 as 0: a jump past the window clears it.
		s.window = s.window<<shift | 1<<(shift-1)
		s.last = seq
		s.recv++
	case seq == s.last:
		s.dup++
	default:
		d := s.last - seq - 1
		switch {
		case d >= seqWindow:
			s.reord++ // too old to tell: counted as a late first arrival
			s.recv++
		case s.window&(1<<d) != 0:
			s.dup++
		default:
			s.window |= 1 << d
			s.reord++
			s.recv++
		}
		if seq < s.first {
			s.first = seq
		}
	}
}

// gaps is the number of seqs between the lowest and highest received that
// never arrived: the losses of a connection whose expected range is not
// known (churn).
func (s *seqState) gaps() uint32 {
	if s.recv == 0 {
		return 0
	}
	span := s.last - s.first + 1
	if s.recv >= span {
		return 0
	}
	return span - s.recv
}

// SeqTotals sums the sequence accounting over connections.
type SeqTotals struct {
	Expected   int64 `json:"expected"`
	Received   int64 `json:"received"` // distinct
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	Reordered  int64 `json:"reordered"`
}

// addKnown folds s for a connection that should have received seqs
// 1..expected: lost is what is missing of them. Seqs above expected are
// not counted as received.
func (t *SeqTotals) addKnown(s *seqState, expected uint32) {
	recv := s.recv
	if recv > expected {
		recv = expected
	}
	t.Expected += int64(expected)
	t.Received += int64(recv)
	t.Lost += int64(expected - recv)
	t.Duplicated += int64(s.dup)
	t.Reordered += int64(s.reord)
}

// addGaps folds s for a connection whose expected range is what it
// spanned (churn): lost is the gaps inside that range.
func (t *SeqTotals) addGaps(s *seqState) {
	g := s.gaps()
	t.Expected += int64(s.recv + g)
	t.Received += int64(s.recv)
	t.Lost += int64(g)
	t.Duplicated += int64(s.dup)
	t.Reordered += int64(s.reord)
}

// Merge adds o to t.
func (t *SeqTotals) Merge(o SeqTotals) {
	t.Expected += o.Expected
	t.Received += o.Received
	t.Lost += o.Lost
	t.Duplicated += o.Duplicated
	t.Reordered += o.Reordered
}

// Expectation is how many messages each channel was sent: seqs 1..n.
type Expectation struct {
	Broadcast uint32   `json:"broadcast,omitempty"`
	Topics    []uint32 `json:"topics,omitempty"` // by topic index
	Users     []uint32 `json:"users,omitempty"`  // by connection index
	// Durable is, by connection index, the stream sequences the
	// publisher got acked for the connection's user while it was cut
	// (resume), in order.
	Durable [][]uint64 `json:"durable,omitempty"`
}

// of returns the number of messages published to the channel of conn g.
func (x *Expectation) of(cfg *config.Config, g int) uint32 {
	switch cfg.Scenario {
	case config.ScenarioTopic:
		if t := g % cfg.Topics; t < len(x.Topics) {
			return x.Topics[t]
		}
		return 0
	case config.ScenarioUnicast, config.ScenarioResume, config.ScenarioScale:
		if g < len(x.Users) {
			return x.Users[g]
		}
		return 0
	}
	return x.Broadcast
}
