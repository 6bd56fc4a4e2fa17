package gateway

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
)

// withUpstream gives a gateway the id id and a real control.Upstream on its
// bus's NATS connection.
func withUpstream(t testing.TB, id string, mod func(*Config)) func(*Config) {
	return func(c *Config) {
		up, err := control.NewUpstream(c.Bus.(*bus.Bus).Conn(), "", id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { up.Close() })
		c.ID, c.Upstream = id, up
		if mod != nil {
			mod(c)
		}
	}
}

// stamp is what the tests' services answer: the headers the gateway
// stamped and the data the client sent.
type stamp struct {
	User    string          `json:"user"`
	Conn    string          `json:"conn"`
	Gateway string          `json:"gateway"`
	Data    json.RawMessage `json:"data"`
}

// respond subscribes a service on subject that answers every request with
// its stamp, or with what answer returns when it is not nil.
func respond(t testing.TB, nc *nats.Conn, subject string, answer func(*nats.Msg) *nats.Msg) {
	t.Helper()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		if answer != nil {
			if r := answer(m); r != nil {
				m.RespondMsg(r)
			}
			return
		}
		b, _ := json.Marshal(stamp{m.Header.Get(control.HeaderUser), m.Header.Get(control.HeaderConn), m.Header.Get(control.HeaderGateway), m.Data})
		m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// upstreamToken signs a token for user allowing upstream on patterns.
func upstreamToken(t testing.TB, user string, patterns ...string) string {
	return signed(t, user, func(c *jwtClaims) { c.Upstream = patterns })
}

func (e *env) connectToken(user, tok string) *client {
	e.t.Helper()
	c, err := e.dialURL(e.url+"?token="+tok, nil)
	if err != nil {
		e.t.Fatalf("dial as %s: %v", user, err)
	}
	c.welcomed(user)
	return c
}

func TestUpstream(t *testing.T) {
	e := newEnv(t, withUpstream(t, "gw1", func(c *Config) { c.MaxUpstreamRequests = 2 }))
	respond(t, e.nc, "notify.up.rpc.echo", nil)
	respond(t, e.nc, "notify.up.rpc.refuse", func(m *nats.Msg) *nats.Msg {
		r := nats.NewMsg(m.Reply)
		r.Header.Set(control.HeaderError, "not today")
		return r
	})
	respond(t, e.nc, "notify.up.rpc.text", func(m *nats.Msg) *nats.Msg {
		r := nats.NewMsg(m.Reply)
		r.Data = []byte("plain text")
		return r
	})
	respond(t, e.nc, "notify.up.rpc.slow", func(*nats.Msg) *nats.Msg { return nil })
	published, err := e.nc.SubscribeSync("notify.up.chat.>")
	if err != nil {
		t.Fatal(err)
	}
	e.nc.Flush()

	c := e.connectToken("gus", upstreamToken(t, "gus", "rpc.*", "chat.>"))
	// The client claims to be someone else in its data: the service sees
	// the gateway's stamp.
	c.send(map[string]any{"op": "request", "channel": "rpc.echo", "data": map[string]any{"user": "forged"}, "ref": 1})
	m := c.next()
	if m["type"] != "reply" || m["ref"] != float64(1) || m["channel"] != "rpc.echo" {
		t.Fatalf("request: %v, want its reply", m)
	}
	b, _ := json.Marshal(m["data"])
	var got stamp
	json.Unmarshal(b, &got)
	if got.User != "gus" || got.Conn != c.ID || got.Gateway != "gw1" || string(got.Data) != `{"user":"forged"}` {
		t.Fatalf("the service saw %+v, want gus on %s through gw1 with the client's data", got, c.ID)
	}

	c.send(map[string]any{"op": "publish", "channel": "chat.room-7", "data": []int{1, 2}, "ref": 2})
	if m := c.next(); m["type"] != "published" || m["ref"] != float64(2) || m["channel"] != "chat.room-7" {
		t.Fatalf("publish: %v, want published", m)
	}
	c.send(map[string]any{"op": "publish", "channel": "chat.room-7", "data": "quiet"}) // ref 0: no answer
	for _, want := range []string{"[1,2]", `"quiet"`} {
		msg, err := published.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(msg.Data) != want || msg.Subject != "notify.up.chat.room-7" || msg.Header.Get(control.HeaderUser) != "gus" ||
			msg.Header.Get(control.HeaderConn) != c.ID || msg.Header.Get(control.HeaderGateway) != "gw1" {
			t.Fatalf("the service got %s %q %v, want %s with gus's stamp", msg.Subject, msg.Data, msg.Header, want)
		}
	}

	for _, tc := range []struct {
		op   map[string]any
		code string
	}{
		{map[string]any{"op": "request", "channel": "rpc.refuse", "data": 1, "ref": 3}, codeRejected},
		{map[string]any{"op": "request", "channel": "rpc.text", "data": 1, "ref": 3}, codeBadReply},
		{map[string]any{"op": "request", "channel": "rpc.nobody", "data": 1, "ref": 3}, codeNoResponders},
		{map[string]any{"op": "request", "channel": "rpc.slow", "data": 1, "ref": 3, "timeout": 50}, codeTimeout},
		{map[string]any{"op": "request", "channel": "admin.x", "data": 1, "ref": 3}, codeForbidden},
		{map[string]any{"op": "publish", "channel": "rpc..x", "data": 1, "ref": 3}, codeInvalidChannel},
		{map[string]any{"op": "publish", "channel": "chat.>", "data": 1, "ref": 3}, codeInvalidChannel},
		{map[string]any{"op": "publish", "channel": "chat.x", "ref": 3}, codeBadRequest},
		{map[string]any{"op": "request", "channel": "rpc.echo", "data": 1}, codeBadRequest},
		{map[string]any{"op": "request", "channel": "rpc.echo", "data": 1, "ref": 3, "timeout": -1}, codeBadRequest},
	} {
		c.send(tc.op)
		ref, _ := tc.op["ref"].(int)
		if m := c.next(); m["type"] != "error" || m["code"] != tc.code || m["ref"] != float64(ref) {
			t.Errorf("%v: got %v, want error %s", tc.op, m, tc.code)
		}
	}
	expectPong(t, c, 4) // nothing else was answered

	// Two requests wait at most: a third is refused until one ends.
	for ref := 10; ref < 13; ref++ {
		c.send(map[string]any{"op": "request", "channel": "rpc.slow", "data": 1, "ref": ref, "timeout": 300})
	}
	if m := c.next(); m["code"] != codeTooManyRequests || m["ref"] != float64(12) {
		t.Fatalf("third request: %v, want too_many_requests", m)
	}
	if v := gaugeValue(t, e, "wsgate_upstream_pending"); v != 2 {
		t.Errorf("wsgate_upstream_pending = %v, want the 2 waiting requests", v)
	}
	for range 2 {
		if m := c.next(); m["code"] != codeTimeout {
			t.Fatalf("waiting request: %v, want its timeout", m)
		}
	}
	c.send(map[string]any{"op": "request", "channel": "rpc.echo", "data": 1, "ref": 14})
	if m := c.next(); m["type"] != "reply" || m["ref"] != float64(14) {
		t.Fatalf("request after the others ended: %v", m)
	}

	// A request whose connection closes before the reply leaves nothing.
	c.send(map[string]any{"op": "request", "channel": "rpc.slow", "data": 1, "ref": 15, "timeout": 100})
	c.Conn.Close()
	expectCount(t, "request timeouts", func() float64 { return counterValue(e.srv.metrics.upstream[1][upTimeout]) }, 4)
	if n := e.srv.upstreams.len(); n != 0 {
		t.Errorf("%d connections keep upstream state after closing", n)
	}
}

func TestUpstreamDisabled(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connectToken("hal", upstreamToken(t, "hal", ">"))
	c.send(map[string]any{"op": "request", "channel": "rpc.echo", "data": 1, "ref": 1})
	if m := c.next(); m["code"] != codeUpstreamDisabled {
		t.Fatalf("got %v, want upstream_disabled", m)
	}
}

// TestUpstreamFlood: a client sending far beyond its upstream rate gets
// rate_limited answers and keeps its connection; another client of the same
// gateway is served as before.
func TestUpstreamFlood(t *testing.T) {
	e := newEnv(t, withUpstream(t, "gw1", func(c *Config) {
		c.MessageRate = -1
		c.UpstreamRate, c.UpstreamBurst = 10, 5
	}))
	respond(t, e.nc, "notify.up.rpc.echo", nil)
	flood := e.connectToken("ivy", upstreamToken(t, "ivy", ">"))
	calm := e.connectToken("jon", upstreamToken(t, "jon", ">"))
	const n = 200
	for i := range n {
		flood.send(map[string]any{"op": "publish", "channel": "chat.spam", "data": i, "ref": i + 1})
	}
	calm.send(map[string]any{"op": "request", "channel": "rpc.echo", "data": "hi", "ref": 1})
	if m := calm.next(); m["type"] != "reply" {
		t.Fatalf("the calm client got %v, want its reply", m)
	}
	limited, ok := 0, 0
	for range n {
		switch m := flood.next(); {
		case m["code"] == codeRateLimited:
			limited++
		case m["type"] == "published":
			ok++
		default:
			t.Fatalf("flood got %v", m)
		}
	}
	// The burst and what the rate allows while 200 arrive.
	if ok < 6 || ok > 6+n/10 || limited != n-ok {
		t.Errorf("%d published and %d rate_limited, want about 6 published", ok, limited)
	}
	expectPong(t, flood, 1)
}
