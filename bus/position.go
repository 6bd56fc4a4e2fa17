package bus

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/lograte"
	"github.com/wsgate/wsgate/internal/wire"
)

// Position is where a durable notification sits in the stream that stored
// it: its sequence (Seq), the sequence of the previous durable
// notification on the same channel (Prev, 0 for the first the stream
// knew of), and the stream's epoch (Epoch: its creation time in unix
// milliseconds, 0 when the bus does not know it, see TrackStream). A
// volatile notification's Position is zero. It is the position the
// gateway puts in the message frame (internal/wire).
type Position = wire.Position

// Epoch lookups after a reconnect that fail are retried after
// epochRetryMin, doubling up to epochRetryMax, until one succeeds. A lookup
// gets no answer while a cluster elects the stream's new leader (4-8 s
// after the leader's node dies, measured by TestClusterFailover); short
// tries spaced closely find the new leader soon after it exists, where 5 s
// tries a second apart left frames at epoch 0 for 6-13 s.
const (
	epochRetryMin    = 250 * time.Millisecond
	epochRetryMax    = 30 * time.Second
	epochLookupLimit = 2 * time.Second // bounds one lookup
)

// trackedStream is the stream whose epoch durable notifications carry.
type trackedStream struct {
	name  string // as its republished messages name it (Nats-Stream)
	epoch uint64 // unix milliseconds of its creation; 0 while unknown
}

// epochs is the Bus's knowledge of the tracked stream's epoch.
type epochs struct {
	cur atomic.Pointer[trackedStream] // nil until TrackStream; read per durable message

	mu  sync.Mutex // orders lookups: a stale answer never overwrites a newer one
	gen uint64     // guarded by mu: bumped by each TrackStream and reconnect

	// watch subscribes to the tracked stream's created and deleted
	// advisories; guarded by mu.
	watch *nats.Subscription

	// missed is set by a reconnect and cleared by the lookup that follows
	// it, which then calls onMissed: durable notifications republished
	// while the bus was away never reached it. Guarded by mu.
	missed   bool
	onMissed func() // set once by OnMissed, before Start

	lookupErrs lograte.Limiter
}

// position returns the position that the headers h of a republished
// message give, or the zero Position (a volatile delivery) when they give
// none or a malformed one. Called only for messages with headers: nats.go
// parses none for messages without, so volatile traffic costs nothing.
func (b *Bus) position(subject string, h nats.Header) Position {
	seqs, stream := h.Get(nats.JSSequence), h.Get(nats.JSStream)
	if seqs == "" && stream == "" {
		return Position{} // headers of a volatile publish
	}
	seq, err1 := strconv.ParseUint(seqs, 10, 64)
	prev, err2 := strconv.ParseUint(h.Get(nats.JSLastSequence), 10, 64)
	if err1 != nil || err2 != nil || seq == 0 || prev >= seq {
		b.badPositions.Add(1)
		if ok, held := b.badHeaders.Allow(); ok {
			b.log.Warn("message with malformed stream headers delivered as volatile",
				zap.String("subject", subject), zap.String("stream", stream), zap.String("sequence", seqs),
				zap.String("last_sequence", h.Get(nats.JSLastSequence)), zap.Int("suppressed", held))
		}
		return Position{}
	}
	pos := Position{Seq: seq, Prev: prev}
	if t := b.epochs.cur.Load(); t != nil && t.name == stream {
		pos.Epoch = t.epoch
	}
	return pos
}

// BadPositions returns how many messages carried stream headers that did
// not make a position (a sequence that is not a positive number, a
// previous sequence not below it) and were delivered as volatile.
func (b *Bus) BadPositions() uint64 { return b.badPositions.Load() }

// TrackStream makes the bus stamp the durable notifications that stream
// name ("" means "NOTIFY") republishes with the stream's epoch: it looks
// the stream up now, within ctx, and again each time the connection is
// re-established, since the stream may have been deleted and created
// again (its sequences restarting) while the bus was away. Until a lookup
// has succeeded, and from a reconnect until the next one has, the epoch
// is 0: unknown. A failed lookup is returned (ErrNoStreamNamed,
// ErrJetStreamUnavailable) and retried in the background, every second
// at first, then at most every 30 seconds, until one succeeds or Close.
// Calling TrackStream again looks up again; the last call's name wins.
// The bus also follows JetStream's advisories about the stream: deleted,
// the epoch becomes 0 at once; created again, it is looked up at once, so
// a stream recreated while the bus stays connected is noticed too.
func (b *Bus) TrackStream(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	if name == "" {
		name = DefaultStreamName
	}
	if err := b.watchStream(name); err != nil {
		return nil, err
	}
	gen := b.forgetEpoch(name)
	info, err := b.lookupEpoch(ctx, gen, name)
	if err != nil {
		b.retryEpoch(gen, name, epochRetryMin)
	}
	return info, err
}

// Epoch returns the epoch of the tracked stream (see TrackStream): its
// creation time in unix milliseconds, 0 when unknown.
func (b *Bus) Epoch() uint64 {
	if t := b.epochs.cur.Load(); t != nil {
		return t.epoch
	}
	return 0
}

// forgetEpoch marks the epoch of stream name unknown and returns the
// generation of the lookup that may set it again.
func (b *Bus) forgetEpoch(name string) uint64 {
	e := &b.epochs
	e.mu.Lock()
	defer e.mu.Unlock()
	e.gen++
	e.cur.Store(&trackedStream{name: name})
	return e.gen
}

// lookupEpoch looks stream name up and, unless a newer lookup has begun
// since generation gen, records its epoch.
func (b *Bus) lookupEpoch(ctx context.Context, gen uint64, name string) (*jetstream.StreamInfo, error) {
	info, err := StreamInfo(ctx, b.nc, name)
	if err != nil {
		return nil, err
	}
	e := &b.epochs
	e.mu.Lock()
	if e.gen != gen {
		e.mu.Unlock()
		return info, nil
	}
	e.cur.Store(&trackedStream{name: name, epoch: uint64(info.Created.UnixMilli())})
	b.log.Info("stream epoch", zap.String("stream", name), zap.Uint64("epoch", uint64(info.Created.UnixMilli())))
	var missed func()
	if e.missed {
		e.missed, missed = false, e.onMissed
	}
	e.mu.Unlock()
	if missed != nil {
		missed()
	}
	return info, nil
}

// OnMissed registers fn, called after the bus reconnected to NATS, once the
// tracked stream's epoch is known again: the durable notifications the
// stream republished while the bus was away never reached it, and clients
// that hold positions should resume. Call it before Start. fn runs on the
// goroutine of the lookup (the bus's own after a reconnect) and should not
// block for long.
func (b *Bus) OnMissed(fn func()) {
	b.epochs.mu.Lock()
	b.epochs.onMissed = fn
	b.epochs.mu.Unlock()
}

// watchStream subscribes to the advisories JetStream publishes when
// stream name is created or deleted (replacing a previous stream's), and
// looks the epoch up again on each.
func (b *Bus) watchStream(name string) error {
	e := &b.epochs
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.watch != nil {
		if e.watch.Subject == advisorySubject(name) {
			return nil
		}
		e.watch.Unsubscribe()
		e.watch = nil
	}
	sub, err := b.nc.Subscribe(advisorySubject(name), func(m *nats.Msg) {
		var wait time.Duration
		switch m.Subject {
		case advisoryPrefix + "CREATED." + name:
			wait = 0 // look it up now
		case advisoryPrefix + "DELETED." + name:
			wait = epochRetryMin // unknown until it is back
		default:
			return // updated: the epoch stays
		}
		b.log.Info("stream advisory", zap.String("subject", m.Subject))
		b.retryEpoch(b.forgetEpoch(name), name, wait)
	})
	if err != nil {
		return &opError{"stream " + name, err}
	}
	e.watch = sub
	return nil
}

// advisoryPrefix starts the subjects of JetStream's stream advisories:
// advisoryPrefix + "CREATED." + name, and DELETED and UPDATED likewise.
const advisoryPrefix = "$JS.EVENT.ADVISORY.STREAM."

// advisorySubject matches every advisory about stream name.
func advisorySubject(name string) string {
	return advisoryPrefix + "*." + name
}

// reconnected forgets the tracked stream's epoch and looks it up again.
// It runs on nats.go's callback goroutine, so the lookups run on one of
// the bus's own.
func (b *Bus) reconnected() {
	t := b.epochs.cur.Load()
	if t == nil {
		return // TrackStream was never called
	}
	b.epochs.mu.Lock()
	b.epochs.missed = true
	b.epochs.mu.Unlock()
	b.retryEpoch(b.forgetEpoch(t.name), t.name, 0)
}

// retryEpoch looks stream name up in the background, the first time after
// wait, until a lookup succeeds, a newer one begins, or Close.
func (b *Bus) retryEpoch(gen uint64, name string, wait time.Duration) {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	if b.closed.Load() {
		return
	}
	// TrackStream's caller has the first error; a reconnect's is logged.
	level := zap.DebugLevel
	if wait == 0 {
		level = zap.WarnLevel
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			select {
			case <-b.done:
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(context.Background(), epochLookupLimit)
			_, err := b.lookupEpoch(ctx, gen, name)
			cancel()
			if err == nil || b.staleEpoch(gen) {
				return
			}
			if ce := b.log.Check(level, "stream epoch unknown: durable notifications carry epoch 0 until the stream can be looked up"); ce != nil {
				if ok, held := b.epochs.lookupErrs.Allow(); ok {
					ce.Write(zap.String("stream", name), zap.Error(err), zap.Int("suppressed", held))
				}
			}
			level = zap.DebugLevel // said once; a gateway without the stream retries quietly
			wait = min(max(2*wait, epochRetryMin), epochRetryMax)
		}
	}()
}

// staleEpoch reports whether a lookup newer than generation gen has begun.
func (b *Bus) staleEpoch(gen uint64) bool {
	b.epochs.mu.Lock()
	defer b.epochs.mu.Unlock()
	return b.epochs.gen != gen
}
