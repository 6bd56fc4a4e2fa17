package gateway

// The gateway's test kit: a real gateway on 127.0.0.1:0 behind a real
// embedded NATS server (env), tokens, the WebSocket client of every test
// (wstest.Client, bound to its test), frames crafted byte by byte, and the
// assertions the tests share. Polling is wstest.CheckFor's, every poll
// interval is poll.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wire"
	"github.com/wsgate/wsgate/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// poll is how often the tests poll a condition (wstest.CheckFor).
const poll = 5 * time.Millisecond

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
	return newEnvBus(t, bus.Config{}, mod)
}

// newEnvBus is newEnv with a bus configured by bcfg, on a free port. A
// wrap, when given, stands between the bus and Server.Deliver.
func newEnvBus(t testing.TB, bcfg bus.Config, mod func(*Config), wrap ...func(bus.Handler) bus.Handler) *env {
	t.Helper()
	bcfg.EmbeddedListen = "127.0.0.1:0"
	b, err := bus.New(bcfg)
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
	if bcfg.StoreDir != "" { // JetStream: the durable ops read its history
		h, err := b.History(bus.HistoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.History = h
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	b.OnMissed(s.NotifyMissed)
	deliver := bus.Handler(s.Deliver)
	for _, w := range wrap {
		deliver = w(deliver)
	}
	if err := b.Start(deliver); err != nil {
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

// nopBus is a Bus for tests that start no NATS server.
type nopBus struct{}

func (nopBus) Interest(string) error { return nil }
func (nopBus) DropInterest(string)   {}
func (nopBus) Connected() bool       { return true }

// client is the tests' WebSocket client, wstest.Client, bound to the test
// it reports to so that call sites stay short.
type client struct {
	*wstest.Client
	t testing.TB
}

// next reads the next text message as a JSON object, failing after
// wstest.NextTimeout.
func (c *client) next() map[string]any {
	c.t.Helper()
	return c.Next(c.t)
}

// read reads the next text message as a JSON object within timeout.
func (c *client) read(timeout time.Duration) (map[string]any, error) {
	return c.Read(time.Now().Add(timeout))
}

// silent asserts that nothing arrives within d.
func (c *client) silent(d time.Duration) {
	c.t.Helper()
	c.Silent(c.t, d)
}

// send sends v as JSON in one text frame.
func (c *client) send(v any) {
	c.t.Helper()
	c.Send(c.t, v)
}

// closeCode reads until the server closes and returns its close code.
func (c *client) closeCode() ws.StatusCode {
	c.t.Helper()
	return c.CloseCode(c.t)
}

// closedWith reads until the server's close frame and returns its code and
// reason.
func (c *client) closedWith() (ws.StatusCode, string) {
	c.t.Helper()
	return c.ClosedWith(c.t)
}

// rawFrame is a frame as the server sent it.
type rawFrame struct {
	header  ws.Header
	op      ws.OpCode
	payload []byte
}

// readRawFrame reads c's next frame as the server sent it, control frames
// included and unanswered.
func readRawFrame(t testing.TB, c *client) rawFrame {
	t.Helper()
	h, p, err := c.ReadFrame(time.Now().Add(wstest.NextTimeout))
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return rawFrame{header: h, op: h.OpCode, payload: p}
}

// rawCloseCode reads frames until the server's close frame and returns its
// code and reason, without answering it.
func rawCloseCode(t testing.TB, c *client) (ws.StatusCode, string) {
	t.Helper()
	for {
		h, p, err := c.ReadFrame(time.Now().Add(wstest.NextTimeout))
		if err != nil {
			t.Fatalf("read %v; want a close frame", err)
		}
		if h.OpCode == ws.OpClose {
			return ws.ParseCloseFrameData(p)
		}
	}
}

// expectEOF asserts that the server drops c's socket.
func expectEOF(t testing.TB, c *client) {
	t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Conn.Read(make([]byte, 64))
	if err == nil || n > 0 {
		t.Fatalf("read %d bytes, %v after close; want EOF", n, err)
	}
	if isTimeout(err) {
		t.Fatalf("the server did not drop the socket after the close handshake")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dial opens a WebSocket to url with d; the client is closed when e's test
// ends and has read nothing yet.
func (e *env) dial(d ws.Dialer, url string) (*client, error) {
	c, err := wstest.Dial(context.Background(), d, url)
	if err != nil {
		return nil, err
	}
	e.t.Cleanup(func() { c.Close() })
	return &client{Client: c, t: e.t}, nil
}

// dialURL opens a WebSocket to url with the extra request header.
func (e *env) dialURL(url string, header http.Header) (*client, error) {
	return e.dial(ws.Dialer{Timeout: 5 * time.Second, Header: ws.HandshakeHeaderHTTP(header)}, url)
}

// connect dials as user with a token allowing channels and reads the welcome.
func (e *env) connect(user string, channels ...string) *client {
	e.t.Helper()
	c, err := e.dialURL(e.url+"?token="+token(e.t, user, time.Hour, channels...), nil)
	if err != nil {
		e.t.Fatalf("dial as %s: %v", user, err)
	}
	c.welcomed(user)
	return c
}

// welcomed reads the welcome frame, which must be for user.
func (c *client) welcomed(user string) {
	c.t.Helper()
	if w, err := c.Welcome(time.Now().Add(wstest.NextTimeout)); err != nil || c.User != user {
		c.t.Fatalf("first frame = %v (%v), want a welcome for %s", w, err, user)
	}
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
	c, err := e.dial(d, e.url+"?token="+token(e.t, user, time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Conn
}

// upgrade dials an upgrade as user from the local address from (nil: the
// kernel's choice, 127.0.0.1 here). On 101 it returns the client, whose
// first frame is still unread; on a refusal, the HTTP status and the
// Retry-After header.
func (e *env) upgrade(from net.IP, user string) (c *client, status int, retryAfter string) {
	e.t.Helper()
	var header http.Header
	d := ws.Dialer{
		Timeout: 5 * time.Second,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			if from != nil {
				nd.LocalAddr = &net.TCPAddr{IP: from}
			}
			return nd.DialContext(ctx, network, addr)
		},
		OnStatusError: func(_ int, _ []byte, resp io.Reader) {
			if r, err := http.ReadResponse(bufio.NewReader(resp), nil); err == nil {
				header = r.Header
			}
		},
	}
	c, err := e.dial(d, e.url+"?token="+token(e.t, user, time.Hour))
	var se ws.StatusError
	if errors.As(err, &se) {
		return nil, int(se), header.Get("Retry-After")
	}
	if err != nil {
		e.t.Fatalf("dial as %s from %v: %v", user, from, err)
	}
	return c, http.StatusSwitchingProtocols, ""
}

// connectFrom is connect from the local address from.
func (e *env) connectFrom(from net.IP, user string) *client {
	e.t.Helper()
	c, status, _ := e.upgrade(from, user)
	if status != http.StatusSwitchingProtocols {
		e.t.Fatalf("upgrade as %s from %v: status %d, want 101", user, from, status)
	}
	c.welcomed(user)
	return c
}

// expectRefused asserts that an upgrade as user from the address from is
// refused with status and a Retry-After header.
func (e *env) expectRefused(from net.IP, user string, status int) {
	e.t.Helper()
	c, got, retry := e.upgrade(from, user)
	if c != nil {
		c.Close()
	}
	if got != status || retry == "" {
		e.t.Fatalf("upgrade as %s from %v: status %d, Retry-After %q; want %d with Retry-After", user, from, got, retry, status)
	}
}

// eventuallyConnects polls until an upgrade as user from the address from
// is welcomed: a place freed by a close comes back once the server has
// seen the close.
func (e *env) eventuallyConnects(from net.IP, user string) *client {
	e.t.Helper()
	var c *client
	wstest.CheckFor(e.t, 5*time.Second, poll, func() error {
		got, status, _ := e.upgrade(from, user)
		if status != http.StatusSwitchingProtocols {
			return fmt.Errorf("upgrade as %s from %v still refused with %d", user, from, status)
		}
		c = got
		return nil
	})
	c.welcomed(user)
	return c
}

// rejectedWith reads the first frame after a 101 and returns its close
// code; it fails when that frame is anything else (a welcome).
func rejectedWith(t testing.TB, c *client) ws.StatusCode {
	t.Helper()
	f := readRawFrame(t, c)
	if f.op != ws.OpClose || len(f.payload) < 2 {
		t.Fatalf("first frame op %v %q, want a close frame and no welcome", f.op, f.payload)
	}
	return ws.StatusCode(binary.BigEndian.Uint16(f.payload))
}

// expectPong sends a ping op with ref and expects its pong.
func expectPong(t testing.TB, c *client, ref int) {
	t.Helper()
	c.send(map[string]any{"op": "ping", "ref": ref})
	if m := c.next(); m["type"] != "pong" || m["ref"] != float64(ref) {
		t.Fatalf("ping %d: got %v, want its pong", ref, m)
	}
}

// expectUserMessage publishes text to user through NATS and expects every
// client in cs to receive it.
func (e *env) expectUserMessage(user, text string, cs ...*client) {
	e.t.Helper()
	if err := e.pub.User(user, []byte(`{"text":"`+text+`"}`)); err != nil {
		e.t.Fatal(err)
	}
	for i, c := range cs {
		m := c.next()
		data, _ := m["data"].(map[string]any)
		if m["type"] != "message" || m["channel"] != "user."+user || data["text"] != text {
			e.t.Fatalf("socket %d of %s got %v, want %q", i, user, m, text)
		}
	}
}

// expectSubscriptions polls until the bus holds want subscriptions: every
// interest taken was dropped.
func expectSubscriptions(t testing.TB, e *env, want int) {
	t.Helper()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if got := e.bus.Subscriptions(); got != want {
			return fmt.Errorf("bus holds %d subscriptions, want %d: an interest leaked", got, want)
		}
		return nil
	})
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var out dto.Metric
	c.Write(&out)
	return out.GetCounter().GetValue()
}

// expectCount polls until counter reads want.
func expectCount(t testing.TB, name string, counter func() float64, want float64) {
	t.Helper()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if got := counter(); got != want {
			return fmt.Errorf("%s = %v, want %v", name, got, want)
		}
		return nil
	})
}

func (e *env) upgradeCount(result upgradeResult) func() float64 {
	return func() float64 { return counterValue(e.srv.metrics.upgrades[result]) }
}

func (e *env) closeCount(r CloseReason) func() float64 {
	return func() float64 { return counterValue(e.srv.metrics.closes[r]) }
}

// slowConsumerCount reads the slow consumer counter.
func (m *metrics) slowConsumerCount() float64 { return counterValue(m.slowConsumers) }

// Short names for the opcodes the tests send.
const (
	opText   = ws.OpText
	opBinary = ws.OpBinary
	opCont   = ws.OpContinuation
	opPing   = ws.OpPing
	opPong   = ws.OpPong
	opClose  = ws.OpClose
)

// Bits of a frame's first byte.
const (
	bitFin  = 0x80
	bitRsv1 = 0x40
	bitRsv2 = 0x20
	bitRsv3 = 0x10
)

// testKey masks the frames the tests craft. It is not zero, so that a
// server that forgets to unmask sees garbage.
var testKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// craft builds a frame with first byte b0 (FIN, RSV bits, opcode) around
// payload p, masked with testKey when masked: what a client sends, or, with
// b0 and masked chosen so, what a broken one does.
func craft(b0 byte, masked bool, p []byte) []byte {
	if !masked {
		return craftKey(b0, nil, p)
	}
	return craftKey(b0, &testKey, p)
}

// craftKey is craft with the masking key key; nil sends p unmasked. The
// frame is wire's, with b0 in front.
func craftKey(b0 byte, key *[4]byte, p []byte) []byte {
	var b []byte
	if key == nil {
		b = wire.AppendFrame(nil, 0, p)
	} else {
		b = wire.AppendMaskedFrame(nil, 0, p, *key)
	}
	b[0] = b0
	return b
}

// declared is a frame header with first byte b0 that announces a payload
// of n bytes in the 64-bit form, masked with testKey, without the payload:
// n may be what no payload could be (2^63 and above).
func declared(b0 byte, n uint64) []byte {
	return declaredKey(b0, &testKey, n)
}

// declaredKey is declared with the masking key key; nil means unmasked.
func declaredKey(b0 byte, key *[4]byte, n uint64) []byte {
	if key == nil {
		return binary.BigEndian.AppendUint64([]byte{b0, 127}, n)
	}
	return append(binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, n), key[:]...)
}

// writeFrame writes one final frame the way a client does (masked) or,
// with masked false, the way a broken client does.
func writeFrame(w io.Writer, masked bool, op ws.OpCode, p []byte) error {
	return writeFragment(w, masked, true, op, p)
}

// writeFragment writes one frame of op, final or not.
func writeFragment(w io.Writer, masked, fin bool, op ws.OpCode, p []byte) error {
	b0 := byte(op)
	if fin {
		b0 |= bitFin
	}
	_, err := w.Write(craft(b0, masked, p))
	return err
}

// deflateRaw compresses p as one permessage-deflate message (RFC 7692
// 7.2.1: a sync flush, without its 4-byte tail), with the standard
// library's flate: an oracle independent of the gateway's.
func deflateRaw(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflateRaw inflates one permessage-deflate message with the standard
// library's flate.
func inflateRaw(t testing.TB, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate %x: %v", p, err)
	}
	return out
}
