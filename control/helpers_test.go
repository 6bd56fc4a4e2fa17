package control

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dial connects to srv, closed at the end of the test.
func dial(t testing.TB, srv *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serve starts a Responder for g on a connection of its own to srv,
// closed at the end of the test.
func serve(t testing.TB, srv *server.Server, g Gateway, cfg ServeConfig) *Responder {
	t.Helper()
	r, err := Serve(dial(t, srv), g, cfg)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// fakeGateway is an in-memory Gateway: users hold sockets, sockets hold
// topics. It records the requests it was given.
type fakeGateway struct {
	id string

	mu      sync.Mutex
	sockets map[string][]Socket // guarded by mu: user → sockets
	calls   []any               // guarded by mu: the requests, in order
	hold    chan struct{}       // when set, Presence waits until it is closed
}

// newFake returns a gateway with id holding, for each user in users, one
// socket per entry (conn id "<id>-<user>-<i>") in the topics given.
func newFake(id string, users map[string][][]string) *fakeGateway {
	g := &fakeGateway{id: id, sockets: make(map[string][]Socket)}
	for user, socks := range users {
		for i, topics := range socks {
			g.sockets[user] = append(g.sockets[user], Socket{Conn: fmt.Sprintf("%s-%s-%d", id, user, i), Topics: slices.Clone(topics)})
		}
	}
	return g
}

func (g *fakeGateway) record(req any) {
	g.mu.Lock()
	g.calls = append(g.calls, req)
	g.mu.Unlock()
}

// requests returns the requests the gateway was given.
func (g *fakeGateway) requests() []any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

func (g *fakeGateway) ID() string { return g.id }

func (g *fakeGateway) totals() (conns, users int) {
	for _, s := range g.sockets {
		conns += len(s)
		if len(s) > 0 {
			users++
		}
	}
	return conns, users
}

func (g *fakeGateway) Presence(q PresenceQuery) GatewayPresence {
	g.record(q)
	if g.hold != nil {
		<-g.hold
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := GatewayPresence{Gateway: g.id}
	p.Connections, p.Users = g.totals()
	p.Sockets = slices.Clone(g.sockets[q.User])
	for _, socks := range g.sockets {
		for _, s := range socks {
			if q.Topic != "" && slices.Contains(s.Topics, q.Topic) {
				p.Subscribers++
			}
		}
	}
	return p
}

func (g *fakeGateway) Disconnect(d Disconnect) GatewayCount {
	g.record(d)
	g.mu.Lock()
	defer g.mu.Unlock()
	n := GatewayCount{Gateway: g.id}
	for user, socks := range g.sockets {
		if d.User != "" && user != d.User {
			continue
		}
		g.sockets[user] = slices.DeleteFunc(socks, func(s Socket) bool {
			if d.Conn == "" || s.Conn == d.Conn {
				n.Sockets++
				return true
			}
			return false
		})
	}
	return n
}

func (g *fakeGateway) Subscribe(s Subscription) GatewayCount {
	g.record(s)
	g.mu.Lock()
	defer g.mu.Unlock()
	n := GatewayCount{Gateway: g.id}
	for i := range g.sockets[s.User] {
		sock := &g.sockets[s.User][i]
		if !slices.Contains(sock.Topics, s.Topic) {
			sock.Topics = append(sock.Topics, s.Topic)
		}
		n.Sockets++
	}
	return n
}

func (g *fakeGateway) Unsubscribe(s Subscription) GatewayCount {
	g.record(s)
	g.mu.Lock()
	defer g.mu.Unlock()
	n := GatewayCount{Gateway: g.id}
	for i := range g.sockets[s.User] {
		sock := &g.sockets[s.User][i]
		if j := slices.Index(sock.Topics, s.Topic); j >= 0 {
			sock.Topics = slices.Delete(sock.Topics, j, j+1)
			n.Sockets++
		}
	}
	return n
}

func (g *fakeGateway) Stats() GatewayStats {
	g.record("stats")
	g.mu.Lock()
	defer g.mu.Unlock()
	st := GatewayStats{Gateway: g.id, Version: "test"}
	st.Connections, st.Users = g.totals()
	return st
}

// fleet returns three fake gateways: user "42" holds two sockets on gw-a
// and one on gw-c; topic.team-7 has subscribers on each.
func fleet() []*fakeGateway {
	return []*fakeGateway{
		newFake("gw-c", map[string][][]string{"42": {{"topic.team-7"}}, "7": {{}}}),
		newFake("gw-a", map[string][][]string{"42": {{"topic.team-7"}, {}}, "8": {{"topic.team-7"}}}),
		newFake("gw-b", map[string][][]string{"9": {{"topic.team-7"}, {"topic.other"}}}),
	}
}
