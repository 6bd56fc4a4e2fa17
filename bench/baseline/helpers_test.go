package main

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/wstest"
)

// No goroutine is ignored: the test stops the embedded NATS server, both
// NATS connections, the HTTP server and every WebSocket.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	t    *testing.T
	ns   *natsserver.Server
	srv  *server
	http *http.Server
	url  string
	pub  *nats.Conn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	s, err := newServer(config{NATSURL: ns.ClientURL(), Prefix: "notify"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s.handler()}
	go func() { _ = hs.Serve(ln) }()
	pub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ns: ns, srv: s, http: hs, url: "ws://" + ln.Addr().String(), pub: pub}
}

func (e *env) close() {
	_ = e.http.Close()
	e.srv.Close()
	e.pub.Close()
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
}

func (e *env) publish(subject, payload string) {
	e.t.Helper()
	if err := e.pub.Publish(subject, []byte(payload)); err != nil {
		e.t.Fatal(err)
	}
	if err := e.pub.Flush(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) dial(user string) *websocket.Conn {
	e.t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(e.url+"/ws?user="+user, nil)
	if err != nil {
		e.t.Fatalf("dial %s: %v", user, err)
	}
	_ = resp.Body.Close()
	return c
}

// read returns the next text message, failing after 5 s.
func read(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("message type %d", typ)
	}
	return string(b)
}

func expect(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	if got := read(t, c); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func (e *env) gauge() float64 {
	var m dto.Metric
	if err := e.srv.connections.Write(&m); err != nil {
		e.t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// connections polls the connections gauge until it is want, for up to 5 s.
// each, when not nil, runs before every look.
func (e *env) connections(want float64, each func()) {
	e.t.Helper()
	wstest.CheckFor(e.t, 5*time.Second, 5*time.Millisecond, func() error {
		if each != nil {
			each()
		}
		if got := e.gauge(); got != want {
			return fmt.Errorf("%v connections, want %v", got, want)
		}
		return nil
	})
}
