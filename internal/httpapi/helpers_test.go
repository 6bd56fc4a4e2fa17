package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Keys of the tests.
const (
	key1 = "k1-0123456789abcdef"
	key2 = "k2-fedcba9876543210"
)

// connect opens a client connection to srv, closed at the end of the test.
func connect(t testing.TB, srv *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("nats.Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// applyStream creates the durable stream on srv, in memory.
func applyStream(t testing.TB, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bus.ApplyStream(ctx, nc, bus.StreamConfig{Memory: true}); err != nil {
		t.Fatalf("ApplyStream: %v", err)
	}
}

// env is an API under test: its HTTP server and the NATS server behind it.
type env struct {
	url string
	srv *server.Server
	nc  *nats.Conn // the API's connection
}

// newEnv serves New(cfg) over HTTP on 127.0.0.1, with a Publisher and a
// control Client on a connection to srv unless cfg has its own. The control
// client expects `expect` gateways, so that calls end as soon as all have
// answered (zero: unknown).
func newEnv(t testing.TB, srv *server.Server, cfg Config, expect int) *env {
	t.Helper()
	nc := connect(t, srv)
	if cfg.Publisher == nil {
		cfg.Publisher = bus.NewPublisher(nc, "")
	}
	if cfg.Control == nil {
		cfg.Control = newControl(nc, expect)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &env{url: hs.URL, srv: srv, nc: nc}
}

// newControl returns a control client on nc that ends a call once expect
// gateways answered.
func newControl(nc *nats.Conn, expect int) *control.Client {
	c := control.NewClient(nc, "")
	c.Expect = expect
	return c
}

// reply is an HTTP answer, its body decoded as a JSON object.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// errorCode returns the code of an error answer, or "".
func (r reply) errorCode() string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// num returns the number at key, or -1.
func (r reply) num(key string) float64 {
	if n, ok := r.body[key].(float64); ok {
		return n
	}
	return -1
}

// call makes one request. key goes in a Bearer Authorization header unless
// empty; a POST with a body gets Content-Type application/json.
func (e *env) call(t testing.TB, method, path, key, body string) reply {
	t.Helper()
	hdr := http.Header{}
	if key != "" {
		hdr.Set("Authorization", "Bearer "+key)
	}
	if method == http.MethodPost {
		hdr.Set("Content-Type", "application/json")
	}
	return e.do(t, method, path, hdr, body)
}

// do makes one request with exactly the headers hdr.
func (e *env) do(t testing.TB, method, path string, hdr http.Header, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewBufferString(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: answer %q is not a JSON object: %v", method, path, raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s %s: Content-Type = %q", method, path, ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s %s: Cache-Control = %q", method, path, cc)
	}
	return r
}

// fakeGateway is a control.Gateway holding sockets in a map: enough to
// check that the API reaches every gateway and reports what they say.
// Real gateways are tested end to end in the gateway package.
type fakeGateway struct {
	id string

	mu      sync.Mutex               // protects sockets
	sockets map[string][]*fakeSocket // by user
}

type fakeSocket struct {
	conn   string
	topics []string
}

// serveGateway answers the control requests on srv as gateway id, whose
// users hold the given sockets (user → connection ids).
func serveGateway(t testing.TB, srv *server.Server, id string, sockets map[string][]string) *fakeGateway {
	t.Helper()
	g := &fakeGateway{id: id, sockets: make(map[string][]*fakeSocket)}
	for user, conns := range sockets {
		for _, c := range conns {
			g.sockets[user] = append(g.sockets[user], &fakeSocket{conn: c})
		}
	}
	r, err := control.Serve(connect(t, srv), g, control.ServeConfig{})
	if err != nil {
		t.Fatalf("control.Serve: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return g
}

func (g *fakeGateway) ID() string { return g.id }

// totals returns the connections and users; g.mu is held.
func (g *fakeGateway) totals() (conns, users int) {
	for _, s := range g.sockets {
		conns += len(s)
	}
	return conns, len(g.sockets)
}

func (g *fakeGateway) Presence(q control.PresenceQuery) control.GatewayPresence {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := control.GatewayPresence{Gateway: g.id}
	p.Connections, p.Users = g.totals()
	for _, s := range g.sockets[q.User] {
		p.Sockets = append(p.Sockets, control.Socket{Conn: s.conn, Topics: slices.Clone(s.topics)})
	}
	if q.Topic != "" {
		for _, ss := range g.sockets {
			for _, s := range ss {
				if slices.Contains(s.topics, q.Topic) {
					p.Subscribers++
				}
			}
		}
	}
	return p
}

func (g *fakeGateway) Disconnect(d control.Disconnect) control.GatewayCount {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := control.GatewayCount{Gateway: g.id}
	for user, ss := range g.sockets {
		if d.User != "" && user != d.User {
			continue
		}
		kept := ss[:0]
		for _, s := range ss {
			if d.Conn == "" || s.conn == d.Conn {
				c.Sockets++
				continue
			}
			kept = append(kept, s)
		}
		if len(kept) == 0 {
			delete(g.sockets, user)
		} else {
			g.sockets[user] = kept
		}
	}
	return c
}

func (g *fakeGateway) Subscribe(s control.Subscription) control.GatewayCount {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := control.GatewayCount{Gateway: g.id}
	for _, sock := range g.sockets[s.User] {
		if !slices.Contains(sock.topics, s.Topic) {
			sock.topics = append(sock.topics, s.Topic)
		}
		c.Sockets++
	}
	return c
}

func (g *fakeGateway) Unsubscribe(s control.Subscription) control.GatewayCount {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := control.GatewayCount{Gateway: g.id}
	for _, sock := range g.sockets[s.User] {
		if i := slices.Index(sock.topics, s.Topic); i >= 0 {
			sock.topics = slices.Delete(sock.topics, i, i+1)
			c.Sockets++
		}
	}
	return c
}

func (g *fakeGateway) Stats() control.GatewayStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := control.GatewayStats{Gateway: g.id, Version: "test"}
	st.Connections, st.Users = g.totals()
	topics := map[string]bool{}
	for _, ss := range g.sockets {
		for _, s := range ss {
			for _, tp := range s.topics {
				topics[tp] = true
			}
		}
	}
	st.Topics = len(topics)
	return st
}
