package bench

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/natstest"
)

// newFleet starts n gateways with the control plane (responder, denylist
// following its bucket, upstream) on one real NATS server with JetStream,
// as wsgate --nats-url wires them, and returns their URLs and the NATS
// URL.
func newFleet(t *testing.T, n int) ([]string, string) {
	t.Helper()
	srv := natstest.Run(t, true)
	var urls []string
	for i := range n {
		b, err := bus.New(bus.Config{URL: srv.ClientURL()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		deny, err := control.OpenDenylist(ctx, b.Conn(), control.DenylistConfig{Manage: true, Memory: true})
		cancel()
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		id := "gw" + string(rune('a'+i))
		up, err := control.NewUpstream(b.Conn(), "", id)
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		s, err := gateway.New(gateway.Config{Bus: b, Auth: gateway.InsecureAuth{}, Logger: zap.NewNop(), ID: id,
			Revocations: deny, Upstream: up})
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		if err := b.Start(s.Deliver); err != nil {
			t.Fatal(err)
		}
		resp, err := control.Serve(b.Conn(), s, control.ServeConfig{Denylist: deny})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		t.Cleanup(func() {
			s.Close()
			if err := <-served; !errors.Is(err, gateway.ErrServerClosed) {
				t.Errorf("Serve returned %v", err)
			}
			resp.Close()
			up.Close()
			deny.Close()
			b.Close()
		})
		urls = append(urls, "ws://"+ln.Addr().String()+"/ws")
	}
	return urls, srv.ClientURL()
}

// TestControl queries presence and disconnects users across three
// gateways, after storing revocations of other users; every request is
// answered by the three, every disconnected socket reads its close frame.
func TestControl(t *testing.T) {
	urls, natsURL := newFleet(t, 3)
	for _, reason := range []string{"reconnect", "logout"} {
		t.Run(reason, func(t *testing.T) {
			cfg := Config{Scenario: ScenarioControl, URLs: urls, NATS: natsURL, Rate: 5000,
				Settle: Duration(10 * time.Millisecond), Timeout: Duration(10 * time.Second), UserPrefix: "u" + reason,
				Conns: 150, Queries: 60, Disconnects: 12, DisconnectReason: reason, Revocations: 25}
			res := runOK(t, cfg)
			c := res.Control
			if c == nil {
				t.Fatal("no control figures")
			}
			if c.Gateways != 3 || c.Queries != 60 || c.QueriesComplete != 60 || c.QueriesOnline != 60 || c.QueryErrors != 0 {
				t.Errorf("presence %+v: want 60 queries, each answered by 3 gateways and finding the user", c)
			}
			if c.PresenceLatency.Count != 60 || c.QueriesPerS <= 0 {
				t.Errorf("presence latency %+v, %v/s", c.PresenceLatency, c.QueriesPerS)
			}
			if c.Disconnects != 12 || c.DisconnectsComplete != 12 || c.SocketsClosed != 12 || c.DisconnectErrors != 0 {
				t.Errorf("disconnects %+v: want 12, each answered by 3 gateways, 12 sockets closed", c)
			}
			code := map[string]string{"reconnect": "server_close_4004", "logout": "server_close_4005"}[reason]
			if c.CloseFrames != 12 || c.CloseLatency.Count != 12 || c.CloseCodes[code] != 12 {
				t.Errorf("close frames %d, latency %+v, codes %v; want 12 %s", c.CloseFrames, c.CloseLatency, c.CloseCodes, code)
			}
			if c.CloseLatency.Max <= 0 || c.DisconnectLatency.Count != 12 {
				t.Errorf("disconnect latency %+v, close latency %+v", c.DisconnectLatency, c.CloseLatency)
			}
			if v := res.Revocations; v == nil || v.Stored != 25 {
				t.Errorf("revocations %+v, want 25 stored", v)
			}
			if res.Conns.Established != 150 {
				t.Errorf("established %d, want 150", res.Conns.Established)
			}
		})
	}
}

// TestUpstream sends request ops through one gateway to wsbench's own
// responder: within the upstream limits everything is answered; beyond
// them the gateway says rate_limited.
func TestUpstream(t *testing.T) {
	urls, natsURL := newFleet(t, 1)
	for _, tc := range []struct {
		name        string
		conns       int
		rate        float64
		wantLimited bool
	}{
		{"within the limits", 60, 300, false},      // 5 per second per connection
		{"beyond the upstream rate", 4, 200, true}, // 50 per second per connection, 10 allowed
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Scenario: ScenarioUpstream, URLs: urls[:1], NATS: natsURL, Rate: 5000,
				Settle: Duration(10 * time.Millisecond), Timeout: Duration(10 * time.Second),
				Conns: tc.conns, MsgRate: tc.rate, Hold: Duration(time.Second)}
			res := runOK(t, cfg)
			u := res.Upstream
			if u == nil {
				t.Fatal("no upstream figures")
			}
			want := int64(tc.rate)
			if u.Sent != want || u.WriteFailed != 0 {
				t.Errorf("sent %d (%d not written), want %d", u.Sent, u.WriteFailed, want)
			}
			limited := u.Errors["rate_limited"]
			if got := u.Replies + limited; got != want || u.Answered != u.Replies {
				t.Errorf("replies %d + rate_limited %d = %d, answered %d; want %d answered or limited", u.Replies, limited, got, u.Answered, want)
			}
			if tc.wantLimited != (limited > 0) || len(u.Errors) > 1 || len(u.Errors) == 1 && limited == 0 {
				t.Errorf("errors %v; rate limited wanted: %v", u.Errors, tc.wantLimited)
			}
			if u.Latency.Count != u.Replies || u.RepliesPerS <= 0 || u.SentPerS <= 0 {
				t.Errorf("latency %+v, %v replies/s, %v sent/s", u.Latency, u.RepliesPerS, u.SentPerS)
			}
		})
	}
}
