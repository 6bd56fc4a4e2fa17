package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/wire"

	"github.com/gorilla/websocket"
)

// memConn is an in-memory net.Conn for the upgrade benchmarks: it reads
// one request and discards what is written, so the benchmark measures the
// server's work, not the loopback.
type memConn struct {
	r bytes.Reader
}

func (c *memConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }
func (c *memConn) reset(req []byte)                 { c.r.Reset(req) }

// staticAuth returns one identity whatever the credentials: it isolates the
// cost of the upgrade machinery from the cost of authentication, which the
// other cases of BenchmarkUpgrade add back.
type staticAuth struct{ id Identity }

func (a staticAuth) Authenticate(Credentials) (Identity, error) { return a.id, nil }

func upgradeRequest(query string) []byte {
	return []byte("GET /ws" + query + " HTTP/1.1\r\n" +
		"Host: gateway.example.com\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Origin: https://app.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36\r\n" +
		"Cookie: session=0123456789abcdef; theme=dark\r\n\r\n")
}

// BenchmarkUpgrade compares the gateway's upgrade (gobwas/ws straight on
// the connection) with net/http + gorilla/websocket in the same run.
func BenchmarkUpgrade(b *testing.B) {
	tok := token(b, "42", time.Hour)
	cases := []struct {
		name  string
		auth  Authenticator
		query string
	}{
		{name: "wsgate/handshake", auth: staticAuth{Identity{User: "42"}}, query: "?user=42"},
		{name: "wsgate/auth=none", auth: InsecureAuth{}, query: "?user=42"},
		{name: "wsgate/auth=jwt-hs256", query: "?token=" + tok},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b, func(c *Config) {
				if bc.auth != nil {
					c.Auth = bc.auth
				}
				c.AllowedOrigins = []string{"https://app.example.com"}
			})
			req := upgradeRequest(bc.query)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				u := e.srv.upgraders.Get().(*upgrader)
				if err := u.runWith(req, io.Discard); err != nil {
					b.Fatal(err)
				}
				u.reset()
				e.srv.upgraders.Put(u)
			}
		})
	}
	b.Run("nethttp+gorilla", func(b *testing.B) {
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		req := upgradeRequest("?user=42")
		conn := &memConn{}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			conn.reset(req)
			br := bufio.NewReader(conn)
			r, err := http.ReadRequest(br)
			if err != nil {
				b.Fatal(err)
			}
			w := &hijackWriter{conn: conn, brw: bufio.NewReadWriter(br, bufio.NewWriter(conn)), header: http.Header{}}
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				b.Fatal(err)
			}
			_ = ws
		}
	})
}

// hijackWriter is the part of net/http's response writer that gorilla's
// Upgrade uses.
type hijackWriter struct {
	conn   net.Conn
	brw    *bufio.ReadWriter
	header http.Header
}

func (w *hijackWriter) Header() http.Header         { return w.header }
func (w *hijackWriter) Write(p []byte) (int, error) { return w.conn.Write(p) }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, w.brw, nil
}

// TestUpgradeAllocs pins the allocations of the upgrade machinery. Ours are
// zero. gobwas/ws v1.5.0 makes exactly one: the 28-byte Sec-WebSocket-Accept
// buffer in its writeAccept escapes on Go 1.21+, because
// bufio.Writer.WriteString may hand the string to an io.StringWriter (see
// `go build -gcflags=-m github.com/gobwas/ws`). When gobwas fixes that, the
// budget here drops to 0.
func TestUpgradeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	e := newEnv(t, func(c *Config) { c.Auth = staticAuth{Identity{User: "42"}} })
	req := upgradeRequest("?user=42")
	allocs := testing.AllocsPerRun(200, func() {
		u := e.srv.upgraders.Get().(*upgrader)
		if err := u.runWith(req, io.Discard); err != nil {
			t.Fatal(err)
		}
		u.reset()
		e.srv.upgraders.Put(u)
	})
	const gobwasAccept = 1
	if allocs > gobwasAccept {
		t.Fatalf("upgrade allocates %.1f times, want at most %d (gobwas's accept buffer)", allocs, gobwasAccept)
	}
}

// fanoutConns makes n connections that are members of topic, written to
// through real loopback sockets. Beyond 256 connections they share
// sockets (the open-file limit), which does not change the work per
// recipient: one frame, one write(2). The client ends are drained.
func fanoutConns(tb testing.TB, s *Server, topic string, n int) []*Conn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	pairs := min(n, 256)
	rcs := make([]syscall.RawConn, pairs)
	ncs := make([]net.Conn, pairs)
	var wg sync.WaitGroup
	for i := range pairs {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			tb.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			tb.Fatal(err)
		}
		server.(*net.TCPConn).SetWriteBuffer(4 << 20)
		client.(*net.TCPConn).SetReadBuffer(4 << 20)
		rcs[i], _ = server.(*net.TCPConn).SyscallConn()
		ncs[i] = server
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(io.Discard, client)
			client.Close()
		}()
	}
	tb.Cleanup(func() {
		for _, c := range ncs {
			c.Close()
		}
		wg.Wait()
	})
	conns := make([]*Conn, n)
	for i := range conns {
		c := &Conn{srv: s, closer: ncs[i%pairs], rc: rcs[i%pairs], id: uint64(1_000_000 + i), user: "b" + strconv.Itoa(i)}
		c.state.Store(stateOpen)
		s.hub.join(c, topic)
		conns[i] = c
	}
	return conns
}

// BenchmarkFanout delivers one notification to families of subscribers; the
// frame is built once, and allocations do not grow with recipients.
func BenchmarkFanout(b *testing.B) {
	payload := []byte(`{"id":12345,"kind":"mail.new","from":"alice@example.com","subject":"Quarterly numbers"}`)
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(strconv.Itoa(n)+"Subs", func(b *testing.B) {
			e := newEnv(b, nil)
			fanoutConns(b, e.srv, "topic.bench", n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				e.srv.Deliver("topic.bench", payload, wire.Position{})
			}
			b.StopTimer()
			if got, want := counterValue(e.srv.metrics.delivered), float64(b.N*n); got != want {
				b.Fatalf("%v frames delivered, want %v", got, want)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/recipient")
			if got := e.srv.hub.members("topic.bench"); got != n {
				b.Fatalf("%d members left of %d: a recipient was closed", got, n)
			}
		})
	}
}

// TestFanoutAllocsPerRecipient checks that a fan-out costs the same number
// of allocations for 10 and for 2,000 recipients (the frame and the
// per-message scratch), that is 0 per recipient.
func TestFanoutAllocsPerRecipient(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	e := newEnv(t, nil)
	fanoutConns(t, e.srv, "topic.small", 10)
	fanoutConns(t, e.srv, "topic.large", 2000)
	payload := []byte(`{"n":1}`)
	for i, pos := range []wire.Position{{}, {Seq: 7, Prev: 5, Epoch: 1764650000000}} {
		small := testing.AllocsPerRun(50, func() { e.srv.Deliver("topic.small", payload, pos) })
		large := testing.AllocsPerRun(50, func() { e.srv.Deliver("topic.large", payload, pos) })
		// AllocsPerRun runs each function once more to warm up.
		if got, want := counterValue(e.srv.metrics.delivered), float64((i+1)*51*(10+2000)); got != want {
			t.Fatalf("%v frames delivered, want %v", got, want)
		}
		t.Logf("allocations per notification at %+v: %.1f for 10 recipients, %.1f for 2,000", pos, small, large)
		if large > small+1 || small > 4 {
			t.Fatalf("allocations grow with recipients at %+v: %.1f for 10, %.1f for 2,000", pos, small, large)
		}
	}
}

func BenchmarkMessageFrame(b *testing.B) {
	payload := []byte(`{"id":12345,"kind":"mail.new","from":"alice@example.com","subject":"Quarterly numbers"}`)
	b.ReportAllocs()
	for range b.N {
		wire.MessageFrame("user.42", payload, wire.Position{})
	}
}

// BenchmarkReadPath measures parsing and handling of client frames from a
// read buffer: pongs (as browsers send them) and a frame split across reads.
func BenchmarkReadPath(b *testing.B) {
	e := newEnv(b, nil)
	c := fanoutConns(b, e.srv, "topic.read", 1)[0]
	var stream bytes.Buffer
	for range 32 {
		writeFrame(&stream, true, opPong, []byte("keepalive"))
	}
	p := stream.Bytes()
	buf := make([]byte, len(p))
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		copy(buf, p)
		if used, open := c.consume(buf); used != len(buf) || !open {
			b.Fatalf("consumed %d of %d, open %v", used, len(buf), open)
		}
	}
}
