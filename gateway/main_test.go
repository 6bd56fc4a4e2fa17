package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wsgate/wsgate/bus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// env is a gateway on 127.0.0.1:0 with a real embedded NATS server behind a
// real bus, and a publisher on its own NATS connection.
type env struct {
	t    testing.TB
	bus  *bus.Bus
	srv  *Server
	url  string
	addr string // host:port of the listener
	nc   *nats.Conn
	pub  *bus.Publisher
}

func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	b, err := bus.New(bus.Config{EmbeddedListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := NewJWTAuth(JWTConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	// Shutdown closes everything at once unless a test asks for a drain.
	cfg := Config{Bus: b, Auth: auth, PoolSize: 16, Logger: zap.NewNop(), DrainDelay: -1, DrainTimeout: -1}
	if _, fuzz := t.(*testing.F); !fuzz { // a fuzz target must not log through f
		cfg.Logger = zaptest.NewLogger(t)
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	if err := b.Start(s.Deliver); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	nc, err := bus.Dial(b.ClientURL(), "test-publisher")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, bus: b, srv: s, url: "ws://" + ln.Addr().String() + "/ws", addr: ln.Addr().String(), nc: nc, pub: bus.NewPublisher(nc, "")}
	t.Cleanup(func() {
		nc.Close()
		s.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		b.Close()
	})
	return e
}

// as returns a view of e that reports to t (a fuzz target's own t).
func (e *env) as(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// token signs an HS256 token for user with the given topic patterns.
func token(t testing.TB, user string, ttl time.Duration, channels ...string) string {
	t.Helper()
	claims := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: user, ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl))},
		Channels:         channels,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// client is a real WebSocket client (gobwas/ws client side: masked frames,
// answers pings, answers close).
type client struct {
	t    testing.TB
	conn net.Conn
	rw   io.ReadWriter
}

type readWriter struct {
	io.Reader
	io.Writer
}

func (e *env) dialURL(url string, header http.Header) (*client, error) {
	d := ws.Dialer{Timeout: 5 * time.Second, Header: ws.HandshakeHeaderHTTP(header)}
	conn, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	c := &client{t: e.t, conn: conn, rw: conn}
	if br != nil {
		c.rw = readWriter{Reader: io.MultiReader(br, conn), Writer: conn}
	}
	e.t.Cleanup(func() { conn.Close() })
	return c, nil
}

// dialNonReader connects as user a client that will not read: its receive
// buffer is tiny, so the kernel holds little for it.
func (e *env) dialNonReader(user string) net.Conn {
	e.t.Helper()
	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}
	conn, _, _, err := d.Dial(context.Background(), e.url+"?token="+token(e.t, user, time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

// connect dials as user with a token allowing channels and reads the welcome.
func (e *env) connect(user string, channels ...string) *client {
	e.t.Helper()
	c, err := e.dialURL(e.url+"?token="+token(e.t, user, time.Hour, channels...), nil)
	if err != nil {
		e.t.Fatalf("dial as %s: %v", user, err)
	}
	w := c.next()
	if w["type"] != "welcome" || w["user"] != user {
		e.t.Fatalf("first frame = %v, want a welcome for %s", w, user)
	}
	return c
}

// next reads the next text message as a JSON object, failing after 5s.
func (c *client) next() map[string]any {
	c.t.Helper()
	m, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *client) read(timeout time.Duration) (map[string]any, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	data, err := wsutil.ReadServerText(c.rw)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("frame %q: %w", data, err)
	}
	return m, nil
}

// silent asserts that nothing arrives within d.
func (c *client) silent(d time.Duration) {
	c.t.Helper()
	m, err := c.read(d)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("got %v, %v; want nothing", m, err)
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := wsutil.WriteClientText(c.conn, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// closeCode reads until the server closes and returns its close code.
func (c *client) closeCode() ws.StatusCode {
	c.t.Helper()
	code, _ := c.closedWith()
	return code
}

// closedWith reads until the server's close frame and returns its code and
// reason.
func (c *client) closedWith() (ws.StatusCode, string) {
	c.t.Helper()
	for {
		_, err := c.read(5 * time.Second)
		if err == nil {
			continue
		}
		var ce wsutil.ClosedError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		c.t.Fatalf("read %v; want a close frame", err)
	}
}

// checkFor polls f until it returns nil or total passes.
func checkFor(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
