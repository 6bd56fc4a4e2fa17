package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// openDenylist opens a Denylist managing a memory bucket on a connection
// of its own to srv, closed at the end of the test.
func openDenylist(t testing.TB, srv *server.Server) *Denylist {
	t.Helper()
	d, err := OpenDenylist(context.Background(), dial(t, srv), DenylistConfig{Manage: true, Memory: true})
	if err != nil {
		t.Fatalf("OpenDenylist: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// bucket returns the denylist bucket on srv.
func bucket(t testing.TB, srv *server.Server) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(dial(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), DefaultDenylistBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// stored returns the revocation stored at key.
func stored(t testing.TB, kv jetstream.KeyValue, key string) Revocation {
	t.Helper()
	e, err := kv.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	var r Revocation
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		t.Fatalf("%s = %q: %v", key, e.Value(), err)
	}
	return r
}

func TestDenylistRules(t *testing.T) {
	d := NewDenylist()
	now := time.Now()
	d.Add(Revocation{User: "42", Before: now, Until: now.Add(time.Hour)})
	d.Add(Revocation{TokenID: "jti-1", Until: now.Add(time.Hour)})
	d.Add(Revocation{User: "old", Before: now, Until: now.Add(-time.Second)}) // over already
	tests := []struct {
		name          string
		user, tokenID string
		issued        time.Time
		want          bool
	}{
		{"issued before", "42", "", now.Add(-time.Minute), true},
		{"issued at Before", "42", "", now, true},
		{"issued unknown", "42", "", time.Time{}, true},
		{"issued after", "42", "", now.Add(time.Second), false},
		{"other user", "43", "", time.Time{}, false},
		{"revoked token", "43", "jti-1", now.Add(time.Second), true},
		{"other token", "43", "jti-2", time.Time{}, false},
		{"expired entry", "old", "", time.Time{}, false},
		{"no user", "", "", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.Revoked(tt.user, tt.tokenID, tt.issued); got != tt.want {
				t.Errorf("Revoked(%q, %q, %v) = %v, want %v", tt.user, tt.tokenID, tt.issued, got, tt.want)
			}
		})
	}
	if n := d.Len(); n != 2 {
		t.Errorf("Len = %d, want 2", n)
	}
	// A later Add extends: the later Before and the later Until win.
	d.Add(Revocation{User: "42", Before: now.Add(time.Minute), Until: now.Add(time.Minute)})
	if !d.Revoked("42", "", now.Add(30*time.Second)) {
		t.Error("the later Before did not extend the entry")
	}
	d.pruneExpired(now.Add(2 * time.Hour))
	if n := d.Len(); n != 0 || len(d.keys) != 0 || len(d.users) != 0 || len(d.tokens) != 0 {
		t.Errorf("after pruning: Len %d, %d keys, %d users, %d tokens; want none", n, len(d.keys), len(d.users), len(d.tokens))
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestRevokedAllocatesNothing(t *testing.T) {
	d := NewDenylist()
	until := time.Now().Add(time.Hour)
	d.Add(Revocation{User: "42", Before: time.Now(), Until: until})
	d.Add(Revocation{TokenID: "odd jti/1", Until: until})
	issued := time.Now().Add(-time.Minute)
	for _, tt := range []struct{ user, tokenID string }{{"42", ""}, {"43", "jti"}, {"43", "odd jti/1"}, {"43", ""}} {
		if n := testing.AllocsPerRun(100, func() { d.Revoked(tt.user, tt.tokenID, issued) }); n != 0 {
			t.Errorf("Revoked(%q, %q) allocates %v times, want 0", tt.user, tt.tokenID, n)
		}
	}
}

func TestRevokeReachesDenylist(t *testing.T) {
	srv := natstest.Run(t, true)
	d := openDenylist(t, srv)
	if !d.Following() {
		t.Error("OpenDenylist returned before following its bucket")
	}
	c := NewClient(dial(t, srv), "")
	issued := time.Now().Add(-time.Second)
	if err := c.Revoke(context.Background(), Revocation{User: "42"}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	pollRevoked(t, []*Denylist{d}, "42", "", true)
	if !d.Revoked("42", "", issued) || d.Revoked("42", "", time.Now().Add(time.Minute)) {
		t.Error("Before is not the time of the Revoke")
	}
	// A token id of any characters, and a plain one.
	odd := "jti with spaces/and.dots " + strings.Repeat("x", 100)
	for _, jti := range []string{"0b4f-9c2e_A", odd} {
		if err := c.Revoke(context.Background(), Revocation{TokenID: jti, Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("Revoke %q: %v", jti, err)
		}
		pollRevoked(t, []*Denylist{d}, "7", jti, true)
	}
	if d.Revoked("7", "jti with spaces", time.Time{}) {
		t.Error("a prefix of a revoked token id is revoked")
	}
	kv := bucket(t, srv)
	if r := stored(t, kv, tokenKey(odd)); r.TokenID != odd || !strings.HasPrefix(tokenKey(odd), "token.=") {
		t.Errorf("%s holds %+v", tokenKey(odd), r)
	}
	// A second Denylist loads what is stored before it returns.
	if d2 := openDenylist(t, srv); !d2.Revoked("42", "", issued) || !d2.Revoked("", odd, time.Time{}) || d2.Len() != 3 {
		t.Errorf("a new Denylist holds %d entries, want the 3 stored", d2.Len())
	}
	// A delete un-revokes; a value that does not decode is counted and
	// ignored.
	if err := kv.Delete(context.Background(), userKey("42")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "user.bad", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	pollRevoked(t, []*Denylist{d}, "42", "", false)
	wstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := d.Malformed(); n != 1 {
			return errors.New("malformed value not counted")
		}
		return nil
	})
	if d.Revoked("bad", "", time.Time{}) {
		t.Error("a malformed value revokes")
	}
}

func TestRevokeMerge(t *testing.T) {
	srv := natstest.Run(t, true)
	d := openDenylist(t, srv)
	c := NewClient(dial(t, srv), "")
	kv := bucket(t, srv)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)
	revoke := func(before time.Time, until time.Duration) {
		t.Helper()
		if err := c.Revoke(ctx, Revocation{User: "42", Before: before, Until: t0.Add(until)}); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
	}
	check := func(before time.Time, until time.Duration) {
		t.Helper()
		if r := stored(t, kv, userKey("42")); !r.Before.Equal(before) || !r.Until.Equal(t0.Add(until)) {
			t.Errorf("stored %v..%v, want %v..%v", r.Before, r.Until, before, t0.Add(until))
		}
	}
	revoke(t0, time.Hour)
	check(t0, time.Hour)
	e, _ := kv.Get(ctx, userKey("42"))
	revoke(t0.Add(-time.Minute), 30*time.Minute) // extends nothing: not written
	if e2, _ := kv.Get(ctx, userKey("42")); e2.Revision() != e.Revision() {
		t.Errorf("a revocation that extends nothing was written")
	}
	revoke(t0.Add(time.Minute), 10*time.Minute) // a later Before, an earlier Until
	check(t0.Add(time.Minute), time.Hour)
	revoke(t0, 2*time.Hour) // a later Until
	check(t0.Add(time.Minute), 2*time.Hour)
	wstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !d.Revoked("42", "", t0.Add(time.Minute)) || d.Revoked("42", "", t0.Add(time.Minute+time.Second)) {
			return errors.New("the denylist does not hold the merged entry")
		}
		return nil
	})
}

// TestRevokeExpires: the entry ends at Until in the denylist, and the
// bucket drops it by its TTL (whole seconds, rounded up), which the watch
// sees as a removal.
func TestRevokeExpires(t *testing.T) {
	srv := natstest.Run(t, true)
	d := openDenylist(t, srv)
	c := NewClient(dial(t, srv), "")
	if err := c.Revoke(context.Background(), Revocation{User: "42", Until: time.Now().Add(1500 * time.Millisecond)}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	pollRevoked(t, []*Denylist{d}, "42", "", true)
	pollRevoked(t, []*Denylist{d}, "42", "", false)
	kv := bucket(t, srv)
	wstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if _, err := kv.Get(context.Background(), userKey("42")); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return errors.New("the key outlived its TTL")
		}
		d.mu.RLock()
		defer d.mu.RUnlock()
		if len(d.users) != 0 {
			return errors.New("the watch did not remove the expired key's entry")
		}
		return nil
	})
	// Written again after its end: a fresh entry.
	if err := c.Revoke(context.Background(), Revocation{User: "42", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Revoke after expiry: %v", err)
	}
	pollRevoked(t, []*Denylist{d}, "42", "", true)
}

func TestDenylistWithoutJetStream(t *testing.T) {
	srv := natstest.Run(t, false)
	c := NewClient(dial(t, srv), "")
	if err := c.Revoke(context.Background(), Revocation{User: "42"}); !errors.Is(err, ErrNoDenylist) {
		t.Errorf("Revoke without JetStream = %v, want ErrNoDenylist", err)
	}
	d, err := OpenDenylist(context.Background(), dial(t, srv), DenylistConfig{Retry: 10 * time.Millisecond, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("OpenDenylist: %v", err)
	}
	defer d.Close()
	if d.Following() {
		t.Error("following a bucket without JetStream")
	}
	d.Add(Revocation{User: "42", Until: time.Now().Add(time.Hour)})
	if !d.Revoked("42", "", time.Time{}) || d.Len() != 1 {
		t.Error("Add does not work without JetStream")
	}
	// Disconnect with a revocation still closes the sockets, applies the
	// revocation in the gateway, and says it was not stored.
	g := fleet()[1]
	serve(t, srv, g, ServeConfig{Denylist: d})
	r, err := c.Disconnect(context.Background(), Disconnect{User: "8", Reason: ReasonRevoked})
	if !errors.Is(err, ErrNoDenylist) || r.Sockets != 1 {
		t.Errorf("Disconnect = %+v, %v; want 1 socket and ErrNoDenylist", r, err)
	}
	if !d.Revoked("8", "", time.Now().Add(-time.Second)) {
		t.Error("the gateway did not apply the revocation the request carried")
	}
	if req, _ := g.requests()[0].(Disconnect); req.Revocation == nil || req.Revocation.User != "8" {
		t.Errorf("the gateway got %+v, want the revocation attached", g.requests()[0])
	}
}

func TestDenylistRetries(t *testing.T) {
	srv := natstest.Run(t, true)
	nc := dial(t, srv)
	// No bucket yet, and no Manage: it retries until one exists.
	d, err := OpenDenylist(context.Background(), nc, DenylistConfig{Retry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Following() {
		t.Fatal("following a bucket that does not exist")
	}
	c := NewClient(dial(t, srv), "")
	if err := c.Revoke(context.Background(), Revocation{User: "42"}); !errors.Is(err, ErrNoDenylist) {
		t.Errorf("Revoke without the bucket = %v, want ErrNoDenylist", err)
	}
	openDenylist(t, srv) // creates the bucket
	if err := c.Revoke(context.Background(), Revocation{User: "42"}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	pollRevoked(t, []*Denylist{d}, "42", "", true)
	if !d.Following() {
		t.Error("not following once the bucket exists")
	}
	if _, err := OpenDenylist(context.Background(), nc, DenylistConfig{Bucket: "no.dots"}); err == nil {
		t.Error("OpenDenylist accepted an invalid bucket name")
	}
}

func TestDisconnectRevoked(t *testing.T) {
	srv := natstest.Run(t, true)
	d := openDenylist(t, srv)
	g := fleet()[1]
	serve(t, srv, g, ServeConfig{Denylist: d})
	c := NewClient(dial(t, srv), "")
	before := time.Now()
	r, err := c.Disconnect(context.Background(), Disconnect{User: "42", Reason: ReasonRevoked})
	if err != nil || r.Sockets != 2 {
		t.Fatalf("Disconnect = %+v, %v; want 2 sockets", r, err)
	}
	got := stored(t, bucket(t, srv), userKey("42"))
	if got.User != "42" || got.Before.Before(before) || got.Until.Sub(got.Before) != DefaultRevocationTTL {
		t.Errorf("stored %+v, want user 42 from now for DefaultRevocationTTL", got)
	}
	if !d.Revoked("42", "", before) {
		t.Error("user 42 not revoked")
	}
	// The connection alone: no revocation.
	r, err = c.Disconnect(context.Background(), Disconnect{Conn: "gw-a-8-0", Reason: ReasonRevoked})
	if err != nil || r.Sockets != 1 {
		t.Fatalf("Disconnect by conn = %+v, %v; want 1 socket", r, err)
	}
	if req := g.requests()[1].(Disconnect); req.Revocation != nil {
		t.Errorf("a disconnect by connection id carried %+v", req.Revocation)
	}
}

// TestStopWatchWithBacklog: stopping a watch leaves no goroutine behind
// even while nats.go's callback waits on a full updates channel (600
// entries outrun its buffer of 256); a Denylist opened then loads them all.
func TestStopWatchWithBacklog(t *testing.T) {
	srv := natstest.Run(t, true)
	openDenylist(t, srv) // creates the bucket
	kv := bucket(t, srv)
	until := time.Now().Add(time.Hour)
	for i := range 600 {
		user := fmt.Sprintf("u%d", i)
		v, _ := json.Marshal(Revocation{User: user, Before: until, Until: until})
		if _, err := kv.Put(context.Background(), userKey(user), v); err != nil {
			t.Fatal(err)
		}
	}
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stopWatch(w) // goleak in TestMain checks the rest
	if n := openDenylist(t, srv).Len(); n != 600 {
		t.Errorf("Len = %d, want 600", n)
	}
}

// TestRevokeUserAndToken: one revocation of a user and a token id is two
// entries, removed one at a time; a bucket key holding an entry another
// writer filed under a name of its own is removed with its key.
func TestRevokeUserAndToken(t *testing.T) {
	srv := natstest.Run(t, true)
	d := openDenylist(t, srv)
	c := NewClient(dial(t, srv), "")
	ctx := context.Background()
	if err := c.Revoke(ctx, Revocation{User: "5", TokenID: "t5", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	kv := bucket(t, srv)
	if u, tok := stored(t, kv, userKey("5")), stored(t, kv, tokenKey("t5")); u.User != "5" || u.TokenID != "" || tok.TokenID != "t5" || tok.User != "" {
		t.Errorf("stored %+v and %+v, want one entry each", u, tok)
	}
	pollRevoked(t, []*Denylist{d}, "5", "", true)
	pollRevoked(t, []*Denylist{d}, "", "t5", true)
	if err := kv.Purge(ctx, tokenKey("t5")); err != nil {
		t.Fatal(err)
	}
	pollRevoked(t, []*Denylist{d}, "", "t5", false)
	if !d.Revoked("5", "", time.Time{}) {
		t.Error("purging the token's key un-revoked the user")
	}

	v, _ := json.Marshal(Revocation{User: "6", Before: time.Now(), Until: time.Now().Add(time.Hour)})
	if _, err := kv.Put(ctx, "user.elsewhere", v); err != nil {
		t.Fatal(err)
	}
	pollRevoked(t, []*Denylist{d}, "6", "", true)
	if err := kv.Delete(ctx, "user.elsewhere"); err != nil {
		t.Fatal(err)
	}
	pollRevoked(t, []*Denylist{d}, "6", "", false)
}
