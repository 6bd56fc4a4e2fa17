package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/lograte"
)

// DefaultAckBucket is the KV bucket of acked watermarks when
// HistoryConfig.AckBucket and AckBucketConfig.Name are empty.
const DefaultAckBucket = "NOTIFY_ACKS"

// MaxLastBatch is the most channels (or marks) one Last (or Marks) call
// may ask for: one multi_last request answers at most 1024.
const MaxLastBatch = 1024

// historyTimeout bounds a History request whose ctx has no deadline, as
// nats.go does JetStream requests.
const historyTimeout = 5 * time.Second

// HistoryConfig names what History reads. The zero value reads the
// default stream and bucket.
type HistoryConfig struct {
	Prefix    string // subject prefix, as StreamConfig.Prefix; "" means "notify"
	Stream    string // the stream of durable notifications; "" means "NOTIFY"
	AckBucket string // the KV bucket of acked watermarks; "" means "NOTIFY_ACKS"
}

// History reads what the stream of durable notifications holds, for
// replaying what a reconnecting client missed, and keeps each user's
// acked watermark per channel in a KV bucket. Its reads are JetStream
// direct gets (the stream allows them, see StreamConfig.JetStream), served
// by any replica, one request per call however many channels (see Last).
// All methods are safe for concurrent use.
type History struct {
	b        *Bus
	js       jetstream.JetStream
	stream   string // "NOTIFY"
	durable  string // "durable.notify.": a channel's subject is durable+channel
	bucket   string // "NOTIFY_ACKS"
	kvStream string // "KV_NOTIFY_ACKS"
	kvPre    string // "$KV.NOTIFY_ACKS.": a mark's subject is kvPre+user+"."+channel

	maxBytes int // of a multi_last answer; 0 means the server's max_pending; set by tests

	badMarks    atomic.Uint64 // stored marks that did not parse
	badMarksLog lograte.Limiter
}

// History returns the reader of the stream and of the ack bucket over b's
// NATS connection. It makes no request: a stream or bucket that does not
// exist yet fails the calls that need it.
func (b *Bus) History(cfg HistoryConfig) (*History, error) {
	sc, err := StreamConfig{Name: cfg.Stream, Prefix: cfg.Prefix}.JetStream()
	if err != nil {
		return nil, err
	}
	bucket := cfg.AckBucket
	if bucket == "" {
		bucket = DefaultAckBucket
	}
	if !channel.ValidToken(bucket) {
		return nil, fmt.Errorf("%w: ack bucket name %q: one token of [A-Za-z0-9_-]", ErrInvalidConfig, bucket)
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, &opError{"history " + sc.Name, err}
	}
	return &History{
		b:        b,
		js:       js,
		stream:   sc.Name,
		durable:  strings.TrimSuffix(sc.Subjects[0], ">"),
		bucket:   bucket,
		kvStream: "KV_" + bucket,
		kvPre:    "$KV." + bucket + ".",
	}, nil
}

// Epoch returns the epoch of the stream as the bus tracks it (Bus.Epoch):
// its creation time in unix milliseconds, 0 when unknown. Sequences are
// comparable only within one epoch.
func (h *History) Epoch() uint64 { return h.b.Epoch() }

// BadMarks returns how many stored marks Marks found malformed and
// reported as none.
func (h *History) BadMarks() uint64 { return h.badMarks.Load() }

// Last sets last[i] to the sequence of the last stored notification of
// channels[i] ("user.42", "topic.news", "broadcast"), 0 when the stream
// holds none, in one multi_last direct get (none at all when channels is
// empty; one more for each time the answer exceeds the server's
// max_pending bytes, 64 MiB by default). len(last) must equal len(channels), at most MaxLastBatch; a
// channel may be named twice. On error last is left in an unspecified
// state. A ctx without a deadline waits at most 5 seconds.
func (h *History) Last(ctx context.Context, channels []string, last []uint64) error {
	if err := batchSize(len(channels), len(last)); err != nil {
		return &opError{"history " + h.stream, err}
	}
	if len(channels) == 0 {
		return nil
	}
	subjects := make([]string, len(channels))
	for i, ch := range channels {
		if !channel.Valid(ch) {
			return &opError{"history " + h.stream, fmt.Errorf("%w: %q", ErrInvalidName, ch)}
		}
		subjects[i] = h.durable + ch
	}
	found, err := h.lastFor(ctx, h.stream, subjects)
	if err != nil {
		return &opError{"history " + h.stream, err}
	}
	for i, subj := range subjects {
		last[i] = found[subj].seq
	}
	return nil
}

// Read calls fn, in sequence order, for each stored notification of
// channel ch whose sequence is at least from (0 means from the oldest), at
// most limit of them, in one direct get batch request, and returns how many
// more stored notifications of the channel follow the last one given to
// fn. A batch ends early after 4,096 notifications, or at the server's
// max_pending bytes (64 MiB by default); more then says so. When nothing is stored from there, fn
// is not called and more is 0. data is valid only during the call. On
// error fn may have been called for some notifications already. A ctx
// without a deadline waits at most 5 seconds.
func (h *History) Read(ctx context.Context, ch string, from uint64, limit int, fn func(seq uint64, data []byte)) (more uint64, err error) {
	if !channel.Valid(ch) {
		return 0, &opError{"history " + h.stream, fmt.Errorf("%w: %q", ErrInvalidName, ch)}
	}
	subject := h.durable + ch
	return h.batch(ctx, "Read", from, limit, subject, func(subj string, seq uint64, data []byte) bool {
		if subj != subject {
			return false
		}
		fn(seq, data)
		return true
	})
}

// Scan calls fn, in sequence order, for each stored notification whose
// sequence is >= from (from 0 means from the oldest), whatever its
// channel, at most limit of them, in ONE direct-get batch request, and
// returns how many more are stored after the last one given to fn. It is
// the read of a range shared by many replays: the server steps through
// the stream once, where a Read per channel would step through the same
// range once per channel. data is valid only during the call.
func (h *History) Scan(ctx context.Context, from uint64, limit int, fn func(ch string, seq uint64, data []byte)) (more uint64, err error) {
	return h.batch(ctx, "Scan", from, limit, "", func(subj string, seq uint64, data []byte) bool {
		ch, ok := strings.CutPrefix(subj, h.durable)
		if ok {
			fn(ch, seq, data)
		}
		return ok
	})
}

// batch makes the direct-get batch of Read (on subject) and Scan (subject
// ""): at most limit notifications from sequence from on, each handed to
// take with its subject, which reports whether the subject is one the
// request could answer. It returns how many more follow the last one.
func (h *History) batch(ctx context.Context, what string, from uint64, limit int, subject string, take func(subj string, seq uint64, data []byte) bool) (more uint64, err error) {
	op := "history " + h.stream
	if limit <= 0 {
		return 0, &opError{op, fmt.Errorf("%w: %s of %d notifications: at least 1", ErrInvalidConfig, what, limit)}
	}
	req := directRequest{Seq: max(from, 1), NextFor: subject, Batch: min(limit, maxReadBatch)}
	var n int
	var after uint64 // the last sequence given to take
	_, err = h.directGet(ctx, h.stream, &req, req.Batch, func(m *nats.Msg, seq uint64) error {
		pending, err := strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
		subj := m.Header.Get(nats.JSSubject)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %s %q: a direct get batch needs nats-server 2.11 or later",
				errBadAnswer, numPendingHeader, m.Header.Get(numPendingHeader))
		case seq < from || seq <= after || n == req.Batch:
			return fmt.Errorf("%w: seq %d on %s after seq %d, %d of %d", errBadAnswer, seq, subj, after, n, req.Batch)
		}
		if !take(subj, seq, m.Data) {
			return fmt.Errorf("%w: seq %d on %s, not a subject asked for", errBadAnswer, seq, subj)
		}
		n, after, more = n+1, seq, pending
		return nil
	})
	if errors.Is(err, errNothing) && n == 0 {
		return 0, nil
	}
	if err != nil {
		return 0, &opError{op, h.cause(ctx, h.stream, err)}
	}
	return more, nil
}

// Marks sets out[i] to the acked watermark of users[i] on channels[i] (its
// Seq and Epoch; Prev is 0), or to the zero Position when there is none:
// never stored, deleted, purged, expired, or not parsable. It makes one
// multi_last direct get on the bucket's stream (none when users is empty;
// more as Last does). users, channels and out have the same length, at most
// MaxLastBatch. A ctx without a deadline waits at most 5 seconds.
func (h *History) Marks(ctx context.Context, users, channels []string, out []Position) error {
	op := "ack bucket " + h.bucket
	if err := batchSize(len(users), len(out)); err != nil {
		return &opError{op, err}
	}
	if err := batchSize(len(users), len(channels)); err != nil {
		return &opError{op, err}
	}
	if len(users) == 0 {
		return nil
	}
	subjects := make([]string, len(users))
	for i := range users {
		key, err := markKey(users[i], channels[i])
		if err != nil {
			return &opError{op, err}
		}
		subjects[i] = h.kvPre + key
	}
	found, err := h.lastFor(ctx, h.kvStream, subjects)
	if err != nil {
		return &opError{op, err}
	}
	for i, subj := range subjects {
		out[i] = h.mark(found[subj])
	}
	return nil
}

// mark returns the watermark that m, the last message of a key, holds.
func (h *History) mark(last lastMsg) Position {
	m := last.m
	if m == nil || m.Header.Get("KV-Operation") != "" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		return Position{} // none, or a delete, purge or limit marker
	}
	p, ok := parseMark(m.Data)
	if !ok {
		h.badMarks.Add(1)
		if ok, held := h.badMarksLog.Allow(); ok {
			h.b.log.Warn("malformed ack mark read as none", zap.String("bucket", h.bucket),
				zap.String("subject", m.Header.Get(nats.JSSubject)), zap.ByteString("value", m.Data[:min(len(m.Data), 64)]),
				zap.Int("suppressed", held))
		}
		return Position{}
	}
	return p
}

// appendMark appends the stored form of a mark, "<epoch>:<seq>" in
// decimal, to b.
func appendMark(b []byte, m Position) []byte {
	b = strconv.AppendUint(b, m.Epoch, 10)
	b = append(b, ':')
	return strconv.AppendUint(b, m.Seq, 10)
}

// parseMark reads a mark's stored form; ok is false for anything
// appendMark does not make (a sign, spaces, leading zeros included).
func parseMark(data []byte) (m Position, ok bool) {
	epoch, seq, found := strings.Cut(string(data), ":")
	e, err1 := strconv.ParseUint(epoch, 10, 64)
	s, err2 := strconv.ParseUint(seq, 10, 64)
	if !found || err1 != nil || err2 != nil || !canonical(epoch) || !canonical(seq) {
		return Position{}, false
	}
	return Position{Seq: s, Epoch: e}, true
}

// canonical reports whether a decimal number has no leading zero.
func canonical(d string) bool { return d == "0" || d[0] != '0' }

// PutMark stores m (its Epoch and Seq; Prev is ignored) as the acked
// watermark of user on channel ch, as the value "<epoch>:<seq>" of key
// "<user>.<ch>", and waits for the bucket's ack. The last writer wins. A
// ctx without a deadline waits at most 5 seconds.
func (h *History) PutMark(ctx context.Context, user, ch string, m Position) error {
	op := "ack bucket " + h.bucket
	key, err := markKey(user, ch)
	if err != nil {
		return &opError{op, err}
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	value := appendMark(nil, m)
	// A KV put is a publish on the key's subject; publishing directly
	// spares binding the bucket, a stream info request.
	if _, err := h.js.Publish(ctx, h.kvPre+key, value); err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			err = nats.ErrNoResponders // silence: JetStream or the bucket is missing
		}
		return &opError{op, h.cause(ctx, h.kvStream, err)}
	}
	return nil
}

// markKey returns the KV key of user's mark on channel ch.
func markKey(user, ch string) (string, error) {
	if !channel.ValidUser(user) || !channel.Valid(ch) {
		return "", fmt.Errorf("%w: user %q, channel %q", ErrInvalidName, user, ch)
	}
	return user + "." + ch, nil
}

// batchSize checks the sizes of the argument slices of Last and Marks.
func batchSize(n, out int) error {
	if n != out || n > MaxLastBatch {
		return fmt.Errorf("%w: %d names for %d results: as many, at most %d", ErrInvalidConfig, n, out, MaxLastBatch)
	}
	return nil
}

// lastFor returns the sequence and message of the last message of each of
// subjects that stream holds, by subject, from one multi_last direct get.
// The server ends an answer early at h.maxBytes, or its max_pending bytes
// (64 MiB by default) when 0: then lastFor asks for the rest, from where
// it stopped, up to the same sequence.
func (h *History) lastFor(ctx context.Context, stream string, subjects []string) (map[string]lastMsg, error) {
	found := make(map[string]lastMsg, len(subjects))
	req := directRequest{MultiLastFor: subjects, MaxBytes: h.maxBytes}
	for {
		var after uint64
		eob, err := h.directGet(ctx, stream, &req, len(subjects), func(m *nats.Msg, seq uint64) error {
			if seq <= after {
				return fmt.Errorf("%w: seq %d after seq %d", errBadAnswer, seq, after)
			}
			found[m.Header.Get(nats.JSSubject)] = lastMsg{seq, m}
			after = seq
			return nil
		})
		if errors.Is(err, errNothing) {
			return found, nil // none of subjects holds a message (from req.Seq)
		}
		if err != nil {
			return nil, h.cause(ctx, stream, err)
		}
		pending, err1 := strconv.ParseUint(eob.Get(numPendingHeader), 10, 64)
		upTo, err2 := strconv.ParseUint(eob.Get(upToSeqHeader), 10, 64)
		switch {
		case err1 != nil || err2 != nil:
			return nil, fmt.Errorf("%w: end of batch: %s %q, %s %q", errBadAnswer,
				numPendingHeader, eob.Get(numPendingHeader), upToSeqHeader, eob.Get(upToSeqHeader))
		case pending == 0:
			return found, nil
		case after == 0:
			return nil, fmt.Errorf("%w: %d more and none sent", errBadAnswer, pending)
		}
		req.Seq, req.UpToSeq = after+1, upTo
	}
}

// lastMsg is the last message of a subject.
type lastMsg struct {
	seq uint64
	m   *nats.Msg
}

// directRequest is the body of a JetStream direct get request (the
// server's JSApiMsgGetRequest): a batch of the messages of NextFor from
// Seq, or the last message of each of MultiLastFor.
type directRequest struct {
	Seq          uint64   `json:"seq,omitempty"`
	NextFor      string   `json:"next_by_subj,omitempty"`
	Batch        int      `json:"batch,omitempty"`
	MultiLastFor []string `json:"multi_last,omitempty"`
	UpToSeq      uint64   `json:"up_to_seq,omitempty"`
	MaxBytes     int      `json:"max_bytes,omitempty"`
}

// maxReadBatch bounds the batch of one Read, and so the channel that
// receives it: 32 KiB.
const maxReadBatch = 4096

// Headers of a direct get answer besides nats.go's JS* ones.
const (
	numPendingHeader = "Nats-Num-Pending"   // how many more messages match after this one
	upToSeqHeader    = "Nats-UpTo-Sequence" // the stream sequence a multi_last answer covers
)

var (
	// errNothing is a direct get's "404": no message matches.
	errNothing = errors.New("no message")

	// errBadAnswer is an answer the bus cannot read.
	errBadAnswer = errors.New("malformed direct get answer")
)

// directGet sends req to stream's direct get API (JetStream's default
// API prefix: the bus knows no JetStream domains) and calls fn for each
// message of the answer, at most size of them, with its sequence, until
// the answer's end of batch, whose headers it returns. It fails with
// errNothing when no message matches and nats.ErrNoResponders when
// nothing answers (see cause).
//
// The answer comes to an inbox of its own, not to one under the
// connection's request mux (nc.NewRespInbox), whose wildcard subscription
// would receive, and drop, a second copy of every message, as orbit.go's
// jetstreamext.GetBatch and GetLastMsgsFor (v0.3.2) do. It is queued in a
// channel that holds all of it, not in SubscribeSync's, which costs
// 512 KiB a request (64Ki pointers).
func (h *History) directGet(ctx context.Context, stream string, req *directRequest, size int, fn func(m *nats.Msg, seq uint64) error) (nats.Header, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	nc := h.b.nc
	answer := make(chan *nats.Msg, size+1) // the messages and the end of batch
	sub, err := nc.ChanSubscribe(nc.NewInbox(), answer)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, sub.Subject, body); err != nil {
		return nil, err
	}
	for {
		var m *nats.Msg
		select {
		case m = <-answer:
		case <-ctx.Done():
			if nc.IsClosed() {
				return nil, nats.ErrConnectionClosed
			}
			return nil, ctx.Err()
		}
		if n, _ := sub.Dropped(); n > 0 {
			return nil, fmt.Errorf("%w: %d messages more than the %d asked for", errBadAnswer, n, size)
		}
		if seqs := m.Header.Get(nats.JSSequence); seqs != "" {
			seq, err := strconv.ParseUint(seqs, 10, 64)
			if err != nil || seq == 0 {
				return nil, fmt.Errorf("%w: %s %q", errBadAnswer, nats.JSSequence, seqs)
			}
			if err := fn(m, seq); err != nil {
				return nil, err
			}
			continue
		}
		// A status without a message.
		switch status, desc := m.Header.Get("Status"), m.Header.Get("Description"); status {
		case "204":
			return m.Header, nil // "EOB"
		case "404":
			return nil, errNothing // "No Results", "Message Not Found"
		case "503":
			return nil, nats.ErrNoResponders
		case "":
			return nil, fmt.Errorf("%w: a message without %s", errBadAnswer, nats.JSSequence)
		default:
			return nil, fmt.Errorf("direct get refused: %s %s", status, desc)
		}
	}
}

// withTimeout returns ctx, bounded by historyTimeout when it has no
// deadline.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, historyTimeout)
}

// cause says in the bus's words why a request to stream failed. A direct
// get to a server without JetStream, to a stream that does not exist, or
// to one that allows no direct gets is answered alike, by silence (no
// responders): on that failure path a stream info request tells them
// apart.
func (h *History) cause(ctx context.Context, stream string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: no answer in time (%w)", ErrJetStreamUnavailable, err)
	case errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("%w (%w)", ErrClosed, err)
	case !errors.Is(err, nats.ErrNoResponders):
		return err
	}
	if ctx.Err() != nil {
		return ErrJetStreamUnavailable
	}
	s, serr := h.js.Stream(ctx, stream)
	switch {
	case serr == nil && !s.CachedInfo().Config.AllowDirect:
		return fmt.Errorf("stream %s allows no direct gets (allow_direct false): update it, e.g. with `wsgate stream apply`", stream)
	case serr == nil:
		return fmt.Errorf("%w: stream %s answers no direct get", ErrJetStreamUnavailable, stream)
	case jetStreamMissing(serr), errors.Is(serr, context.DeadlineExceeded):
		return ErrJetStreamUnavailable
	case errors.Is(serr, jetstream.ErrStreamNotFound):
		if stream == h.kvStream {
			return fmt.Errorf("%w (%s): create the bucket with ApplyAckBucket", ErrNoStreamNamed, stream)
		}
		return ErrNoStreamNamed
	}
	return serr
}

// AckBucketConfig describes the KV bucket of acked watermarks. The zero
// value of every field means its default. The bucket keeps one value per
// key, in file storage unless Memory.
type AckBucketConfig struct {
	// Name of the bucket. Empty means "NOTIFY_ACKS".
	Name string

	// MaxAge is how long a mark that is not written again is kept. Zero
	// means 72h, the stream's DefaultMaxAge: a mark older than every
	// notification it could skip is of no use. Negative means forever.
	MaxAge time.Duration

	// Replicas is the number of copies in a NATS cluster. Zero means 1.
	Replicas int

	// Memory keeps the bucket in memory, like StreamConfig.Memory.
	Memory bool
}

// ApplyAckBucket creates the KV bucket of acked watermarks on the NATS
// server nc is connected to, or updates it to cfg, and returns it. It is
// idempotent. It fails with ErrJetStreamUnavailable when the server (or
// the account) has no JetStream, and with the server's error when it
// refuses the configuration.
func ApplyAckBucket(ctx context.Context, nc *nats.Conn, cfg AckBucketConfig) (jetstream.KeyValue, error) {
	name := cfg.Name
	if name == "" {
		name = DefaultAckBucket
	}
	if !channel.ValidToken(name) {
		return nil, fmt.Errorf("%w: ack bucket name %q: one token of [A-Za-z0-9_-]", ErrInvalidConfig, name)
	}
	op := "ack bucket " + name
	if cfg.Replicas < 0 {
		return nil, &opError{op, fmt.Errorf("%w: Replicas %d: must not be negative", ErrInvalidConfig, cfg.Replicas)}
	}
	kc := jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "wsgate acked watermarks: <epoch>:<seq> per user and channel",
		History:     1,
		TTL:         orDefault(cfg.MaxAge, DefaultMaxAge),
		Storage:     storage(cfg.Memory),
		Replicas:    cfg.Replicas,
	}
	if kc.TTL < 0 {
		kc.TTL = 0 // JetStream's "forever"
	}
	if kc.Replicas == 0 {
		kc.Replicas = DefaultReplicas
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, &opError{op, err}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, kc)
	if err != nil {
		if jetStreamMissing(err) {
			err = ErrJetStreamUnavailable
		}
		return nil, &opError{op, err}
	}
	return kv, nil
}
