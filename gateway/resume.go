package gateway

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/wire"
)

// Resume: a client that was away, or that sees a gap in a channel's prev,
// asks for what it missed on a channel it is in, from its last position:
//
//	{"op":"resume","channel":"user.42","seq":17,"epoch":1764650000000,"ref":5}
//
// and gets, in this order: the "resumed" answer, which says from which
// position the replay continues and whether nothing is missing; every
// stored notification after that position, oldest first, each frame's prev
// chained to the one before; then the live notifications, with neither gap
// nor duplicate at the seam. Without seq, the replay starts at the user's
// acked watermark (ack.go): that is offline delivery to a new device.
//
// The costs are kept off the connections that do not resume, and off the
// live path:
//   - A resume's first question, "is there anything after this position?",
//     is asked for up to MaxLastBatch channels of many connections in one
//     request (lookupLoop), so a reconnect storm with nothing missed costs
//     a request per batch, not per connection.
//   - Only a resume that has something to replay reads the stream, in
//     ReplayBatch-sized reads by ReplayReaders goroutines (replay.go). A
//     replay whose client does not read its frames waits without a reader
//     and never fills its write queue past half its limit.
//   - While a channel replays on a connection, the live durable frames of
//     that channel for that connection are held and merged by sequence
//     when the replay ends (holdLive); nobody else is affected.

// History is the stream of durable notifications and the store of acked
// watermarks; *bus.History implements it over JetStream.
type History interface {
	// Last sets last[i] to the sequence of the last notification stored
	// on channels[i], 0 for none, in one request.
	Last(ctx context.Context, channels []string, last []uint64) error
	// Read calls fn for the notifications stored on channel from sequence
	// from on (inclusive), oldest first, at most max, in one request, and
	// returns how many more follow the last one given to fn.
	Read(ctx context.Context, channel string, from uint64, max int, fn func(seq uint64, data []byte)) (more uint64, err error)
	// Scan is Read for every channel at once: the notifications from
	// sequence from on, whatever their channel.
	Scan(ctx context.Context, from uint64, max int, fn func(channel string, seq uint64, data []byte)) (more uint64, err error)
	// Epoch is the stream's epoch; 0 while it is unknown.
	Epoch() uint64
	// Marks sets out[i] to the acked watermark of users[i] on
	// channels[i] (Seq and Epoch), zero for none, in one request.
	Marks(ctx context.Context, users, channels []string, out []wire.Position) error
	// PutMark stores the acked watermark of user on channel.
	PutMark(ctx context.Context, user, channel string, m wire.Position) error
}

// maxBatch is the most channels one Last or Marks request asks about (a
// JetStream multi-get answers at most 1024).
const maxBatch = 1024

const (
	// resumeLinger and maxResumeLinger bound how long the lookup waits
	// after a resume arrives for more to batch with it, unless a full
	// batch is there sooner: in a storm, as long as the rate of resumes
	// takes to fill a batch (see linger), up to maxResumeLinger.
	resumeLinger    = 5 * time.Millisecond
	maxResumeLinger = 100 * time.Millisecond
	// historyTimeout bounds one History request.
	historyTimeout = 5 * time.Second
	// maxPosition is the largest seq or epoch a client may send: JSON
	// numbers are exact in JavaScript up to 2^53.
	maxPosition = 1 << 53
)

// Why a resume is not recovered: the "reason" of the resumed answer.
const (
	lostEvicted = "evicted" // the stream no longer holds the position resumed from
	lostEpoch   = "epoch"   // the position is from another epoch of the stream
	lostLimit   = "limit"   // more was missed than ReplayLimit
)

// replay is one resume of one channel on one connection, from the op to
// the end of its replay.
type replay struct {
	c       *Conn
	channel string
	ref     int64
	start   time.Time

	// seq and epoch are the client's position. Both 0: none, the replay
	// starts at the user's acked watermark; seq 0 in an epoch: from the
	// oldest notification stored.
	seq, epoch uint64

	// Set by the lookup, then owned by whoever runs the replay's step.
	anchor    uint64 // the position the replay continues from; frames' prev chain from it
	target    uint64 // the channel's last sequence at the lookup; later ones are held live
	last      uint64 // the seq of the last frame replayed (anchor before the first)
	next      uint64 // the sequence the next read starts at
	curEpoch  uint64 // the stream's epoch at the lookup
	verify    bool   // the next read must find anchor itself, proof that nothing after it was evicted
	reason    string // why not recovered; "" while nothing is missing
	cut       bool   // more is stored than ReplayLimit: the replay stops after it
	sent      int
	answered  bool
	firstRead bool

	// Guarded by c.wmu.
	held      [][]byte // live frames of channel that came during the replay
	heldSeq   []uint64
	heldBytes int
	done      bool
	// quiet: the resume came with the upgrade (?resume=); it is answered
	// only when something is missing.
	quiet bool
	// floor: the replay ended and stays registered as a floor, so that a
	// live frame at or below last, stored before the replay read it but
	// republished to the gateway after the replay ended, is dropped. The
	// first live frame above last removes it (republishes come in order).
	floor bool
}

// replaySet holds the replays running on connections, outside the Conn so
// that a connection that never resumes pays nothing for them: a Conn has
// only its replaying flag.
type replaySet struct {
	mu sync.Mutex // protects m; taken under a Conn's wmu, never the reverse
	m  map[*Conn][]*replay
}

// replayOf returns the replay of name running on c, or nil. c.wmu must be
// held.
func (c *Conn) replayOf(name string) *replay {
	if !c.replaying {
		return nil
	}
	set := &c.srv.replays
	set.mu.Lock()
	defer set.mu.Unlock()
	for _, r := range set.m[c] {
		if r.channel == name {
			return r
		}
	}
	return nil
}

// addReplay registers r on c. c.wmu must be held.
func (c *Conn) addReplay(r *replay) {
	set := &c.srv.replays
	set.mu.Lock()
	set.m[c] = append(set.m[c], r)
	set.mu.Unlock()
	c.replaying = true
}

// removeReplay unregisters r from c. c.wmu must be held.
func (c *Conn) removeReplay(r *replay) {
	set := &c.srv.replays
	set.mu.Lock()
	defer set.mu.Unlock()
	list := set.m[c]
	if i := slices.Index(list, r); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(set.m, c)
		c.replaying = false
		return
	}
	set.m[c] = list
}

// endReplays ends every replay of c without writing anything more: c is
// closing. c.wmu must be held.
func (c *Conn) endReplays() {
	for c.replaying {
		set := &c.srv.replays
		set.mu.Lock()
		r := set.m[c][0]
		set.mu.Unlock()
		c.endReplay(r, true)
	}
}

// isIn reports whether c receives channel name: its user channel,
// broadcast, or a topic it subscribed. c.wmu must be held.
func (c *Conn) isIn(name string) bool {
	switch {
	case name == channel.Broadcast:
		return true
	case channel.IsTopic(name):
		for _, t := range c.topics {
			if t == name {
				return true
			}
		}
		return false
	}
	return name == channel.User(c.user)
}

// checkPosition returns the error code and message that refuse a durable
// op on name with position seq/epoch, or "". c.wmu must be held.
func (c *Conn) checkPosition(name string, seq, epoch uint64) (code, msg string) {
	switch {
	case c.srv.history == nil:
		return codeNotDurable, "durable notifications are off on this gateway"
	case !channel.Valid(name):
		return codeInvalidChannel, "a channel is dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes, without wildcards"
	case !c.isIn(name):
		return codeForbidden, "only a channel this connection is in: its user channel, broadcast, or a subscribed topic"
	case seq > maxPosition || epoch > maxPosition:
		return codeBadRequest, "seq and epoch are integers below 2^53"
	case seq > 0 && epoch == 0:
		return codeBadRequest, "a seq needs the epoch it came with"
	}
	return "", ""
}

// requestResume starts a resume of op.Channel. It only registers it: the
// lookup and the replay run elsewhere, and every answer is a frame.
func (c *Conn) requestResume(op clientOp) {
	s := c.srv
	c.wmu.Lock()
	code, msg := c.checkPosition(op.Channel, op.Seq, op.Epoch)
	if r := c.replayOf(op.Channel); code == "" && r != nil {
		if r.floor {
			c.removeReplay(r) // the new resume's hold covers what the floor did
		} else {
			code, msg = codeResumePending, "a resume of this channel is already running; wait for its answer"
		}
	}
	if code != "" || c.state.Load() != stateOpen {
		c.wmu.Unlock()
		if code != "" {
			c.write(errorFrame(op.Ref, code, msg))
		}
		return
	}
	r := &replay{c: c, channel: op.Channel, ref: op.Ref, seq: op.Seq, epoch: op.Epoch, start: time.Now()}
	c.addReplay(r)
	c.wmu.Unlock()
	s.resumer.lookup(r)
}

// holdLive keeps a live durable frame of a channel that is replaying on c,
// or drops one that a finished replay already sent, and reports whether
// it did either. A connection that holds more than its write queue may is
// a slow consumer: it is closed and resumes when it reconnects. c.wmu must
// be held.
func (c *Conn) holdLive(name string, seq uint64, frame []byte) (held bool, err error) {
	r := c.replayOf(name)
	if r == nil {
		return false, nil
	}
	if r.floor {
		if seq <= r.last {
			return true, nil // replayed already
		}
		c.removeReplay(r) // past the replay: live from here on
		return false, nil
	}
	if r.heldBytes+len(frame) > c.srv.cfg.WriteQueueLimit {
		return true, errQueueFull
	}
	r.held = append(r.held, frame)
	r.heldSeq = append(r.heldSeq, seq)
	r.heldBytes += len(frame)
	return true, nil
}

// endReplay ends r on its connection: the held live frames newer than the
// replay are written, in order, and r stays as a floor (see replay.floor);
// unless drop says they would follow a gap, or that the channel is left,
// and then r goes, floor included. c.wmu must be held.
func (c *Conn) endReplay(r *replay, drop bool) error {
	if r.done {
		if drop && r.floor {
			r.floor = false
			c.removeReplay(r)
		}
		return nil
	}
	r.done = true
	held, seqs := r.held, r.heldSeq
	r.held, r.heldSeq, r.heldBytes = nil, nil, 0
	if drop || c.state.Load() != stateOpen {
		c.removeReplay(r)
		return nil
	}
	r.floor = true
	for i, frame := range held {
		if seqs[i] <= r.last {
			continue // replayed already
		}
		if err := c.writeLocked(frame, false); err != nil {
			return err
		}
		r.last = seqs[i]
	}
	return nil
}

// cancelReplay ends the replay of name on c, if one runs, without writing
// anything more: the channel was left. c.wmu must be held.
func (c *Conn) cancelReplay(name string) {
	if r := c.replayOf(name); r != nil {
		c.endReplay(r, true)
	}
}

// resumer batches the lookups of resumes and runs the replays.
type resumer struct {
	s *Server
	h History

	mu      sync.Mutex
	lookups []*replay // waiting for the batched lookup
	reads   []*replay // waiting for a reader, oldest first
	closed  bool
	wake    chan struct{} // capacity 1: wakes the lookup loop
	readers *sync.Cond    // on mu: wakes a reader
}

func newResumer(s *Server, h History) *resumer {
	rs := &resumer{s: s, h: h, wake: make(chan struct{}, 1)}
	rs.readers = sync.NewCond(&rs.mu)
	return rs
}

// start runs the lookup loop and the readers until Server.Close.
func (rs *resumer) start() {
	rs.s.wg.Add(1 + rs.s.cfg.ReplayReaders)
	go rs.lookupLoop()
	for range rs.s.cfg.ReplayReaders {
		go rs.readLoop()
	}
}

// stop wakes every reader to return; parked replays are dropped.
func (rs *resumer) stop() {
	rs.mu.Lock()
	rs.closed = true
	rs.mu.Unlock()
	rs.readers.Broadcast()
}

func (rs *resumer) lookup(r *replay) {
	rs.mu.Lock()
	rs.lookups = append(rs.lookups, r)
	rs.mu.Unlock()
	rs.signal()
}

// signal wakes the lookup loop, or leaves it a wake-up if it is busy.
func (rs *resumer) signal() {
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

// lookupLoop answers resumes in batches: it waits after the first for
// others to join it (see linger), unless a full batch is there sooner.
func (rs *resumer) lookupLoop() {
	defer rs.s.wg.Done()
	timer := time.NewTimer(0)
	<-timer.C
	var batch []*replay
	var last time.Time // when the last batch was taken
	var lastN int      // and its size
	for {
		select {
		case <-rs.s.done:
			return
		case <-rs.wake:
		}
		rs.mu.Lock()
		full := len(rs.lookups) >= maxBatch
		rs.mu.Unlock()
		if !full {
			timer.Reset(linger(lastN, time.Since(last)))
			select {
			case <-rs.s.done:
				return
			case <-timer.C:
			}
		}
		// One batch, then more only while full ones wait: what arrived
		// during a request lingers for others like the first did.
		for more := true; more; {
			rs.mu.Lock()
			n := min(len(rs.lookups), maxBatch)
			batch = append(batch[:0], rs.lookups[:n]...)
			rs.lookups = append(rs.lookups[:0], rs.lookups[n:]...)
			more = len(rs.lookups) >= maxBatch
			if len(rs.lookups) > 0 {
				rs.signal() // the rest lingers, whether or not more arrive
			}
			rs.mu.Unlock()
			if n == 0 {
				break
			}
			last, lastN = time.Now(), n
			rs.lookupBatch(batch)
			clear(batch)
		}
	}
}

// linger returns how long to wait for more resumes, given that the last
// batch had n of them and was taken since ago: as long as it takes, at the
// rate they came then, to fill a batch, within [resumeLinger,
// maxResumeLinger]. A lone resume waits resumeLinger; in a reconnect
// storm of 5,000 a second each waits up to 100 ms, and a request asks
// about 500 channels instead of 25.
func linger(n int, since time.Duration) time.Duration {
	if n <= 1 || since <= 0 || since > time.Second {
		return resumeLinger // no storm in sight
	}
	fill := time.Duration(float64(since) * float64(maxBatch) / float64(n))
	return min(max(fill, resumeLinger), maxResumeLinger)
}

// lookupBatch finds where each resume of batch starts and whether it has
// anything to replay, in at most two requests: the acked watermarks of the
// resumes without a position, and the last stored sequence of every
// channel. A resume with nothing after its position ends here.
func (rs *resumer) lookupBatch(batch []*replay) {
	epoch := rs.h.Epoch()
	if epoch == 0 {
		for _, r := range batch {
			rs.fail(r, errEpochUnknown)
		}
		return
	}
	if err := rs.startFromMarks(batch, epoch); err != nil {
		for _, r := range batch {
			rs.fail(r, err)
		}
		return
	}
	channels := make([]string, len(batch))
	last := make([]uint64, len(batch))
	for i, r := range batch {
		channels[i] = r.channel
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
	err := rs.s.historyCall(historyLast, func() error { return rs.h.Last(ctx, channels, last) })
	cancel()
	var reads []*replay
	for i, r := range batch {
		switch {
		case err != nil:
			rs.fail(r, err)
		case last[i] <= r.anchor:
			rs.finish(r) // nothing after the position
		default:
			r.target = last[i]
			reads = append(reads, r)
		}
	}
	rs.queueRead(reads...) // at once, so that a reader sees them all (takeGroup)
}

// startFromMarks sets where each resume of batch continues from: the
// client's position, or, for those without one, the user's acked
// watermark (the newer of this gateway's unwritten ack and the stored
// one). A position from another epoch is void: the replay then starts at
// the oldest stored notification, and the resume is not recovered.
func (rs *resumer) startFromMarks(batch []*replay, epoch uint64) error {
	var users, channels []string
	var need []*replay
	for _, r := range batch {
		r.curEpoch = epoch
		switch {
		case r.seq == 0 && r.epoch == 0:
			users = append(users, r.c.user)
			channels = append(channels, r.channel)
			need = append(need, r)
		case r.epoch != epoch:
			r.reason = lostEpoch
		default:
			r.anchor, r.verify = r.seq, r.seq > 0
		}
	}
	if len(need) > 0 {
		marks := make([]wire.Position, len(need))
		ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
		err := rs.s.historyCall(historyMarks, func() error { return rs.h.Marks(ctx, users, channels, marks) })
		cancel()
		if err != nil {
			return err
		}
		for i, r := range need {
			m := marks[i]
			if p := rs.s.acks.unwritten(r.c.user, r.channel); p.Epoch == epoch && (m.Epoch != epoch || p.Seq > m.Seq) {
				m = p
			}
			if m.Epoch == epoch && m.Seq > 0 {
				r.anchor, r.verify = m.Seq, true
			}
		}
	}
	for _, r := range batch {
		r.last, r.next = r.anchor, r.anchor
		if !r.verify {
			r.next = r.anchor + 1
		}
	}
	return nil
}

var errEpochUnknown = errors.New("gateway: the stream's epoch is not known yet")

// fail answers r with unavailable and ends it; the client resumes again
// later. The live frames held meanwhile are dropped: they would follow a
// gap, and the next resume brings them.
func (rs *resumer) fail(r *replay, err error) {
	s := rs.s
	s.metrics.resumes[resumeFailed].Inc()
	if ok, held := s.historyErrs.Allow(); ok {
		s.log.Warn("resume failed", zap.String("channel", r.channel), zap.Error(err), zap.Int("suppressed", held))
	}
	c := r.c
	c.wmu.Lock()
	if r.done {
		c.wmu.Unlock()
		return
	}
	const msg = "durable history is unavailable; resume again later"
	frame := errorFrame(r.ref, codeUnavailable, msg)
	if r.quiet { // no ref tells which resume failed: the channel does
		frame = channelErrorFrame(r.channel, codeUnavailable, msg)
	}
	werr := c.writeLocked(frame, false)
	c.endReplay(r, true)
	c.wmu.Unlock()
	c.closeOnWriteError(werr)
}

// finish answers a resume that has nothing to replay and ends it.
func (rs *resumer) finish(r *replay) {
	c := r.c
	c.wmu.Lock()
	if r.done || c.state.Load() != stateOpen {
		c.wmu.Unlock()
		return
	}
	err := rs.answerLocked(r)
	if err == nil {
		err = c.endReplay(r, false)
	}
	c.wmu.Unlock()
	rs.s.metrics.replaySeconds.Observe(time.Since(r.start).Seconds())
	c.closeOnWriteError(err)
}

// answerLocked writes the resumed answer once. c.wmu must be held.
func (rs *resumer) answerLocked(r *replay) error {
	if r.answered {
		return nil
	}
	r.answered = true
	if r.reason == "" {
		rs.s.metrics.resumes[resumeRecovered].Inc()
	} else {
		rs.s.metrics.resumes[resumeUnrecovered].Inc()
	}
	if r.quiet && r.reason == "" {
		return nil // nothing missing: the frames, if any, say so themselves
	}
	count := 0
	if r.cut {
		count = rs.s.cfg.ReplayLimit
	}
	return r.c.writeLocked(resumedFrame(r.channel, r.ref, r.anchor, r.curEpoch, r.reason, count), false)
}

// resumedFrame builds {"type":"resumed","channel":ch,"ref":ref,
// "recovered":bool,"seq":from,"epoch":epoch[,"reason":why][,"count":n]};
// count, when not 0, is how many frames the replay stops after.
func resumedFrame(ch string, ref int64, from, epoch uint64, reason string, count int) []byte {
	return textFrame(160+len(ch), func(b []byte) []byte {
		b = append(b, `{"type":"resumed","channel":"`...)
		b = append(b, ch...)
		b = append(b, `","ref":`...)
		b = strconv.AppendInt(b, ref, 10)
		b = append(b, `,"recovered":`...)
		if reason == "" {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, from, 10)
		b = append(b, `,"epoch":`...)
		b = strconv.AppendUint(b, epoch, 10)
		if reason != "" {
			b = append(b, `,"reason":"`...)
			b = append(b, reason...)
			b = append(b, '"')
		}
		if count > 0 {
			b = append(b, `,"count":`...)
			b = strconv.AppendInt(b, int64(count), 10)
		}
		return append(b, '}')
	})
}

// historyKind is a kind of History request: the kind label of
// wsgate_history_requests_total.
type historyKind uint8

const (
	historyLast historyKind = iota
	historyRead
	historyScan
	historyMarks
	historyPutMark

	numHistoryKinds = iota
)

var historyKindLabels = [numHistoryKinds]string{
	historyLast:    "last",
	historyRead:    "read",
	historyScan:    "scan",
	historyMarks:   "marks",
	historyPutMark: "put_mark",
}

// String returns the kind's metric label, e.g. "read".
func (k historyKind) String() string { return historyKindLabels[k] }

// historyCall makes one History request and counts it, and its failure.
func (s *Server) historyCall(kind historyKind, call func() error) error {
	s.metrics.historyRequests[kind].Inc()
	err := call()
	if err != nil {
		s.metrics.historyErrors[kind].Inc()
		s.historyFailure.CompareAndSwap(nil, &historyFailure{at: time.Now(), err: err.Error()})
	} else if s.historyFailure.Load() != nil {
		s.historyFailure.Store(nil)
	}
	return err
}

// resumeOutcome is how a resume ended: the outcome label of
// wsgate_resumes_total.
type resumeOutcome uint8

const (
	resumeRecovered   resumeOutcome = iota // answered recovered:true
	resumeUnrecovered                      // answered recovered:false
	resumeFailed                           // answered unavailable

	numResumeOutcomes = iota
)

var resumeOutcomeLabels = [numResumeOutcomes]string{
	resumeRecovered:   "recovered",
	resumeUnrecovered: "unrecovered",
	resumeFailed:      "failed",
}

// String returns the outcome's metric label, e.g. "recovered".
func (o resumeOutcome) String() string { return resumeOutcomeLabels[o] }

// missedFrame tells a client that the gateway may have missed durable
// notifications of any channel: resume the channels you hold positions for.
var missedFrame = textFrame(32, func(b []byte) []byte { return append(b, `{"type":"missed"}`...) })

// NotifyMissed sends {"type":"missed"} to every open connection: the bus
// was away from NATS, and the durable notifications republished meanwhile
// never reached the gateway. Clients that hold positions resume; the rest
// ignore it. Wire it to bus.Bus.OnMissed; it does nothing without a
// History.
func (s *Server) NotifyMissed() {
	if s.history == nil || s.closed.Load() {
		return
	}
	var batch []*Conn
	told := 0
	for i := 0; i < shardCount; i++ {
		batch = s.hub.appendShard(i, batch[:0])
		for _, c := range batch {
			if c.write(missedFrame) {
				told++
			}
		}
	}
	clear(batch)
	s.metrics.missed.Inc()
	s.log.Info("told clients to resume: durable notifications may have been missed while NATS was away", zap.Int("connections", told))
}
