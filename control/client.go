package control

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/internal/channel"
)

// Defaults of the Client.
const (
	DefaultTimeout = 2 * time.Second
	DefaultStall   = 100 * time.Millisecond
	// DefaultRevocationTTL is how long a revocation without Until lasts:
	// the longest token lifetime it assumes.
	DefaultRevocationTTL = 24 * time.Hour
	// DefaultDenylistBucket is the NATS KV bucket of the denylist.
	DefaultDenylistBucket = "NOTIFY_REVOKED"
)

// defaultPrefix is the gateways' subject prefix when none is given; the
// same as bus.DefaultPrefix.
const defaultPrefix = "notify"

// Client sends control requests to every gateway and gathers the answers.
// Set its fields before the first request.
//
// A request ends at the first of: Timeout (or the context's deadline),
// Expect answers, or Stall without a new answer after the first one. It
// fails with ErrNoGateways when NATS answers that no gateway listens, or
// when no gateway answered by the end; it returns what it gathered
// otherwise. Gateways that answer later are not counted: with Expect zero,
// a fleet whose gateways answer more than Stall apart is undercounted, so a
// caller that knows the fleet's size should set Expect (and may set Stall
// negative).
type Client struct {
	// Timeout bounds a request: gateways that answer later are not
	// counted. Zero means DefaultTimeout (2s). A context deadline that
	// comes sooner wins.
	Timeout time.Duration
	// Stall ends a request once no answer came for this long after the
	// last one. Zero means DefaultStall (100ms); negative waits for
	// Timeout (or Expect).
	Stall time.Duration
	// Expect ends a request as soon as this many gateways answered. Zero
	// means the size of the fleet is unknown.
	Expect int
	// Bucket is the denylist's KV bucket. Empty means
	// DefaultDenylistBucket.
	Bucket string

	nc     *nats.Conn
	prefix string

	jsMu   sync.Mutex
	js     jetstream.JetStream // guarded by jsMu: set with stream
	stream jetstream.Stream    // guarded by jsMu: the bucket's stream, once found
}

// NewClient returns a Client on nc for gateways with subject prefix prefix
// ("" means "notify"). It does not own nc.
func NewClient(nc *nats.Conn, prefix string) *Client {
	return &Client{nc: nc, prefix: cmp.Or(prefix, defaultPrefix)}
}

// PresenceResult gathers the gateways' answers to a PresenceQuery.
type PresenceResult struct {
	// Gateways are the answers, one per gateway that answered in time,
	// sorted by gateway id.
	Gateways []GatewayPresence `json:"gateways"`
	// Online: the user holds at least one socket.
	Online bool `json:"online"`
	// Sockets are the user's sockets on every gateway.
	Sockets int `json:"sockets"`
	// Subscribers are the topic's subscribers on every gateway.
	Subscribers int `json:"subscribers"`
	// Connections and Users are the fleet's totals: the sums of the
	// gateways' (a user connected to two gateways counts twice).
	Connections int `json:"connections"`
	Users       int `json:"users"`
}

// CountResult gathers the gateways' answers to a Disconnect or a
// Subscription. Gateways are sorted by gateway id; Sockets and Refused
// are their sums.
type CountResult struct {
	Gateways []GatewayCount `json:"gateways"`
	Sockets  int            `json:"sockets"`
	Refused  int            `json:"refused"`
}

// StatsResult gathers the gateways' stats, sorted by gateway id;
// Connections and Users are their sums.
type StatsResult struct {
	Gateways    []GatewayStats `json:"gateways"`
	Connections int            `json:"connections"`
	Users       int            `json:"users"`
}

// Presence asks every gateway about q.
func (c *Client) Presence(ctx context.Context, q PresenceQuery) (PresenceResult, error) {
	if err := q.Validate(); err != nil {
		return PresenceResult{}, err
	}
	gws, err := gather(ctx, c, SubjectPresence, q,
		func(g *GatewayPresence) string { return g.Gateway },
		func(msg string) GatewayPresence { return GatewayPresence{Error: msg} })
	if err != nil {
		return PresenceResult{}, err
	}
	r := PresenceResult{Gateways: gws}
	for _, g := range gws {
		r.Sockets += len(g.Sockets)
		r.Subscribers += g.Subscribers
		r.Connections += g.Connections
		r.Users += g.Users
	}
	r.Online = r.Sockets > 0
	return r, nil
}

// Disconnect closes the sockets d names on every gateway. With
// ReasonRevoked it first stores the revocation in the denylist (d.Revocation,
// or the user's tokens issued until now for DefaultRevocationTTL), so that
// the user's tokens are refused at upgrade from then on.
//
// The revocation also travels with the request, and every gateway applies
// it before it closes the sockets. So when it cannot be stored (no
// JetStream, no bucket, a timeout) Disconnect still closes the sockets and
// returns their count, with an error that wraps ErrNoDenylist: the
// revocation then holds only in the memory of the gateways that answered,
// and is lost when they restart. A zero Before of d.Revocation with a User
// means now; a zero Until means now plus DefaultRevocationTTL.
func (c *Client) Disconnect(ctx context.Context, d Disconnect) (CountResult, error) {
	now := time.Now()
	if d.Revocation == nil && d.Reason == ReasonRevoked && d.User != "" {
		d.Revocation = &Revocation{User: d.User}
	}
	if d.Revocation != nil {
		r := d.Revocation.withDefaults(now)
		d.Revocation = &r
	}
	if err := d.Validate(); err != nil {
		return CountResult{}, err
	}
	var stored error
	if d.Revocation != nil {
		if stored = c.Revoke(ctx, *d.Revocation); stored != nil && !errors.Is(stored, ErrNoDenylist) {
			stored = fmt.Errorf("%w: %w", ErrNoDenylist, stored)
		}
	}
	r, err := c.count(ctx, SubjectDisconnect, d)
	return r, errors.Join(stored, err)
}

// Subscribe adds s.Topic to every socket of s.User.
func (c *Client) Subscribe(ctx context.Context, s Subscription) (CountResult, error) {
	if err := s.Validate(); err != nil {
		return CountResult{}, err
	}
	return c.count(ctx, SubjectSubscribe, s)
}

// Unsubscribe removes s.Topic from every socket of s.User.
func (c *Client) Unsubscribe(ctx context.Context, s Subscription) (CountResult, error) {
	if err := s.Validate(); err != nil {
		return CountResult{}, err
	}
	return c.count(ctx, SubjectUnsubscribe, s)
}

// Stats asks every gateway for its stats.
func (c *Client) Stats(ctx context.Context) (StatsResult, error) {
	gws, err := gather(ctx, c, SubjectStats, nil,
		func(g *GatewayStats) string { return g.Gateway },
		func(string) GatewayStats { return GatewayStats{} })
	if err != nil {
		return StatsResult{}, err
	}
	r := StatsResult{Gateways: gws}
	for _, g := range gws {
		r.Connections += g.Connections
		r.Users += g.Users
	}
	return r, nil
}

// count sends a request answered with GatewayCount.
func (c *Client) count(ctx context.Context, subject string, req any) (CountResult, error) {
	gws, err := gather(ctx, c, subject, req,
		func(g *GatewayCount) string { return g.Gateway },
		func(msg string) GatewayCount { return GatewayCount{Error: msg} })
	if err != nil {
		return CountResult{}, err
	}
	r := CountResult{Gateways: gws}
	for _, g := range gws {
		r.Sockets += g.Sockets
		r.Refused += g.Refused
	}
	return r, nil
}

// gather sends req (JSON; nil for an empty body) on subject and decodes
// the answers into Ts sorted by id. An answer that does not decode becomes
// bad(its error).
func gather[T any](ctx context.Context, c *Client, subject string, req any, id func(*T) string, bad func(string) T) ([]T, error) {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return nil, err
		}
	}
	var out []T
	err := c.scatter(ctx, subject, body, func(data []byte) {
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			v = bad("control: malformed answer: " + err.Error())
		}
		out = append(out, v)
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b T) int { return strings.Compare(id(&a), id(&b)) })
	return out, nil
}

// scatter publishes body on "<prefix>.<subject>" with a fresh inbox as its
// reply subject and calls each with every answer until the request ends
// (see Client). It fails with ErrNoGateways when there was no answer, and
// with ctx's error when ctx is cancelled (its deadline only ends the
// request, like Timeout).
func (c *Client) scatter(ctx context.Context, subject string, body []byte, each func([]byte)) error {
	if !channel.Valid(c.prefix) {
		return fmt.Errorf("%w: subject prefix %q", ErrInvalid, c.prefix)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := time.Now()
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stall := c.Stall
	if stall == 0 {
		stall = DefaultStall
	}

	// An asynchronous subscription queues answers in a list, where a
	// synchronous one would allocate a channel of 64k entries per request.
	// Its handler hands them over until the request ends.
	answers, done := make(chan *nats.Msg), make(chan struct{})
	defer close(done)
	inbox := c.nc.NewInbox()
	sub, err := c.nc.Subscribe(inbox, func(m *nats.Msg) {
		select {
		case answers <- m:
		case <-done:
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	// The server handles the SUB before the PUB: no answer can miss it.
	if err := c.nc.PublishMsg(&nats.Msg{Subject: c.prefix + "." + subject, Reply: inbox, Data: body}); err != nil {
		return err
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	n := 0
	for c.Expect <= 0 || n < c.Expect {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
		case <-timer.C:
		case m := <-answers:
			if noResponders(m) {
				if n == 0 {
					return ErrNoGateways
				}
				continue
			}
			n++
			each(m.Data)
			if stall > 0 {
				timer.Reset(min(stall, time.Until(deadline)))
			}
			continue
		}
		break
	}
	if n == 0 {
		return fmt.Errorf("%w within %v", ErrNoGateways, deadline.Sub(start).Round(time.Millisecond))
	}
	return nil
}

// noResponders reports whether m is the server's "no responders" status
// message, which it sends to a request's reply subject when nobody is
// subscribed to the request's subject.
func noResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") == "503"
}

// Revoke stores r in the denylist, where every gateway sees it within
// milliseconds; it does not close sockets (Disconnect does).
//
// A zero Before with a User means now; a zero Until means now plus
// DefaultRevocationTTL. Each entry (one for the user, one for the token
// id) is merged with the one already stored for it: the stored entry keeps
// the later Before and the later Until, and is left alone when r extends
// neither. It lasts in the bucket until its Until (rounded up to the
// second), by a per-message TTL. The bucket must exist with per-key TTLs
// (OpenDenylist with Manage creates it); when it cannot be reached (no
// JetStream, no bucket) the error wraps ErrNoDenylist. A revocation that
// refuses nothing, or whose Until has passed, is refused with ErrInvalid.
func (c *Client) Revoke(ctx context.Context, r Revocation) error {
	now := time.Now()
	r = r.withDefaults(now)
	if err := invalid(r.check()); err != nil {
		return err
	}
	if !now.Before(r.Until) {
		return fmt.Errorf("%w: revocation until %v has passed", ErrInvalid, r.Until)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmp.Or(max(c.Timeout, 0), DefaultTimeout))
		defer cancel()
	}
	js, st, err := c.denylist(ctx)
	if err != nil {
		return err
	}
	bucket := cmp.Or(c.Bucket, DefaultDenylistBucket)
	if r.User != "" {
		if err := put(ctx, js, st, bucket, userKey(r.User), Revocation{User: r.User, Before: r.Before, Until: r.Until}); err != nil {
			return err
		}
	}
	if r.TokenID != "" {
		return put(ctx, js, st, bucket, tokenKey(r.TokenID), Revocation{TokenID: r.TokenID, Until: r.Until})
	}
	return nil
}

// withDefaults fills a zero Before (of a user revocation) with now and a
// zero Until with now plus DefaultRevocationTTL.
func (r Revocation) withDefaults(now time.Time) Revocation {
	if r.User != "" && r.Before.IsZero() {
		r.Before = now
	}
	if r.Until.IsZero() {
		r.Until = now.Add(DefaultRevocationTTL)
	}
	return r
}

// denylist returns the JetStream context and the stream of the denylist's
// bucket, found once.
func (c *Client) denylist(ctx context.Context) (jetstream.JetStream, jetstream.Stream, error) {
	c.jsMu.Lock()
	defer c.jsMu.Unlock()
	if c.stream != nil {
		return c.js, c.stream, nil
	}
	bucket := cmp.Or(c.Bucket, DefaultDenylistBucket)
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNoDenylist, err)
	}
	st, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: bucket %s: %w", ErrNoDenylist, bucket, err)
	}
	c.js, c.stream = js, st
	return js, st, nil
}

// maxPutAttempts bounds the compare-and-set loop of put against writers of
// the same key.
const maxPutAttempts = 10

// put merges r into the entry at key and stores the result with a TTL that
// ends at its Until, if the merge changed anything. It compares and sets:
// a concurrent writer of the same key makes it read and merge again.
func put(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, bucket, key string, r Revocation) error {
	subject := "$KV." + bucket + "." + key
	for range maxPutAttempts {
		var rev uint64
		m, err := st.GetLastMsgForSubject(ctx, subject)
		switch {
		case err == nil:
			rev = m.Sequence
			var old Revocation
			if live(m) && json.Unmarshal(m.Data, &old) == nil {
				merged := r
				merged.Before = later(old.Before, r.Before)
				merged.Until = later(old.Until, r.Until)
				if merged.Before.Equal(old.Before) && merged.Until.Equal(old.Until) {
					return nil // the stored entry covers r already
				}
				r = merged
			}
		case errors.Is(err, jetstream.ErrMsgNotFound):
		default:
			return fmt.Errorf("control: denylist %s: %w", key, err)
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}},
			jetstream.WithMsgTTL(ttlUntil(r.Until)), jetstream.WithExpectLastSequencePerSubject(rev))
		if err == nil {
			return nil
		}
		if !wrongLastSeq(err) {
			return fmt.Errorf("control: denylist %s: %w", key, err)
		}
	}
	return fmt.Errorf("control: denylist %s: %d concurrent writers in a row", key, maxPutAttempts)
}

// ttlUntil is the per-message TTL that keeps an entry until until: whole
// seconds (JetStream drops the fraction), rounded up, at least one.
func ttlUntil(until time.Time) time.Duration {
	ttl := time.Until(until)
	ttl = (ttl + time.Second - 1).Truncate(time.Second)
	return max(ttl, time.Second)
}

// live reports whether m, the last message of a key, holds a value rather
// than a delete, a purge or the marker of an ended TTL.
func live(m *jetstream.RawStreamMsg) bool {
	return m.Header.Get("KV-Operation") == "" && m.Header.Get(jetstream.MarkerReasonHeader) == ""
}

// wrongLastSeq reports whether err is JetStream's refusal of a
// compare-and-set.
func wrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
