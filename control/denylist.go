package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/lograte"
)

// Defaults of OpenDenylist.
const (
	// DefaultDenylistRetry is how long a Denylist waits before it tries
	// again to follow its bucket (no JetStream, no bucket yet, a watch
	// that ended).
	DefaultDenylistRetry = 3 * time.Second
	// DefaultDenylistPrune is how often a Denylist drops the entries whose
	// Until has passed.
	DefaultDenylistPrune = time.Minute
	// limitMarkerTTL is how long a bucket Manage creates keeps the marker
	// JetStream leaves when a key's TTL ends: watchers learn the key is
	// gone from it.
	limitMarkerTTL = time.Minute
)

// DenylistConfig configures OpenDenylist.
type DenylistConfig struct {
	// Bucket is the KV bucket. Empty means DefaultDenylistBucket.
	Bucket string
	// Manage creates or updates the bucket (with per-key TTLs) when it is
	// opened.
	Manage bool
	// Replicas and Memory configure a bucket Manage creates. Zero
	// Replicas means 1.
	Replicas int
	Memory   bool
	// Retry is the pause between two attempts to follow the bucket. Zero
	// means DefaultDenylistRetry (3s).
	Retry time.Duration
	// Prune is how often entries past their Until are dropped. Zero means
	// DefaultDenylistPrune (1m). Expired entries are never in force,
	// pruned or not; pruning only frees their memory.
	Prune time.Duration
	// Logger; nil means zap.NewNop().
	Logger *zap.Logger
}

// Denylist is a gateway's copy of the revocations: it watches the KV bucket
// and answers Revoked from memory, so that the check at upgrade costs a map
// lookup and no round trip.
//
// Entries come from the bucket (every put, merged; a delete, a purge or the
// end of a key's TTL removes the key's entry) and from Add. An entry whose
// Until has passed is not in force, whether or not it was pruned yet.
type Denylist struct {
	mu     sync.RWMutex
	users  map[string]userEntry // guarded by mu: user id → the user's revocation
	tokens map[string]time.Time // guarded by mu: token id → Until
	keys   map[string]entryRef  // guarded by mu: bucket key → the entry it holds
	pruned time.Time            // guarded by mu: when Add last pruned

	malformed atomic.Uint64 // bucket values that did not decode
	following atomic.Bool   // the watch has loaded the bucket and runs

	log      *zap.Logger
	watchErr lograte.Limiter
	prune    time.Duration

	cancel    context.CancelFunc // ends the watcher; nil for NewDenylist
	done      chan struct{}      // closed when the watcher has ended; nil for NewDenylist
	closeOnce sync.Once
}

// userEntry refuses the user's tokens issued at or before before, until
// until.
type userEntry struct{ before, until time.Time }

// entryRef is the entry a bucket key holds: a user id or a token id.
type entryRef struct{ user, token string }

// NewDenylist returns an empty Denylist that watches nothing: Add fills it.
// It starts no goroutine; Close is not needed.
func NewDenylist() *Denylist {
	return &Denylist{
		users:  make(map[string]userEntry),
		tokens: make(map[string]time.Time),
		keys:   make(map[string]entryRef),
		log:    zap.NewNop(),
		prune:  DefaultDenylistPrune,
	}
}

// OpenDenylist returns a Denylist that follows the bucket on nc. It loads
// the bucket's entries before it returns (within ctx), so that a gateway
// that opens it before it accepts connections refuses every revoked token
// from its first upgrade; ctx bounds only that first load, not the watch.
//
// Without JetStream, or without the bucket (and without Manage), it still
// returns a working Denylist, with a nil error: it holds what Add gives it
// (the revocations Disconnect requests carry) and tries again to follow the
// bucket every Retry in the background, logging the failure at most once a
// period. Following reports when it does. The error is only for an invalid
// configuration. Close stops the watcher.
func OpenDenylist(ctx context.Context, nc *nats.Conn, cfg DenylistConfig) (*Denylist, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultDenylistBucket
	}
	if !validBucket(cfg.Bucket) {
		return nil, fmt.Errorf("control: denylist bucket %q is not a token of [A-Za-z0-9_-]", cfg.Bucket)
	}
	if cfg.Replicas < 0 || cfg.Retry < 0 || cfg.Prune < 0 {
		return nil, errors.New("control: denylist Replicas, Retry and Prune must not be negative")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Retry == 0 {
		cfg.Retry = DefaultDenylistRetry
	}
	d := NewDenylist()
	if cfg.Prune > 0 {
		d.prune = cfg.Prune
	}
	if cfg.Logger != nil {
		d.log = cfg.Logger
	}
	wctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})

	// The first attempt runs here, so that a bucket that exists is loaded
	// before OpenDenylist returns.
	w, err := d.open(ctx, wctx, nc, cfg)
	if err == nil {
		err = d.load(ctx, w)
	}
	if err != nil {
		d.logWatchErr(cfg.Bucket, err)
	}
	go d.run(wctx, nc, cfg, w)
	return d, nil
}

// validBucket reports whether name can be a KV bucket name.
func validBucket(name string) bool { return channel.ValidToken(name) }

// open finds (or, with Manage, creates or updates) the bucket within ctx
// and starts a watch of all its keys that lasts as long as wctx.
func (d *Denylist) open(ctx, wctx context.Context, nc *nats.Conn, cfg DenylistConfig) (jetstream.KeyWatcher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var kv jetstream.KeyValue
	if cfg.Manage {
		storage := jetstream.FileStorage
		if cfg.Memory {
			storage = jetstream.MemoryStorage
		}
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         cfg.Bucket,
			Description:    "wsgate denylist: revoked users and tokens, each until its Until",
			History:        1,
			Replicas:       cfg.Replicas,
			Storage:        storage,
			LimitMarkerTTL: limitMarkerTTL,
		})
	} else {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, err
	}
	return kv.WatchAll(wctx)
}

// load applies w's initial entries, up to the marker that ends them.
func (d *Denylist) load(ctx context.Context, w jetstream.KeyWatcher) error {
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("control: denylist watch ended")
			}
			if e == nil {
				d.following.Store(true)
				return nil
			}
			d.apply(e)
		case <-ctx.Done():
			// The watcher goes on loading in the background.
			return nil
		}
	}
}

// run follows the bucket with w, or with a new watch every Retry while
// there is none, and prunes, until ctx ends.
func (d *Denylist) run(ctx context.Context, nc *nats.Conn, cfg DenylistConfig, w jetstream.KeyWatcher) {
	defer close(d.done)
	prune := time.NewTicker(d.prune)
	defer prune.Stop()
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var updates <-chan jetstream.KeyValueEntry
		var again <-chan time.Time
		if w != nil {
			updates = w.Updates()
		} else {
			if retry == nil {
				retry = time.NewTimer(cfg.Retry)
			} else {
				retry.Reset(cfg.Retry)
			}
			again = retry.C
		}
		select {
		case <-ctx.Done():
			if w != nil {
				stopWatch(w)
			}
			return
		case <-prune.C:
			d.pruneExpired(time.Now())
		case <-again:
			octx, cancel := context.WithTimeout(ctx, cfg.Retry)
			nw, err := d.open(octx, ctx, nc, cfg)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					d.logWatchErr(cfg.Bucket, err)
				}
				continue
			}
			w = nw
			d.log.Info("following denylist bucket", zap.String("bucket", cfg.Bucket))
		case e, ok := <-updates:
			switch {
			case !ok:
				d.following.Store(false)
				stopWatch(w)
				w = nil
				if ctx.Err() == nil {
					d.logWatchErr(cfg.Bucket, errors.New("watch ended"))
				}
			case e == nil:
				d.following.Store(true)
			default:
				d.apply(e)
			}
		}
	}
}

// stopWatch stops w and drains its updates until nats.go closes them: its
// callback blocks on a full channel, and would leak its goroutine.
func stopWatch(w jetstream.KeyWatcher) {
	w.Stop()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-t.C:
			return
		}
	}
}

func (d *Denylist) logWatchErr(bucket string, err error) {
	if ok, held := d.watchErr.Allow(); ok {
		d.log.Warn("cannot follow denylist bucket; holding local revocations only",
			zap.String("bucket", bucket), zap.Error(err), zap.Int("held", held))
	}
}

// apply applies one update of the bucket.
func (d *Denylist) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		d.remove(e.Key())
		return
	}
	var r Revocation
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.User == "" && r.TokenID == "" {
		d.malformed.Add(1)
		if ce := d.log.Check(zap.DebugLevel, "malformed denylist entry"); ce != nil {
			ce.Write(zap.String("key", e.Key()), zap.Error(err))
		}
		return
	}
	d.add(r, e.Key())
}

// remove drops the entry bucket key holds.
func (d *Denylist) remove(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ref, ok := d.keys[key]
	if !ok {
		return
	}
	delete(d.keys, key)
	if ref.user != "" {
		delete(d.users, ref.user)
	}
	if ref.token != "" {
		delete(d.tokens, ref.token)
	}
}

// Revoked reports whether a token of user with id tokenID ("" for none)
// issued at issued (zero when unknown) is refused: user has an entry in
// force and issued is zero or not after its Before, or tokenID has one.
// It takes a read lock and allocates nothing.
func (d *Denylist) Revoked(user, tokenID string, issued time.Time) bool {
	d.mu.RLock()
	u, uok := d.users[user]
	var until time.Time
	tok := false
	if tokenID != "" {
		until, tok = d.tokens[tokenID]
	}
	d.mu.RUnlock()
	if !uok && !tok {
		return false
	}
	now := time.Now()
	if uok && now.Before(u.until) && (issued.IsZero() || !issued.After(u.before)) {
		return true
	}
	return tok && now.Before(until)
}

// Add applies r locally, at once. An entry already there for the same
// user (or token id) is extended: it keeps the later Before and the later
// Until. An r whose Until has passed adds nothing.
func (d *Denylist) Add(r Revocation) { d.add(r, "") }

// add is Add of r read from bucket key key, or given to Add when key is
// "": its entries are then filed under the keys the Client writes them at.
func (d *Denylist) add(r Revocation, key string) {
	now := time.Now()
	if !now.Before(r.Until) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.User != "" {
		e := d.users[r.User]
		d.users[r.User] = userEntry{before: later(e.before, r.Before), until: later(e.until, r.Until)}
		if key == "" {
			d.keys[userKey(r.User)] = entryRef{user: r.User}
		}
	}
	if r.TokenID != "" {
		d.tokens[r.TokenID] = later(d.tokens[r.TokenID], r.Until)
		if key == "" {
			d.keys[tokenKey(r.TokenID)] = entryRef{token: r.TokenID}
		}
	}
	if key != "" {
		d.keys[key] = entryRef{user: r.User, token: r.TokenID}
	}
	if now.Sub(d.pruned) >= d.prune {
		d.pruneLocked(now)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// pruneExpired drops the entries whose Until is not after now.
func (d *Denylist) pruneExpired(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(now)
}

// pruneLocked is pruneExpired; d.mu must be held.
func (d *Denylist) pruneLocked(now time.Time) {
	d.pruned = now
	for key, ref := range d.keys {
		if ref.user != "" && now.Before(d.users[ref.user].until) ||
			ref.token != "" && now.Before(d.tokens[ref.token]) {
			continue
		}
		delete(d.keys, key)
		delete(d.users, ref.user)
		delete(d.tokens, ref.token)
	}
	// Entries whose key was filed over by another (a bucket key holding
	// someone else's entry) are not reached above.
	for user, e := range d.users {
		if !now.Before(e.until) {
			delete(d.users, user)
		}
	}
	for token, until := range d.tokens {
		if !now.Before(until) {
			delete(d.tokens, token)
		}
	}
}

// Len returns how many entries are in force: users and token ids whose
// Until has not passed.
func (d *Denylist) Len() int {
	now := time.Now()
	d.mu.RLock()
	defer d.mu.RUnlock()
	n := 0
	for _, e := range d.users {
		if now.Before(e.until) {
			n++
		}
	}
	for _, until := range d.tokens {
		if now.Before(until) {
			n++
		}
	}
	return n
}

// Following reports whether the Denylist has loaded its bucket and
// follows it; false for NewDenylist's, and while OpenDenylist's retries.
func (d *Denylist) Following() bool { return d.following.Load() }

// Malformed returns how many bucket values did not decode into a
// revocation; they were ignored.
func (d *Denylist) Malformed() uint64 { return d.malformed.Load() }

// Close stops watching and waits for the watcher to end. The entries stay
// and Revoked and Add keep working. Close is idempotent.
func (d *Denylist) Close() error {
	d.closeOnce.Do(func() {
		if d.cancel != nil {
			d.cancel()
			<-d.done
		}
		d.following.Store(false)
	})
	return nil
}

// userKey is the bucket key of user id's revocation.
func userKey(id string) string { return "user." + id }

// tokenKey is the bucket key of the revocation of token id jti: the jti
// itself when it is a token of [A-Za-z0-9_-] of at most channel.MaxLen
// bytes, else "=" and its SHA-256 in hex ("=" never starts a plain one).
func tokenKey(jti string) string {
	if channel.ValidToken(jti) {
		return "token." + jti
	}
	sum := sha256.Sum256([]byte(jti))
	return "token.=" + hex.EncodeToString(sum[:])
}
