package bus

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// delivery is one Handler call, with the payload copied.
type delivery struct {
	channel string
	payload string
	pos     Position
}

// recorder collects Handler calls on a buffered channel.
type recorder chan delivery

func (r recorder) handle(ch string, payload []byte, pos Position) {
	r <- delivery{channel: ch, payload: string(payload), pos: pos}
}

// next returns the next delivery or fails after a deadline.
func (r recorder) next(t testing.TB) delivery {
	t.Helper()
	select {
	case d := <-r:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5s")
		return delivery{}
	}
}

// expect fails unless the next delivery is want.
func (r recorder) expect(t testing.TB, want delivery) {
	t.Helper()
	if got := r.next(t); got != want {
		t.Fatalf("delivery = %+v, want %+v", got, want)
	}
}

// newBus starts a bus with an embedded server on a free port (unless cfg
// says otherwise), closed at the end of the test, and starts it with h, or
// with the returned recorder's handle when h is nil.
func newBus(t testing.TB, cfg Config, h Handler) (*Bus, recorder) {
	t.Helper()
	rec := make(recorder, 1024)
	if h == nil {
		h = rec.handle
	}
	if cfg.URL == "" && cfg.EmbeddedListen == "" {
		cfg.EmbeddedListen = "127.0.0.1:0"
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Start(h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return b, rec
}

// newPublisher dials addr with a separate connection, as a service would.
func newPublisher(t testing.TB, addr string) *Publisher {
	t.Helper()
	nc, err := Dial(addr, "test-publisher")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(nc.Close)
	return NewPublisher(nc, "")
}

// runServer starts a NATS server on 127.0.0.1:port (-1 for a free one),
// shut down at the end of the test if still running.
func runServer(t testing.TB, port int) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server on port %d not ready", port)
	}
	t.Cleanup(func() { shutdown(srv) })
	return srv
}

// serverSubs returns how many subscriptions the server holds for the
// connection named name.
func serverSubs(t testing.TB, srv *server.Server, name string) int {
	t.Helper()
	cz, err := srv.Connz(&server.ConnzOptions{Limit: 1 << 20})
	if err != nil {
		t.Fatalf("Connz: %v", err)
	}
	n := 0
	for _, c := range cz.Conns {
		if c.Name == name || c.Name == name+subConnSuffix {
			n += int(c.NumSubs)
		}
	}
	return n
}

// deadURL returns the URL of a port where nothing listens.
func deadURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "nats://" + addr
}
