package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/wstest"
)

// signed signs an HS256 token for user with the given claims set on top of
// sub and exp.
func signed(t testing.TB, user string, mod func(*jwtClaims)) string {
	t.Helper()
	claims := jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: user, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	if mod != nil {
		mod(&claims)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPresence(t *testing.T) {
	e := newEnv(t, nil)
	a1, a2 := e.connect("ann", "topic.>"), e.connect("ann")
	e.connect("bob")
	a1.send(map[string]any{"op": "subscribe", "channel": "topic.team", "ref": 1})
	if m := a1.next(); m["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", m)
	}
	p := e.srv.Presence(control.PresenceQuery{User: "ann"})
	if p.Gateway != e.srv.ID() || p.Connections != 3 || p.Users != 2 || len(p.Sockets) != 2 {
		t.Fatalf("presence of ann = %+v, want 2 sockets of 3 connections and 2 users on %s", p, e.srv.ID())
	}
	conns := []string{p.Sockets[0].Conn, p.Sockets[1].Conn}
	slices.Sort(conns)
	want := []string{a1.ID, a2.ID}
	slices.Sort(want)
	if !slices.Equal(conns, want) {
		t.Errorf("sockets %v, want the welcomes' ids %v", conns, want)
	}
	for _, s := range p.Sockets {
		if wantTopics := map[bool][]string{true: {"topic.team"}, false: {}}[s.Conn == a1.ID]; !slices.Equal(s.Topics, wantTopics) {
			t.Errorf("socket %s topics %v, want %v", s.Conn, s.Topics, wantTopics)
		}
	}
	if p := e.srv.Presence(control.PresenceQuery{Topic: "topic.team"}); p.Subscribers != 1 || len(p.Sockets) != 0 {
		t.Errorf("presence of topic.team = %+v, want 1 subscriber", p)
	}
	if p := e.srv.Presence(control.PresenceQuery{User: "nobody"}); len(p.Sockets) != 0 || p.Connections != 3 {
		t.Errorf("presence of an unknown user = %+v, want no sockets", p)
	}
	if p := e.srv.Presence(control.PresenceQuery{User: "no.such user"}); len(p.Sockets) != 0 {
		t.Errorf("presence of an invalid user = %+v, want no sockets", p)
	}
	a2.Conn.Close()
	st := e.srv.Stats()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if st = e.srv.Stats(); st.Connections != 2 || st.Users != 2 || st.Topics != 1 {
			return fmt.Errorf("stats %+v, want 2 connections, 2 users, 1 topic", st)
		}
		return nil
	})
	if st.Gateway != e.srv.ID() || st.Uptime <= 0 || st.Draining {
		t.Errorf("stats %+v", st)
	}
}

func TestDisconnect(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ID = "gw-a" }) // a dash in the id: conn ids are "gw-a-<n>"
	for _, tc := range []struct {
		reason string
		code   ws.StatusCode
		result CloseReason
	}{
		{control.ReasonLogout, StatusLogout, ReasonLogout},
		{control.ReasonRevoked, StatusRevoked, ReasonRevoked},
		{control.ReasonReconnect, StatusDisconnected, ReasonDisconnected},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			e := e.as(t)
			user := "u-" + tc.reason
			a, b := e.connect(user), e.connect(user)
			other := e.connect("other-" + tc.reason)
			n := e.srv.Disconnect(control.Disconnect{User: user, Reason: tc.reason})
			if n.Sockets != 2 || n.Error != "" || n.Gateway != e.srv.ID() {
				t.Fatalf("disconnect = %+v, want 2 sockets", n)
			}
			for _, c := range []*client{a, b} {
				if code, _ := c.closedWith(); code != tc.code {
					t.Errorf("close code %d, want %d", code, tc.code)
				}
			}
			expectCount(t, "closes "+tc.result.String(), e.closeCount(tc.result), 2)
			expectPong(t, other, 1)
		})
	}
	t.Run("conn", func(t *testing.T) {
		e := e.as(t)
		a, b := e.connect("carl"), e.connect("carl")
		if n := e.srv.Disconnect(control.Disconnect{Conn: a.ID, User: "someone-else", Reason: control.ReasonReconnect}); n.Sockets != 0 {
			t.Fatalf("disconnect of carl's socket named as someone else's = %+v, want none", n)
		}
		if n := e.srv.Disconnect(control.Disconnect{Conn: "ffffff-1", Reason: control.ReasonReconnect}); n.Sockets != 0 {
			t.Fatalf("disconnect of another gateway's socket = %+v, want none", n)
		}
		if n := e.srv.Disconnect(control.Disconnect{Conn: a.ID, Reason: control.ReasonReconnect}); n.Sockets != 1 {
			t.Fatalf("disconnect by id = %+v, want 1 socket", n)
		}
		if code := a.closeCode(); code != StatusDisconnected {
			t.Errorf("close code %d, want %d", code, StatusDisconnected)
		}
		expectPong(t, b, 1)
	})
	t.Run("refused", func(t *testing.T) {
		if n := e.srv.Disconnect(control.Disconnect{User: "x", Reason: "because"}); n.Error == "" || n.Sockets != 0 {
			t.Errorf("unknown reason: %+v, want an error", n)
		}
		if n := e.srv.Disconnect(control.Disconnect{User: "nobody", Reason: control.ReasonLogout}); n.Error != "" || n.Sockets != 0 {
			t.Errorf("unknown user: %+v, want 0 sockets", n)
		}
	})
}

func TestServerSubscribe(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxSubscriptions = 1 })
	baseline := e.bus.Subscriptions()
	a, b := e.connect("dora"), e.connect("dora") // tokens allow no topic
	full := e.connect("dora", "topic.>")
	full.send(map[string]any{"op": "subscribe", "channel": "topic.other", "ref": 1})
	if m := full.next(); m["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", m)
	}
	n := e.srv.Subscribe(control.Subscription{User: "dora", Topic: "topic.team"})
	if n.Sockets != 2 || n.Refused != 1 {
		t.Fatalf("subscribe = %+v, want 2 sockets and 1 refused at its limit", n)
	}
	for _, c := range []*client{a, b} {
		if m := c.next(); m["type"] != "subscribed" || m["channel"] != "topic.team" || m["server"] != true || m["ref"] != nil {
			t.Fatalf("got %v, want a server subscribed frame", m)
		}
	}
	if err := e.pub.Topic("team", []byte(`"hi"`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{a, b} {
		if m := c.next(); m["channel"] != "topic.team" || m["data"] != "hi" {
			t.Fatalf("got %v, want the topic's message", m)
		}
	}
	full.silent(50 * time.Millisecond)
	if n := e.srv.Subscribe(control.Subscription{User: "dora", Topic: "topic.team"}); n.Sockets != 2 {
		t.Fatalf("subscribe again = %+v, want the 2 sockets in it", n)
	}
	a.next()
	b.next()
	if n := e.srv.Unsubscribe(control.Subscription{User: "dora", Topic: "topic.team"}); n.Sockets != 2 {
		t.Fatalf("unsubscribe = %+v, want 2 sockets", n)
	}
	for _, c := range []*client{a, b} {
		if m := c.next(); m["type"] != "unsubscribed" || m["channel"] != "topic.team" || m["server"] != true {
			t.Fatalf("got %v, want a server unsubscribed frame", m)
		}
	}
	if n := e.srv.Unsubscribe(control.Subscription{User: "dora", Topic: "topic.team"}); n.Sockets != 0 {
		t.Fatalf("unsubscribe again = %+v, want 0 sockets", n)
	}
	if n := e.srv.Subscribe(control.Subscription{User: "dora", Topic: "user.1"}); n.Error == "" {
		t.Fatalf("subscribe to a user channel = %+v, want an error", n)
	}
	// A client may leave a topic a service put it in.
	e.srv.Subscribe(control.Subscription{User: "dora", Topic: "topic.team"})
	a.next()
	b.next()
	a.send(map[string]any{"op": "unsubscribe", "channel": "topic.team", "ref": 2})
	if m := a.next(); m["type"] != "unsubscribed" || m["ref"] != float64(2) {
		t.Fatalf("client unsubscribe: %v", m)
	}
	for _, c := range []*client{a, b, full} {
		c.Conn.Close()
	}
	expectSubscriptions(t, e, baseline)
}

// revocations is a Revocations that refuses what it holds and records what
// it was asked.
type revocations struct {
	mu      sync.Mutex
	revoked map[string]bool // user or token id
	asked   []Identity
}

func (r *revocations) Revoked(user, tokenID string, issued time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked = append(r.asked, Identity{User: user, TokenID: tokenID, IssuedAt: issued})
	return r.revoked[user] || r.revoked[tokenID]
}

func TestRevokedTokenRefused(t *testing.T) {
	r := &revocations{revoked: map[string]bool{"eve": true, "jti-1": true}}
	e := newEnv(t, func(c *Config) { c.Revocations = r })
	iat := time.Now().Add(-time.Minute).Truncate(time.Second)
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"user", signed(t, "eve", nil), http.StatusUnauthorized},
		{"token id", signed(t, "fay", func(c *jwtClaims) { c.ID = "jti-1" }), http.StatusUnauthorized},
		{"fine", signed(t, "fay", func(c *jwtClaims) { c.ID = "jti-2"; c.IssuedAt = jwt.NewNumericDate(iat) }), http.StatusSwitchingProtocols},
	} {
		_, err := e.dialURL(e.url+"?token="+tc.token, nil)
		status := http.StatusSwitchingProtocols
		if err != nil {
			status = rejectedStatus(t, err)
		}
		if status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, status, tc.status)
		}
	}
	expectCount(t, "upgrades revoked", e.upgradeCount(resultRevoked), 2)
	r.mu.Lock()
	defer r.mu.Unlock()
	if last := r.asked[len(r.asked)-1]; last.User != "fay" || last.TokenID != "jti-2" || !last.IssuedAt.Equal(iat) {
		t.Errorf("asked %+v, want fay's jti-2 issued at %v", last, iat)
	}
}

// rejectedStatus returns the HTTP status of a refused upgrade.
func rejectedStatus(t testing.TB, err error) int {
	t.Helper()
	var se ws.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("dial: %v, want an HTTP refusal", err)
	}
	return int(se)
}
