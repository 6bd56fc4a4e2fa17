package bus

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wsgate/wsgate/internal/channel"
)

// numShards is the number of independently locked parts of the channel map.
// 64 keeps lock contention low for the 2 dispatchers plus every pool worker
// that registers or closes a connection, for 4 KiB of shards.
const numShards = 64

// shard is one part of the channel map. It fills a cache line so that two
// shards' locks never share one.
type shard struct {
	mu sync.Mutex
	// m maps a channel to its subscription; guarded by mu. This is all a
	// subscription costs: a map slot and the channel's name.
	m map[string]entry
	_ [64 - 16]byte
}

// entry is the bookkeeping of one subscribed channel, guarded by its shard's
// lock. It is stored by value: 16 bytes in the map's slot.
type entry struct {
	sid   uint64 // the subscription's id on the subscription connection
	refs  int32  // interests held; the entry is removed when it drops to 0
	ready bool   // a flush has confirmed the subscription on the server
}

// shard returns the index of ch's shard (FNV-1a, no allocation).
func shardOf(ch string) int {
	h := uint32(2166136261)
	for i := 0; i < len(ch); i++ {
		h ^= uint32(ch[i])
		h *= 16777619
	}
	return int(h % numShards)
}

// Interest declares that the caller needs the messages of channel. The first
// interest in a channel subscribes "<prefix>.<channel>" on NATS; later ones
// only count. Interest returns nil once the NATS server has the
// subscription, so a message published after Interest returns is delivered.
// On error (ErrInvalidName, ErrClosed, ErrSubscribeTimeout, or a NATS
// error) the interest is not held and the caller must not drop it.
//
// Concurrent Interest calls share their confirmations: one PING/PONG round
// trip confirms every subscription made before it was sent. An interest in a
// channel that is already confirmed returns at once, without NATS traffic.
func (b *Bus) Interest(ch string) error {
	if !channel.Valid(ch) {
		return fmt.Errorf("%w: %q", ErrInvalidName, ch)
	}
	sid, err := b.acquire(ch)
	if err != nil || sid == 0 {
		return err
	}
	if err := b.confirm(); err != nil {
		b.DropInterest(ch)
		if err == ErrClosed {
			return err
		}
		return fmt.Errorf("%w: channel %s", err, ch)
	}
	s := &b.shards[shardOf(ch)]
	s.mu.Lock()
	// The same subscription unless every interest was dropped meanwhile
	// (or Close removed it).
	if e, ok := s.m[ch]; ok && e.sid == sid {
		e.ready = true
		s.m[ch] = e
	}
	s.mu.Unlock()
	return nil
}

// acquire takes one reference on ch and subscribes on NATS if it is the
// first. It returns the subscription's sid when the caller must wait for a
// confirmation, 0 when the subscription is confirmed already.
//
// The shard lock is held while the SUB is queued, so a first Interest
// racing a last DropInterest of the same channel leaves exactly one
// subscription or none. The wait for the confirmation happens outside the
// lock.
func (b *Bus) acquire(ch string) (uint64, error) {
	i := shardOf(ch)
	s := &b.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	// Close sets closed before it sweeps the shards, so under this lock
	// either the sweep is still to come or closed is visible.
	if b.closed.Load() {
		return 0, ErrClosed
	}
	if e, ok := s.m[ch]; ok {
		e.refs++
		s.m[ch] = e
		// While disconnected the server does not have the subscription;
		// wait for the confirmation that follows the resubscription.
		if e.ready && b.sc.synced.Load() {
			return 0, nil
		}
		return e.sid, nil
	}
	e := entry{sid: b.sids.Add(1), refs: 1}
	ch = strings.Clone(ch) // the caller's string may be part of a larger one
	s.m[ch] = e
	b.sc.subscribed(i, ch, e.sid)
	b.subs.Add(1)
	return e.sid, nil
}

// DropInterest drops one interest in ch; the last one unsubscribes from
// NATS. Dropping an interest that is not held is a no-op. Handler may still
// receive a few messages of ch that were queued before the last one was
// dropped.
func (b *Bus) DropInterest(ch string) {
	i := shardOf(ch)
	s := &b.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[ch]
	if !ok {
		return
	}
	if e.refs--; e.refs > 0 {
		s.m[ch] = e
		return
	}
	delete(s.m, ch)
	b.subs.Add(-1)
	b.sc.unsubscribed(i, e.sid)
}

// round is one confirmation round trip shared by every Interest that joined
// it before the flusher took it.
type round struct {
	done chan struct{} // closed when err is set
	err  error
}

// confirm waits until the server has processed every subscription this
// goroutine made before calling it. It joins the open round (opening one if
// there is none) and waits for the flusher to complete it.
//
// Correctness: a caller joins a round only after its SUB is queued on the
// subscription connection (or its shard is still to be walked, and the
// connection takes no PING before the walk is done), and the flusher
// queues the round's PING only after taking the round, so the PING
// follows every SUB of the round and the server's PONG proves it has
// processed them.
func (b *Bus) confirm() error {
	b.fmu.Lock()
	r := b.next
	if r == nil {
		r = &round{done: make(chan struct{})}
		b.next = r
		select {
		case b.kick <- struct{}{}:
		default: // the flusher is already due to look
		}
	}
	b.fmu.Unlock()

	t := time.NewTimer(b.timeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.err
	case <-b.done:
		return ErrClosed
	case <-t.C:
		return ErrSubscribeTimeout
	}
}

// runFlusher completes rounds one at a time until Close. While it waits for
// one PONG, later callers gather in the next round, so N concurrent Interest
// calls cost a handful of round trips, not N.
func (b *Bus) runFlusher() {
	defer b.wg.Done()
	for {
		select {
		case <-b.kick:
		case <-b.done:
			return // waiters of an open round see done too
		}
		b.fmu.Lock()
		r := b.next
		b.next = nil
		b.fmu.Unlock()
		if r == nil {
			continue
		}
		r.err = b.flush()
		close(r.done)
	}
}

// flush makes one PING/PONG round trip on the subscription connection
// within SubscribeTimeout. A connection lost while the PING is in flight
// does not fail it: the next connection is sent every subscription before
// the PING is made again.
func (b *Bus) flush() error {
	return b.sc.flush(time.Now().Add(b.timeout))
}
