package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// gatewayIDs returns the Gateway field of each answer.
func gatewayIDs[T any](gws []T, id func(T) string) []string {
	ids := make([]string, len(gws))
	for i, g := range gws {
		ids[i] = id(g)
	}
	return ids
}

func TestScatterGather(t *testing.T) {
	srv := natstest.Run(t, false)
	gws := fleet()
	for _, g := range gws {
		serve(t, srv, g, ServeConfig{})
	}
	c := NewClient(dial(t, srv), "")
	c.Expect = 3
	ctx := context.Background()
	want := []string{"gw-a", "gw-b", "gw-c"}

	p, err := c.Presence(ctx, PresenceQuery{User: "42", Topic: "topic.team-7"})
	if err != nil {
		t.Fatalf("Presence: %v", err)
	}
	if ids := gatewayIDs(p.Gateways, func(g GatewayPresence) string { return g.Gateway }); !slices.Equal(ids, want) {
		t.Errorf("presence gateways = %v, want %v", ids, want)
	}
	if !p.Online || p.Sockets != 3 || p.Subscribers != 4 || p.Connections != 7 || p.Users != 5 {
		t.Errorf("presence = online %v, sockets %d, subscribers %d, connections %d, users %d; want true, 3, 4, 7, 5",
			p.Online, p.Sockets, p.Subscribers, p.Connections, p.Users)
	}
	if p, err := c.Presence(ctx, PresenceQuery{User: "nobody"}); err != nil || p.Online || p.Sockets != 0 || len(p.Gateways) != 3 {
		t.Errorf("presence of nobody = %+v, %v; want offline with 3 answers", p, err)
	}

	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if ids := gatewayIDs(st.Gateways, func(g GatewayStats) string { return g.Gateway }); !slices.Equal(ids, want) {
		t.Errorf("stats gateways = %v, want %v", ids, want)
	}
	if st.Connections != 7 || st.Users != 5 {
		t.Errorf("stats = %d connections, %d users; want 7, 5", st.Connections, st.Users)
	}

	sub, err := c.Subscribe(ctx, Subscription{User: "42", Topic: "topic.news"})
	if err != nil || sub.Sockets != 3 || len(sub.Gateways) != 3 {
		t.Errorf("Subscribe = %+v, %v; want 3 sockets from 3 gateways", sub, err)
	}
	if p, _ := c.Presence(ctx, PresenceQuery{Topic: "topic.news"}); p.Subscribers != 3 {
		t.Errorf("topic.news subscribers after Subscribe = %d, want 3", p.Subscribers)
	}
	unsub, err := c.Unsubscribe(ctx, Subscription{User: "42", Topic: "topic.team-7"})
	if err != nil || unsub.Sockets != 2 {
		t.Errorf("Unsubscribe = %+v, %v; want 2 sockets", unsub, err)
	}

	d, err := c.Disconnect(ctx, Disconnect{User: "42", Reason: ReasonLogout})
	if err != nil || d.Sockets != 3 {
		t.Errorf("Disconnect = %+v, %v; want 3 sockets", d, err)
	}
	d, err = c.Disconnect(ctx, Disconnect{Conn: "gw-b-9-1", Reason: ReasonReconnect})
	if err != nil || d.Sockets != 1 || len(d.Gateways) != 3 {
		t.Errorf("Disconnect by conn = %+v, %v; want 1 socket, 3 answers", d, err)
	}
	if p, _ := c.Presence(ctx, PresenceQuery{User: "42"}); p.Online || p.Connections != 3 {
		t.Errorf("after the disconnects: online %v, %d connections; want false, 3", p.Online, p.Connections)
	}
}

func TestExpectEndsEarly(t *testing.T) {
	srv := natstest.Run(t, false)
	for _, g := range fleet() {
		serve(t, srv, g, ServeConfig{})
	}
	c := NewClient(dial(t, srv), "")
	c.Timeout, c.Stall, c.Expect = time.Minute, -1, 3
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Without Expect the request would last the minute (Stall is off), and
	// fail with ctx's deadline after 20s.
	st, err := c.Stats(ctx)
	if err != nil || len(st.Gateways) != 3 {
		t.Fatalf("Stats = %+v, %v; want 3 answers", st, err)
	}
}

func TestStallEndsRequest(t *testing.T) {
	srv := natstest.Run(t, false)
	gws := fleet()
	hold := make(chan struct{})
	defer close(hold) // before the responders close, or Drain waits
	gws[2].hold = hold
	for _, g := range gws {
		serve(t, srv, g, ServeConfig{})
	}
	c := NewClient(dial(t, srv), "")
	c.Timeout, c.Stall = time.Minute, 50*time.Millisecond
	p, err := c.Presence(context.Background(), PresenceQuery{User: "42"})
	if err != nil {
		t.Fatalf("Presence: %v", err)
	}
	if ids := gatewayIDs(p.Gateways, func(g GatewayPresence) string { return g.Gateway }); !slices.Equal(ids, []string{"gw-a", "gw-c"}) {
		t.Errorf("gateways = %v, want the two that answered", ids)
	}
}

func TestTimeoutAndContext(t *testing.T) {
	srv := natstest.Run(t, false)
	nc := dial(t, srv)
	// A subscriber that never answers: NATS sees a responder, so the
	// request waits for its end.
	if _, err := nc.Subscribe("notify.ctl.stats", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	c := NewClient(dial(t, srv), "")
	c.Timeout = 100 * time.Millisecond
	if _, err := c.Stats(context.Background()); !errors.Is(err, ErrNoGateways) || !strings.Contains(err.Error(), "within") {
		t.Errorf("Stats = %v, want ErrNoGateways within the timeout", err)
	}
	c.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Stats(ctx); !errors.Is(err, ErrNoGateways) {
		t.Errorf("Stats with a context deadline = %v, want ErrNoGateways", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Stats(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Stats with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestNoGateways(t *testing.T) {
	srv := natstest.Run(t, false)
	c := NewClient(dial(t, srv), "other")
	c.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// NATS answers "no responders" at once: a minute's Timeout, or ctx's
	// 20s, would fail the test's deadline instead.
	if _, err := c.Presence(ctx, PresenceQuery{User: "42"}); !errors.Is(err, ErrNoGateways) {
		t.Fatalf("Presence = %v, want ErrNoGateways", err)
	}
	if ctx.Err() != nil {
		t.Fatal("ErrNoGateways came only at the deadline")
	}
}

func TestClientRefusesInvalid(t *testing.T) {
	srv := natstest.Run(t, false)
	g := fleet()[0]
	serve(t, srv, g, ServeConfig{})
	c := NewClient(dial(t, srv), "")
	ctx := context.Background()
	long := strings.Repeat("x", 124)
	tests := []struct {
		name string
		do   func() error
	}{
		{"presence user with a dot", func() error { _, err := c.Presence(ctx, PresenceQuery{User: "a.b"}); return err }},
		{"presence user too long", func() error { _, err := c.Presence(ctx, PresenceQuery{User: long}); return err }},
		{"presence not a topic", func() error { _, err := c.Presence(ctx, PresenceQuery{Topic: "user.42"}); return err }},
		{"subscribe no user", func() error { _, err := c.Subscribe(ctx, Subscription{Topic: "topic.a"}); return err }},
		{"subscribe wildcard", func() error { _, err := c.Subscribe(ctx, Subscription{User: "1", Topic: "topic.*"}); return err }},
		{"unsubscribe not a topic", func() error { _, err := c.Unsubscribe(ctx, Subscription{User: "1", Topic: "broadcast"}); return err }},
		{"disconnect no reason", func() error { _, err := c.Disconnect(ctx, Disconnect{User: "1"}); return err }},
		{"disconnect bad reason", func() error { _, err := c.Disconnect(ctx, Disconnect{User: "1", Reason: "bye"}); return err }},
		{"disconnect nobody", func() error { _, err := c.Disconnect(ctx, Disconnect{Reason: ReasonLogout}); return err }},
		{"disconnect bad conn", func() error { _, err := c.Disconnect(ctx, Disconnect{Conn: "a b", Reason: ReasonLogout}); return err }},
		{"revocation with logout", func() error {
			_, err := c.Disconnect(ctx, Disconnect{User: "1", Reason: ReasonLogout, Revocation: &Revocation{User: "1"}})
			return err
		}},
		{"revoke nothing", func() error { return c.Revoke(ctx, Revocation{}) }},
		{"revoke bad user", func() error { return c.Revoke(ctx, Revocation{User: "a b"}) }},
		{"revoke past", func() error { return c.Revoke(ctx, Revocation{User: "1", Until: time.Now().Add(-time.Second)}) }},
		{"revoke long token id", func() error { return c.Revoke(ctx, Revocation{TokenID: strings.Repeat("j", 257)}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if n := len(g.requests()); n != 0 {
		t.Errorf("the gateway got %d requests, want none", n)
	}
}

func TestResponderRefusesInvalid(t *testing.T) {
	srv := natstest.Run(t, false)
	g := fleet()[0]
	serve(t, srv, g, ServeConfig{})
	nc := dial(t, srv)
	tests := []struct {
		subject string
		body    string
	}{
		{SubjectPresence, "\x00\xff garbage"},
		{SubjectPresence, `{"user":"a.b"}`},
		{SubjectPresence, `{"topic":"user.1"}`},
		{SubjectPresence, `["user"]`},
		{SubjectDisconnect, ``},
		{SubjectDisconnect, `{"user":"1"}`},
		{SubjectDisconnect, `{"user":"1","reason":"revoked","revocation":{"user":"1"}}`},
		{SubjectDisconnect, `{"reason":"logout"}`},
		{SubjectDisconnect, `{"user":1,"reason":"logout"}`},
		{SubjectSubscribe, `{"user":"1","topic":"topic.>"}`},
		{SubjectSubscribe, `null`},
		{SubjectUnsubscribe, `{"user":"","topic":"topic.a"}`},
		{SubjectUnsubscribe, `{`},
	}
	for _, tt := range tests {
		t.Run(tt.subject+" "+tt.body, func(t *testing.T) {
			m, err := nc.Request("notify."+tt.subject, []byte(tt.body), 5*time.Second)
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			var a struct{ Gateway, Error string }
			if err := json.Unmarshal(m.Data, &a); err != nil {
				t.Fatalf("answer %q: %v", m.Data, err)
			}
			if a.Gateway != g.id || !strings.HasPrefix(a.Error, "invalid: ") {
				t.Errorf("answer = %s, want gateway %s and an invalid error", m.Data, g.id)
			}
		})
	}
	// A request without a reply subject is ignored; one request's handling
	// ends before the next on the same subject starts.
	nc.Publish("notify.ctl.stats", nil)
	if _, err := nc.Request("notify.ctl.stats", []byte("anything"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if calls := g.requests(); len(calls) != 1 || calls[0] != "stats" {
		t.Errorf("gateway calls = %v, want only the stats request with a reply subject", calls)
	}
}

func TestResponderClose(t *testing.T) {
	srv := natstest.Run(t, false)
	r, err := Serve(dial(t, srv), fleet()[0], ServeConfig{Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(dial(t, srv), "p")
	if _, err := c.Stats(context.Background()); err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Drain is asynchronous: the interest goes away soon after Close.
	wstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if _, err := c.Stats(context.Background()); !errors.Is(err, ErrNoGateways) {
			return fmt.Errorf("Stats after Close = %v, want ErrNoGateways", err)
		}
		return nil
	})
	if _, err := Serve(dial(t, srv), fleet()[0], ServeConfig{Prefix: "bad..prefix"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Serve with a bad prefix = %v, want ErrInvalid", err)
	}
}

// TestCluster: a gateway on each node of a three-node cluster, the client
// on its own connection to the third: every request reaches all three,
// and a revocation stored at three replicas reaches each gateway's
// denylist.
func TestCluster(t *testing.T) {
	srvs := natstest.Cluster(t, 3)
	lists := make([]*Denylist, 3)
	for i, g := range fleet() {
		d, err := OpenDenylist(context.Background(), dial(t, srvs[i]), DenylistConfig{Manage: true, Replicas: 3, Memory: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		lists[i] = d
		serve(t, srvs[i], g, ServeConfig{Denylist: d})
	}
	c := NewClient(dial(t, srvs[2]), "")
	c.Expect = 3
	// Interest crosses the routes asynchronously: poll until every
	// gateway answers.
	wstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		p, err := c.Presence(context.Background(), PresenceQuery{User: "42"})
		if err != nil || len(p.Gateways) != 3 {
			return fmt.Errorf("presence = %+v, %v; want 3 answers", p, err)
		}
		if p.Sockets != 3 || p.Connections != 7 {
			return fmt.Errorf("presence = %d sockets, %d connections; want 3, 7", p.Sockets, p.Connections)
		}
		return nil
	})
	d, err := c.Disconnect(context.Background(), Disconnect{User: "42", Reason: ReasonRevoked})
	if err != nil || d.Sockets != 3 || len(d.Gateways) != 3 {
		t.Fatalf("Disconnect = %+v, %v; want 3 sockets from 3 gateways", d, err)
	}
	issued := time.Now().Add(-time.Hour)
	for i, l := range lists {
		// Applied from the request before the answer, then kept by the
		// watch.
		if !l.Revoked("42", "", issued) {
			t.Errorf("gateway %d: user 42 not revoked", i)
		}
	}
	if err := c.Revoke(context.Background(), Revocation{TokenID: "jti-1", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	pollRevoked(t, lists, "x", "jti-1", true)
}

// pollRevoked waits until every list's Revoked(user, tokenID, zero) is want.
func pollRevoked(t *testing.T, lists []*Denylist, user, tokenID string, want bool) {
	t.Helper()
	wstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for i, l := range lists {
			if l.Revoked(user, tokenID, time.Time{}) != want {
				return fmt.Errorf("denylist %d: Revoked(%q, %q) is not %v", i, user, tokenID, want)
			}
		}
		return nil
	})
}
