package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"errors"

	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// TestControlRoutes runs every control route against two gateways that
// answer over a real NATS server.
func TestControlRoutes(t *testing.T) {
	srv := natstest.Run(t, false)
	serveGateway(t, srv, "gw-a", map[string][]string{"42": {"a-1", "a-2"}, "7": {"a-3"}})
	serveGateway(t, srv, "gw-b", map[string][]string{"42": {"b-1"}})
	e := newEnv(t, srv, Config{Keys: []string{key1}}, 2)

	type want map[string]float64 // number fields of the answer
	steps := []struct {
		name         string
		method, path string
		body         string
		want         want
		online       any // presence: the "online" field, nil elsewhere
	}{
		{name: "totals", method: "GET", path: "/api/v1/presence",
			want: want{"answered": 2, "connections": 4, "users": 3}, online: false},
		{name: "user online", method: "GET", path: "/api/v1/presence?user=42",
			want: want{"answered": 2, "sockets": 3}, online: true},
		{name: "unknown user", method: "GET", path: "/api/v1/presence?user=nobody",
			want: want{"answered": 2, "sockets": 0}, online: false},
		{name: "stats", method: "GET", path: "/api/v1/stats",
			want: want{"answered": 2, "connections": 4, "users": 3}},
		{name: "subscribe", method: "POST", path: "/api/v1/subscribe", body: `{"user":"42","topic":"topic.team-7"}`,
			want: want{"answered": 2, "sockets": 3, "refused": 0}},
		{name: "topic subscribers", method: "GET", path: "/api/v1/presence?topic=topic.team-7",
			want: want{"answered": 2, "subscribers": 3}, online: false},
		{name: "unsubscribe", method: "POST", path: "/api/v1/unsubscribe", body: `{"user":"42","topic":"topic.team-7"}`,
			want: want{"answered": 2, "sockets": 3}},
		{name: "topic empty", method: "GET", path: "/api/v1/presence?topic=topic.team-7",
			want: want{"answered": 2, "subscribers": 0}, online: false},
		{name: "disconnect one socket", method: "POST", path: "/api/v1/disconnect", body: `{"conn":"a-3","reason":"reconnect"}`,
			want: want{"answered": 2, "sockets": 1}},
		{name: "disconnect user", method: "POST", path: "/api/v1/disconnect", body: `{"user":"42","reason":"logout"}`,
			want: want{"answered": 2, "sockets": 3}},
		{name: "user gone", method: "GET", path: "/api/v1/presence?user=42",
			want: want{"answered": 2, "sockets": 0, "connections": 0}, online: false},
		{name: "disconnect unknown user", method: "POST", path: "/api/v1/disconnect", body: `{"user":"nobody","reason":"logout"}`,
			want: want{"answered": 2, "sockets": 0}},
		{name: "subscribe unknown user", method: "POST", path: "/api/v1/subscribe", body: `{"user":"nobody","topic":"topic.x"}`,
			want: want{"answered": 2, "sockets": 0}},
	}
	for _, s := range steps {
		r := e.call(t, s.method, s.path, key1, s.body)
		if r.status != 200 {
			t.Fatalf("%s: status %d: %s", s.name, r.status, r.raw)
		}
		for k, v := range s.want {
			if got := r.num(k); got != v {
				t.Errorf("%s: %s = %v, want %v (%s)", s.name, k, got, v, r.raw)
			}
		}
		if gws, ok := r.body["gateways"].([]any); !ok || len(gws) != 2 {
			t.Errorf("%s: gateways %v, want two", s.name, r.body["gateways"])
		}
		if s.online != nil && r.body["online"] != s.online {
			t.Errorf("%s: online = %v, want %v", s.name, r.body["online"], s.online)
		}
	}
}

// TestNoGateways: with no gateway listening, every control route is 503
// no_gateways, at once rather than after a timeout.
func TestNoGateways(t *testing.T) {
	e := newEnv(t, natstest.Run(t, false), Config{Insecure: true}, 0)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/presence?user=42", ""},
		{"GET", "/api/v1/presence", ""},
		{"GET", "/api/v1/stats", ""},
		{"POST", "/api/v1/disconnect", `{"user":"42","reason":"logout"}`},
		{"POST", "/api/v1/subscribe", `{"user":"42","topic":"topic.x"}`},
		{"POST", "/api/v1/unsubscribe", `{"user":"42","topic":"topic.x"}`},
	} {
		r := e.call(t, c.method, c.path, "", c.body)
		if r.status != 503 || r.errorCode() != "no_gateways" {
			t.Errorf("%s %s: status %d: %s", c.method, c.path, r.status, r.raw)
		}
	}
}

// TestDisconnectRevoked: a revocation is stored in the denylist; without
// JetStream to store it, the sockets are still closed and the answer warns.
func TestDisconnectRevoked(t *testing.T) {
	body := `{"user":"42","reason":"revoked"}`
	t.Run("stored", func(t *testing.T) {
		srv := natstest.Run(t, true)
		nc := connect(t, srv)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		dl, err := control.OpenDenylist(ctx, nc, control.DenylistConfig{Manage: true, Memory: true})
		if err != nil {
			t.Fatalf("OpenDenylist: %v", err)
		}
		defer dl.Close()
		serveGateway(t, srv, "gw-a", map[string][]string{"42": {"a-1"}})
		e := newEnv(t, srv, Config{Insecure: true}, 1)
		r := e.call(t, "POST", "/api/v1/disconnect", "", body)
		if r.status != 200 || r.num("sockets") != 1 || r.body["warning"] != nil {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		// The denylist's watcher sees the revocation.
		wstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			if !dl.Revoked("42", "", time.Time{}) {
				return errors.New("the revocation did not reach the denylist")
			}
			return nil
		})
	})
	t.Run("no jetstream", func(t *testing.T) {
		srv := natstest.Run(t, false)
		serveGateway(t, srv, "gw-a", map[string][]string{"42": {"a-1", "a-2"}})
		e := newEnv(t, srv, Config{Insecure: true}, 1)
		r := e.call(t, "POST", "/api/v1/disconnect", "", body)
		if r.status != 200 || r.num("sockets") != 2 || r.num("answered") != 1 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if w, _ := r.body["warning"].(string); !strings.Contains(w, "denylist") {
			t.Errorf("warning %q, want one about the denylist", w)
		}
	})
	t.Run("no jetstream, no gateways", func(t *testing.T) {
		e := newEnv(t, natstest.Run(t, false), Config{Insecure: true}, 1)
		r := e.call(t, "POST", "/api/v1/disconnect", "", body)
		if r.status != 503 || r.errorCode() != "no_gateways" {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	})
}

// TestControlDeadline: a call whose time ran out is 504.
func TestControlDeadline(t *testing.T) {
	srv := natstest.Run(t, false)
	serveGateway(t, srv, "gw-a", nil)
	e := newEnv(t, srv, Config{Insecure: true, Timeout: time.Nanosecond}, 1)
	r := e.call(t, "GET", "/api/v1/stats", "", "")
	if r.status != 504 || r.errorCode() != "timeout" {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
}
