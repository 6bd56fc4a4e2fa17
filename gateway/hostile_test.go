package gateway

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/wsgate/wsgate/internal/wstest"
)

// Hostile input (issue 5). Every case ends in a clear HTTP status or the
// right close code, and then:
//   - no panic: a panic in a pool task is recovered and logged at error
//     level, and any error the gateway logs fails the test;
//   - no leak: the server holds only the bystander again, the bus only its
//     subscriptions (and goleak checks goroutines in TestMain);
//   - other clients unaffected: a bystander connected before the first
//     case still gets a notification published through NATS and a pong.
//
// The message rate flood is TestMessageRateLimit's (limit_test.go), the
// ping flood of a client that never reads TestPingFloodIsBounded's
// (overload_test.go), silent sockets TestSilentSocketsHoldNoWorker's; the
// cases here add what those leave out.
// hostile is a gateway with a bystander.
type hostile struct {
	*env
	by   *client
	subs int // bus subscriptions with only the bystander connected
	n    int // notifications sent to the bystander so far
}

// newHostile starts a gateway configured by mod and connects the
// bystander with dial (nil: e.connect("bystander")), whose user must be
// "bystander".
func newHostile(t *testing.T, mod func(*Config), dial func(e *env) *client) *hostile {
	t.Helper()
	e := newEnv(t, func(c *Config) {
		hook := zap.Hooks(func(en zapcore.Entry) error {
			if en.Level >= zapcore.ErrorLevel {
				t.Errorf("the gateway logged at %s: %s", en.Level, en.Message)
			}
			return nil
		})
		c.Logger = zaptest.NewLogger(t, zaptest.WrapOptions(hook))
		if mod != nil {
			mod(c)
		}
	})
	if dial == nil {
		dial = func(e *env) *client { return e.connect("bystander") }
	}
	h := &hostile{env: e, by: dial(e)}
	h.subs = e.bus.Subscriptions()
	return h
}

// run runs one hostile case and then, once the case's own sockets are
// closed (the check is the case's first cleanup, so its last), checks that
// the gateway is back to the bystander alone and still serves it.
func (h *hostile) run(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Cleanup(func() {
			if !t.Failed() {
				h.check(t)
			}
		})
		f(t)
	})
}

// check asserts that the bystander is unaffected and nothing leaked.
func (h *hostile) check(t *testing.T) {
	t.Helper()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if n, subs := h.srv.hub.count(), h.bus.Subscriptions(); n != 1 || subs != h.subs {
			return fmt.Errorf("the server holds %d connections and the bus %d subscriptions; want 1 and %d", n, subs, h.subs)
		}
		return nil
	})
	h.n++
	by := *h.by
	by.t = t
	h.as(t).expectUserMessage("bystander", strconv.Itoa(h.n), &by)
	expectPong(t, &by, h.n)
}

// status dials url with header and returns the HTTP status of the answer
// (101 for an upgrade, after which the connection is closed).
func (h *hostile) status(t *testing.T, url string, header http.Header) int {
	t.Helper()
	c, err := h.as(t).dialURL(url, header)
	var se ws.StatusError
	switch {
	case errors.As(err, &se):
		return int(se)
	case err != nil:
		t.Fatal(err)
	}
	c.Conn.Close()
	return http.StatusSwitchingProtocols
}

// hostileRequest is an upgrade request as a browser sends it, for target,
// with the headers in edit replaced, added, or (with an empty value)
// removed. The request line is method, target and proto.
func hostileRequest(method, target, proto string, edit map[string]string) string {
	headers := [][2]string{
		{"Host", "gw.example.com"},
		{"Upgrade", "websocket"},
		{"Connection", "Upgrade"},
		{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
		{"Sec-WebSocket-Version", "13"},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\n", method, target, proto)
	for _, kv := range headers {
		v, edited := edit[kv[0]]
		switch {
		case !edited:
			v = kv[1]
		case v == "":
			continue
		}
		fmt.Fprintf(&b, "%s: %s\r\n", kv[0], v)
	}
	var extra []string
	for k := range edit {
		if !slices.ContainsFunc(headers, func(kv [2]string) bool { return kv[0] == k }) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		fmt.Fprintf(&b, "%s: %s\r\n", k, edit[k])
	}
	b.WriteString("\r\n")
	return b.String()
}

// answer writes req on a new socket (from another goroutine: the server
// may answer and close before it has all of it) and reads the HTTP answer.
func (h *hostile) answer(t *testing.T, req string) (*http.Response, error) {
	t.Helper()
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte(req))
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	conn.Close()
	<-wrote
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}
func TestHostileHandshake(t *testing.T) {
	h := newHostile(t, func(c *Config) { c.HandshakeTimeout = 2 * time.Second }, nil)
	target := "/ws?token=" + token(t, "attacker", time.Hour)
	ok := hostileRequest("GET", target, "HTTP/1.1", nil)
	if resp, err := h.answer(t, ok); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("the unedited request is answered %v, %v; want 101", resp, err)
	}
	tests := []struct {
		name   string
		req    string
		want   int
		header [2]string // a header the answer must carry
		bug    string    // a known deviation: the case is skipped with it
	}{
		{name: "key missing", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Key": ""}), want: 400},
		{name: "key too short", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZQ=="}), want: 400},
		{name: "key too long", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZSBsb25n"}), want: 400},
		{name: "key not base64", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!!!"}), want: 400},
		{name: "key twice", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="}), want: 400},
		{name: "key decodes to 18 bytes", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAAA"}), want: 400},
		{name: "version 8", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Version": "8"}), want: 426, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version 14", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Version": "14"}), want: 426, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version not a number", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Version": "thirteen"}), want: 426, header: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "version missing", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Version": ""}), want: 400},
		{name: "upgrade missing", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Upgrade": ""}), want: 400},
		{name: "upgrade to h2c", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Upgrade": "h2c"}), want: 400},
		{name: "connection missing", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Connection": ""}), want: 400},
		{name: "connection keep-alive", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Connection": "keep-alive"}), want: 400},
		{name: "host missing", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Host": ""}), want: 400},
		{name: "POST", req: hostileRequest("POST", target, "HTTP/1.1", nil), want: 405, header: [2]string{"Allow", "GET"}},
		{name: "HEAD", req: hostileRequest("HEAD", target, "HTTP/1.1", nil), want: 405},
		{name: "HTTP/1.0", req: hostileRequest("GET", target, "HTTP/1.0", nil), want: 505},
		{name: "TLS on the plain port", req: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 \r\n\r\n", want: 400},
		{name: "request line without a version", req: "GET /ws\r\nHost: gw\r\n\r\n", want: 400},
		{name: "header without colon", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Host": "gw\r\nno colon here"}), want: 400},
		{name: "a 10 KiB header line within the limit", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"X-Big": strings.Repeat("a", 10<<10)}), want: 101},
		{name: "thousands of headers", req: manyHeaders(target, 5000), want: 431},
		{name: "a 64 KiB header line", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"X-Big": strings.Repeat("a", 64<<10)}), want: 431},
		// Thousands of small headers within MaxHandshakeSize are only bytes:
		// the request is answered like any other.
		{name: "thousands of small headers within the limit", req: manyHeaders(target, 1500), want: 101},
		// A permessage-deflate offer the gateway cannot take is declined,
		// not failed: the connection goes on uncompressed (RFC 7692 5).
		{name: "deflate offer with a bad window size", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits=99"}), want: 101, header: [2]string{"Sec-WebSocket-Extensions", ""}},
		{name: "deflate offer with a parameter twice", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Extensions": "permessage-deflate; server_no_context_takeover; server_no_context_takeover"}), want: 101, header: [2]string{"Sec-WebSocket-Extensions", ""}},
		{name: "deflate offer with an unknown parameter", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Extensions": "permessage-deflate; x-bomb=1"}), want: 101, header: [2]string{"Sec-WebSocket-Extensions", ""}},
		{name: "deflate offer of an 8-bit server window", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Extensions": "permessage-deflate; server_max_window_bits=8"}), want: 101, header: [2]string{"Sec-WebSocket-Extensions", ""}},
		{name: "300 deflate offers", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Sec-WebSocket-Extensions": strings.Repeat("permessage-deflate; client_max_window_bits, ", 300) + "x"}), want: 101,
			header: [2]string{"Sec-WebSocket-Extensions", "permessage-deflate;server_no_context_takeover;client_no_context_takeover"}},
		// Firefox sends "Connection: keep-alive, Upgrade".
		{name: "connection token list", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Connection": "keep-alive, Upgrade"}), want: 101},
		{name: "upgrade in capitals", req: hostileRequest("GET", target, "HTTP/1.1", map[string]string{"Upgrade": "WebSocket"}), want: 101},
	}
	for _, tt := range tests {
		h.run(t, tt.name, func(t *testing.T) {
			resp, err := h.answer(t, tt.req)
			if err != nil {
				if tt.bug != "" {
					t.Skipf("bug: %s: no answer (%v), want %d", tt.bug, err, tt.want)
				}
				t.Fatalf("no HTTP answer: %v", err)
			}
			if resp.StatusCode != tt.want {
				if tt.bug != "" {
					t.Skipf("bug: %s: status %d, want %d", tt.bug, resp.StatusCode, tt.want)
				}
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if k, v := tt.header[0], tt.header[1]; k != "" && resp.Header.Get(k) != v {
				if tt.bug != "" {
					t.Skipf("bug: %s", tt.bug)
				}
				t.Fatalf("%s: %q, want %q", k, resp.Header.Get(k), v)
			}
		})
	}

	h.run(t, "64 MiB header line", func(t *testing.T) {
		hostileHeaderLine(t, h, 64<<20)
	})
	// A request with bare LF line endings never shows the blank line the
	// reader waits for: it is dropped after HandshakeTimeout, unanswered.
	h.run(t, "bare LF line endings", func(t *testing.T) {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte(strings.ReplaceAll(ok, "\r\n", "\n")))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Read(make([]byte, 512)); isTimeout(err) || n > 0 {
			t.Fatalf("read %d bytes, %v; want the socket dropped", n, err)
		}
	})
}

// manyHeaders is a valid upgrade request with n extra headers.
func manyHeaders(target string, n int) string {
	req := hostileRequest("GET", target, "HTTP/1.1", nil)
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(req, "\r\n"))
	for i := range n {
		fmt.Fprintf(&b, "X-%d: v\r\n", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

// hostileHeaderLine sends a header line of size bytes until the server
// answers 431 or closes, and checks that the gateway never buffered it: the
// process allocates far less than what was sent.
func hostileHeaderLine(t *testing.T, h *hostile, size int64) {
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	sent := make(chan int64, 1)
	go func() {
		var n int64
		write := func(p []byte) bool {
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			m, err := conn.Write(p)
			n += int64(m)
			return err == nil
		}
		if write([]byte("GET /ws HTTP/1.1\r\nHost: gw\r\nX-Big: ")) {
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			for n < size && write(chunk) {
			}
		}
		sent <- n
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	conn.Close()
	n := <-sent
	if err != nil {
		t.Fatalf("no answer after %d bytes: %v", n, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("sent %d bytes before the 431; the process allocated %d bytes meanwhile", n, alloc)
	if alloc > 16<<20 {
		t.Fatalf("the process allocated %d bytes while a header line came in: it is buffered", alloc)
	}
}

// Slowloris: a thousand sockets dripping their upgrade request a byte a
// second hold no worker and no welcome back: a normal client connects
// meanwhile, and each dripper is dropped after HandshakeTimeout.
func TestHostileSlowloris(t *testing.T) {
	h := newHostile(t, func(c *Config) {
		c.HandshakeTimeout = 2 * time.Second
		c.PoolSize = 0          // the default 256, not the tests' 16
		c.Logger = zap.NewNop() // a thousand refusals
	}, nil)
	const n = 1000
	req := []byte(hostileRequest("GET", "/ws?token="+token(t, "dripper", time.Hour), "HTTP/1.1", nil))
	conns := make([]net.Conn, 0, n)
	for range n {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	start := time.Now()
	type outcome struct {
		sent    int
		dropped bool
		answer  []byte
	}
	outcomes := make(chan outcome, n)
	for _, conn := range conns {
		go func() {
			var o outcome
			buf := make([]byte, 64)
			for o.sent < len(req) && time.Since(start) < 20*time.Second {
				if _, err := conn.Write(req[o.sent : o.sent+1]); err != nil {
					o.dropped = true
					break
				}
				o.sent++
				conn.SetReadDeadline(time.Now().Add(time.Second))
				m, err := conn.Read(buf)
				if !isTimeout(err) {
					o.dropped, o.answer = true, buf[:m]
					break
				}
			}
			outcomes <- o
		}()
	}
	t.Run("a normal client connects", func(t *testing.T) {
		began := time.Now()
		c := h.as(t).connect("normal")
		expectPong(t, c, 1)
		t.Logf("welcomed in %v while %d sockets dripped", time.Since(began).Round(time.Millisecond), n)
		c.Conn.Close()
	})
	if len(outcomes) == n {
		t.Fatal("every dripper was gone before the normal client connected: the test proves nothing")
	}
	sent := 0
	for range n {
		o := <-outcomes
		if !o.dropped {
			t.Fatalf("a dripper sent %d bytes over %v and is still connected", o.sent, time.Since(start))
		}
		// A socket accepted while the pool is saturated (the race
		// detector is slow) may be refused at once with 503, not upgraded.
		if len(o.answer) > 0 && !bytes.HasPrefix(o.answer, []byte("HTTP/1.1 503 ")) {
			t.Fatalf("a dripper was answered %q", o.answer)
		}
		sent += o.sent
	}
	t.Logf("%d drippers sent %d bytes in all before they were dropped", n, sent)
	timeouts, busy := h.upgradeCount(resultTimeout)(), h.upgradeCount(resultBusy)()
	if timeouts+busy != n {
		t.Fatalf("upgrades{timeout} = %v, upgrades{busy} = %v; want %d in all", timeouts, busy, n)
	}
	h.check(t)
}
func TestHostileFrames(t *testing.T) {
	// A frame that announces more than the client sends swallows the
	// client's close reply; the server gives up on it after CloseTimeout.
	h := newHostile(t, func(c *Config) { c.CloseTimeout = 300 * time.Millisecond }, nil)
	text := func(s string) []byte { return craft(bitFin|byte(opText), true, []byte(s)) }
	frag := func(op ws.OpCode, final bool, p []byte) []byte {
		b0 := byte(op)
		if final {
			b0 |= bitFin
		}
		return craft(b0, true, p)
	}
	concat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	fragments := func(n, size int) []byte {
		var b bytes.Buffer
		b.Write(frag(opText, false, bytes.Repeat([]byte("a"), size)))
		for range n - 1 {
			b.Write(frag(opCont, false, bytes.Repeat([]byte("a"), size)))
		}
		return b.Bytes()
	}
	tests := []struct {
		name   string
		send   []byte
		want   ws.StatusCode
		reason string // the close reason, when it says more than the code
	}{
		// The gateway closes at the header, before any payload arrives:
		// none is ever sent here.
		{name: "length 2^62", send: declared(bitFin|byte(opText), 1<<62), want: ws.StatusMessageTooBig},
		{name: "length 2^62 continuation", send: concat(frag(opText, false, []byte("a")), declared(bitFin|byte(opCont), 1<<62)), want: ws.StatusMessageTooBig},
		{name: "length 2^62 ping", send: declared(bitFin|byte(opPing), 1<<62), want: ws.StatusProtocolError},
		{name: "length with the MSB set", send: declared(bitFin|byte(opText), 1<<63), want: ws.StatusProtocolError},
		{name: "length MaxMessageSize+1", send: declared(bitFin|byte(opBinary), 4097), want: ws.StatusMessageTooBig},
		{name: "100,000 one-byte fragments", send: fragments(100_000, 1), want: ws.StatusMessageTooBig},
		{name: "ping of 126 bytes", send: craft(bitFin|byte(opPing), true, make([]byte, 126)), want: ws.StatusProtocolError},
		{name: "pong of 200 bytes", send: craft(bitFin|byte(opPong), true, make([]byte, 200)), want: ws.StatusProtocolError},
		{name: "close of 126 bytes", send: craft(bitFin|byte(opClose), true, append([]byte{0x03, 0xe8}, strings.Repeat("r", 124)...)), want: ws.StatusProtocolError},
		{name: "fragmented ping", send: concat(frag(opPing, false, []byte("a")), frag(opCont, true, []byte("b"))), want: ws.StatusProtocolError},
		{name: "fragmented pong", send: frag(opPong, false, []byte("a")), want: ws.StatusProtocolError},
		{name: "fragmented close", send: frag(opClose, false, ws.NewCloseFrameBody(1000, "")), want: ws.StatusProtocolError},
		{name: "unmasked text", send: craft(bitFin|byte(opText), false, []byte(`{"op":"ping"}`)), want: ws.StatusProtocolError},
		{name: "unmasked ping", send: craft(bitFin|byte(opPing), false, nil), want: ws.StatusProtocolError},
		{name: "unmasked close", send: craft(bitFin|byte(opClose), false, ws.NewCloseFrameBody(1000, "")), want: ws.StatusProtocolError},
		{name: "unmasked continuation", send: concat(frag(opText, false, []byte("{")), craft(bitFin|byte(opCont), false, []byte("}"))), want: ws.StatusProtocolError},
		{name: "RSV1 without an extension", send: craft(bitFin|bitRsv1|byte(opText), true, []byte(`{"op":"ping"}`)), want: ws.StatusProtocolError},
		{name: "RSV2", send: craft(bitFin|bitRsv2|byte(opText), true, []byte(`{"op":"ping"}`)), want: ws.StatusProtocolError},
		{name: "RSV3", send: craft(bitFin|bitRsv3|byte(opText), true, []byte(`{"op":"ping"}`)), want: ws.StatusProtocolError},
		{name: "RSV1 on a ping", send: craft(bitFin|bitRsv1|byte(opPing), true, nil), want: ws.StatusProtocolError},
		{name: "RSV2 on a continuation", send: concat(frag(opText, false, []byte("{")), craft(bitFin|bitRsv2|byte(opCont), true, []byte("}"))), want: ws.StatusProtocolError},
		{name: "invalid utf-8 byte", send: text("\xff"), want: ws.StatusInvalidFramePayloadData},
		{name: "overlong encoding", send: text("\"\xc0\xaf\""), want: ws.StatusInvalidFramePayloadData},
		{name: "utf-16 surrogate", send: text("\"\xed\xa0\x80\""), want: ws.StatusInvalidFramePayloadData},
		{name: "code point above U+10FFFF", send: text("\"\xf4\x90\x80\x80\""), want: ws.StatusInvalidFramePayloadData},
		{name: "truncated sequence", send: text(`{"op":"ping"}` + "\xe2\x82"), want: ws.StatusInvalidFramePayloadData},
		{name: "invalid utf-8 across fragments", send: concat(frag(opText, false, []byte("\"\xe2")), frag(opCont, true, []byte("\x28\xa1\""))), want: ws.StatusInvalidFramePayloadData},
		{name: "invalid utf-8 close reason", send: craft(bitFin|byte(opClose), true, ws.NewCloseFrameBody(1000, "\xff")), want: ws.StatusInvalidFramePayloadData},
		// A flood of RFC pings sent inside a fragmented message is
		// counted like any: see TestMessageRateLimit for the plain floods.
		{name: "ping flood inside a fragmented message", send: func() []byte {
			b := frag(opText, false, []byte(`{"op":`))
			for range 300 {
				b = append(b, craft(bitFin|byte(opPing), true, []byte("p"))...)
			}
			return append(b, frag(opCont, true, []byte(`"ping"}`))...)
		}(), want: ws.StatusPolicyViolation, reason: "rate limit exceeded"},
	}
	for i := 3; i <= 0xf; i++ {
		if i >= 8 && i <= 0xa {
			continue
		}
		tests = append(tests, struct {
			name   string
			send   []byte
			want   ws.StatusCode
			reason string
		}{name: fmt.Sprintf("opcode %#x", i), send: craft(bitFin|byte(i), true, []byte("x")), want: ws.StatusProtocolError})
	}
	for _, tt := range tests {
		h.run(t, tt.name, func(t *testing.T) {
			c := h.as(t).connect("attacker")
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			// The server may stop reading once it has closed: the send
			// goes on beside the read of the close frame.
			sent := make(chan error, 1)
			go func() {
				c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, err := c.Conn.Write(tt.send)
				sent <- err
			}()
			code, reason := hostileCloseCode(t, c)
			if err := <-sent; err != nil && code == 0 {
				t.Fatalf("send: %v", err)
			}
			if code != tt.want || tt.reason != "" && reason != tt.reason {
				t.Fatalf("close %d %q, want %d %q", code, reason, tt.want, tt.reason)
			}
			// Nothing is allocated for what a header declares.
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Fatalf("the process allocated %d bytes for %d bytes sent", alloc, len(tt.send))
			}
		})
	}

	// Many empty fragments add nothing to a message: however many, the
	// message is answered.
	h.run(t, "100,000 empty fragments", func(t *testing.T) {
		c := h.as(t).connect("attacker")
		var b bytes.Buffer
		b.Write(frag(opText, false, []byte(`{"op":"ping",`)))
		for range 100_000 {
			b.Write(frag(opCont, false, nil))
		}
		b.Write(frag(opCont, true, []byte(`"ref":5}`)))
		if _, err := c.Conn.Write(b.Bytes()); err != nil {
			t.Fatal(err)
		}
		if m := c.next(); m["type"] != "pong" || m["ref"] != 5.0 {
			t.Fatalf("got %v, want pong 5", m)
		}
	})

	h.run(t, "decompression bomb", func(t *testing.T) { hostileDeflate(t, h, bomb(1<<20), nil, ws.StatusMessageTooBig) })
	h.run(t, "decompression bomb in fragments", func(t *testing.T) {
		b := bomb(1 << 20)
		half := len(b) / 2
		hostileDeflate(t, h, nil, concat(craft(bitRsv1|byte(opText), true, b[:half]), craft(bitFin|byte(opCont), true, b[half:])), ws.StatusMessageTooBig)
	})
	// Each inflates to MaxMessageSize at most, 4 KiB of work for about 30
	// bytes: the message rate bounds how many the gateway inflates.
	h.run(t, "a flood of small bombs", func(t *testing.T) {
		b := craft(bitFin|bitRsv1|byte(opText), true, bomb(4096))
		hostileDeflate(t, h, nil, bytes.Repeat(b, 1000), ws.StatusPolicyViolation)
	})
	// Corrupt data and RSV1 on a continuation: TestDeflateClientMessages.
}

// hostileCloseCode reads until the server's close frame and returns its
// code, answering it as a client does.
func hostileCloseCode(t *testing.T, c *client) (ws.StatusCode, string) {
	t.Helper()
	code, reason := rawCloseCode(t, c)
	writeFrame(c.Conn, true, opClose, ws.NewCloseFrameBody(code, ""))
	return code, reason
}

// bomb is n zero bytes compressed as a permessage-deflate message.
func bomb(n int) []byte { return deflateRaw(make([]byte, n)) }

// hostileDeflate connects offering permessage-deflate without context
// takeover and sends the compressed text message msg in one frame with
// RSV1 set, or the raw frames; the server must close with want. It skips
// when the gateway does not negotiate the extension.
func hostileDeflate(t *testing.T, h *hostile, msg, frames []byte, want ws.StatusCode) {
	t.Helper()
	c := dialDeflate(t, h.env, "bomber", "permessage-deflate; client_no_context_takeover; server_no_context_takeover")
	if c.ext == "" {
		t.Skip("permessage-deflate not negotiated yet")
	}
	// A compressed ping op is answered: the extension works.
	c.send([]byte(`{"op":"ping","ref":1}`), true)
	if m, _ := c.next(); m["type"] != "pong" {
		t.Fatalf("compressed ping answered %v, want a pong", m)
	}
	if frames == nil {
		frames = craft(bitFin|bitRsv1|byte(opText), true, msg)
	}
	t.Logf("%d bytes on the wire", len(frames))
	sent := make(chan error, 1)
	go func() { _, err := c.Conn.Write(frames); sent <- err }()
	if code := c.closeCode(); code != want {
		t.Fatalf("close %d, want %d", code, want)
	}
	<-sent
}

// reply reads the next frame and checks its type, error code and ref.
func reply(t *testing.T, c *client, typ, code string, ref int64) map[string]any {
	t.Helper()
	m := c.next()
	if m["type"] != typ || code != "" && m["code"] != code || m["ref"] != float64(ref) {
		t.Fatalf("got %v, want %s %s with ref %d", m, typ, code, ref)
	}
	return m
}
func sendText(t *testing.T, c *client, msg string) {
	t.Helper()
	if err := writeFrame(c.Conn, true, opText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}
func TestHostileProtocol(t *testing.T) {
	h := newHostile(t, nil, nil)
	deep := `{"op":"ping","ref":7,"x":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`
	tests := []struct {
		name string
		msg  string
		typ  string // the reply's type: error, or pong when the message is one
		code string
		ref  int64
	}{
		{name: "truncated object", msg: `{"op":"ping"`, typ: "error", code: codeBadRequest},
		{name: "array", msg: `[{"op":"ping"}]`, typ: "error", code: codeBadRequest},
		{name: "string", msg: `"ping"`, typ: "error", code: codeBadRequest},
		{name: "empty message", msg: ``, typ: "error", code: codeBadRequest},
		{name: "op of the wrong type", msg: `{"op":1,"ref":2}`, typ: "error", code: codeBadRequest},
		{name: "ref of the wrong type", msg: `{"op":"ping","ref":"2"}`, typ: "error", code: codeBadRequest},
		{name: "fractional ref", msg: `{"op":"ping","ref":1.5}`, typ: "error", code: codeBadRequest},
		{name: "ref beyond int64", msg: `{"op":"ping","ref":99999999999999999999}`, typ: "error", code: codeBadRequest},
		{name: "ref of 1e400", msg: `{"op":"ping","ref":1e400}`, typ: "error", code: codeBadRequest},
		{name: "trailing data", msg: `{"op":"ping","ref":8}{"op":"ping"}`, typ: "error", code: codeBadRequest},
		{name: "nesting 1000 deep", msg: deep, typ: "pong", ref: 7},
		{name: "unknown op", msg: `{"op":"shout","channel":"topic.a","ref":3}`, typ: "error", code: codeUnknownOp, ref: 3},
		{name: "publish without upstream", msg: `{"op":"publish","channel":"topic.a","data":1,"ref":3}`, typ: "error", code: codeUpstreamDisabled, ref: 3},
		{name: "empty op", msg: `{"op":"","ref":4}`, typ: "error", code: codeUnknownOp, ref: 4},
		{name: "op in capitals", msg: `{"op":"PING","ref":5}`, typ: "error", code: codeUnknownOp, ref: 5},
		{name: "no op", msg: `{}`, typ: "error", code: codeUnknownOp},
		{name: "null", msg: `null`, typ: "error", code: codeUnknownOp},
	}
	for _, tt := range tests {
		h.run(t, tt.name, func(t *testing.T) {
			c := h.as(t).connect("attacker", "topic.>")
			sendText(t, c, tt.msg)
			reply(t, c, tt.typ, tt.code, tt.ref)
			expectPong(t, c, 100) // the connection stays
		})
	}

	long := "topic." + strings.Repeat("a", 123) // 129 bytes
	for _, name := range []string{"topic.*", "topic.>", "topic.a.*", "*", ">", "", long, "topic.ñ", "topic.a b",
		"topic..a", "topic.", ".topic.a", "topic.a\x00", "topic.a/b", "topic.%2A"} {
		h.run(t, fmt.Sprintf("channel %q", name), func(t *testing.T) {
			c := h.as(t).connect("attacker", ">")
			c.send(map[string]any{"op": "subscribe", "channel": name, "ref": 1})
			reply(t, c, "error", codeInvalidChannel, 1)
			c.send(map[string]any{"op": "unsubscribe", "channel": name, "ref": 2})
			reply(t, c, "error", codeInvalidChannel, 2)
		})
	}
	for _, name := range []string{"user.bystander", "broadcast"} {
		h.run(t, "channel "+name, func(t *testing.T) {
			c := h.as(t).connect("attacker", ">")
			c.send(map[string]any{"op": "subscribe", "channel": name, "ref": 1})
			reply(t, c, "error", codeForbidden, 1)
		})
	}

	for _, tt := range []struct {
		name   string
		query  string
		header http.Header
	}{
		{name: "no token"},
		{name: "empty query token", query: "?token="},
		{name: "blank query token", query: "?token=+"},
		{name: "empty bearer", header: http.Header{"Authorization": {"Bearer "}}},
		{name: "blank bearer", header: http.Header{"Authorization": {"Bearer     "}}},
		{name: "empty cookie", header: http.Header{"Cookie": {"wsgate_token="}}},
		{name: "empty quoted cookie", header: http.Header{"Cookie": {`wsgate_token=""`}}},
	} {
		h.run(t, tt.name, func(t *testing.T) {
			if got := h.status(t, h.url+tt.query, tt.header); got != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", got)
			}
		})
	}
}

// A flood of subscribe and unsubscribe ops is bounded by the message rate
// and, within it, by MaxSubscriptions; the bus interest it took is released
// either way. (Its own gateway: the bystander's pings count too, and the
// burst here is small.)
func TestHostileSubscribeFlood(t *testing.T) {
	h := newHostile(t, func(c *Config) { c.MaxSubscriptions = 5 }, nil)
	// The default burst, 2×MaxSubscriptions+10, is 20 messages.
	h.run(t, "subscribe/unsubscribe flood", func(t *testing.T) {
		c := h.as(t).connect("attacker", "topic.>")
		var flood bytes.Buffer
		for i := range 1000 {
			op := []string{"subscribe", "unsubscribe"}[i%2]
			writeFrame(&flood, true, opText, fmt.Appendf(nil, `{"op":%q,"channel":"topic.f%d","ref":%d}`, op, i/2%7, i))
		}
		sent := make(chan error, 1)
		go func() { _, err := c.Conn.Write(flood.Bytes()); sent <- err }()
		code, reason := c.closedWith()
		<-sent
		if code != ws.StatusPolicyViolation || reason != "rate limit exceeded" {
			t.Fatalf("close %d %q, want 1008 rate limit exceeded", code, reason)
		}
	})
	// Within the rate, MaxSubscriptions bounds what one connection holds.
	h.run(t, "subscriptions beyond the limit", func(t *testing.T) {
		c := h.as(t).connect("attacker", "topic.>")
		for i := range 10 {
			c.send(map[string]any{"op": "subscribe", "channel": fmt.Sprintf("topic.s%d", i), "ref": i})
		}
		for i := range 10 {
			if i < 5 {
				reply(t, c, "subscribed", "", int64(i))
			} else {
				reply(t, c, "error", codeTooMany, int64(i))
			}
		}
		expectPong(t, c, 100)
		expectSubscriptions(t, h.env, h.subs+5+1) // five topics and the attacker's user channel
		c.Conn.Close()                            // abruptly: the check below waits for the release
	})

}

// jwtParts signs nothing: it joins a header and claims, base64url-encoded,
// with sig.
func jwtParts(header, claims, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + sig
}
func TestHostileIdentity(t *testing.T) {
	h := newHostile(t, func(c *Config) {
		c.AllowedOrigins = []string{"https://app.example.com", "https://*.example.com"}
	}, nil)
	exp := time.Now().Add(time.Hour).Unix()
	claims := fmt.Sprintf(`{"sub":"attacker","exp":%d}`, exp)
	valid := token(t, "attacker", time.Hour)
	parts := strings.Split(valid, ".")
	hs := func(c jwt.Claims) string { return string(sign(t, jwt.SigningMethodHS256, testSecret, c)) }
	tokens := []struct{ name, token string }{
		{name: "expired", token: token(t, "attacker", -time.Second)},
		{name: "not valid before an hour from now", token: hs(jwt.RegisteredClaims{Subject: "attacker", ExpiresAt: jwt.NewNumericDate(time.Now().Add(2 * time.Hour)), NotBefore: jwt.NewNumericDate(time.Now().Add(time.Hour))})},
		{name: "no exp", token: hs(jwt.RegisteredClaims{Subject: "attacker"})},
		{name: "exp as a string", token: jwtParts(`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"sub":"attacker","exp":"%d"}`, exp), "x")},
		{name: "alg none", token: jwtParts(`{"alg":"none","typ":"JWT"}`, claims, "")},
		{name: "alg None", token: jwtParts(`{"alg":"None","typ":"JWT"}`, claims, "")},
		{name: "alg NONE", token: jwtParts(`{"alg":"NONE","typ":"JWT"}`, claims, "")},
		{name: "alg none with the HS256 signature", token: jwtParts(`{"alg":"none","typ":"JWT"}`, claims, parts[2])},
		{name: "signature stripped", token: parts[0] + "." + parts[1] + "."},
		{name: "signature of another token", token: parts[0] + "." + strings.Split(hs(jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "admin", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}), ".")[1] + "." + parts[2]},
		{name: "HS384", token: string(sign(t, jwt.SigningMethodHS384, testSecret, jwt.RegisteredClaims{Subject: "attacker", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}))},
		{name: "sub with a dot", token: token(t, "a.b", time.Hour)},
		{name: "empty sub", token: token(t, "", time.Hour)},
		{name: "two parts", token: parts[0] + "." + parts[1]},
		// CVE-2025-30204: jwt/v5 before 5.2.2 allocated 16 bytes per dot.
		{name: "8,000 dots", token: strings.Repeat(".", 8000)},
	}
	for _, tt := range tokens {
		h.run(t, tt.name, func(t *testing.T) {
			if got := h.status(t, h.url+"?token="+tt.token, nil); got != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", got)
			}
		})
	}

	h.run(t, "a token that expires during the session", func(t *testing.T) {
		c := h.as(t).connect("shortlived") // exp is 1 to 2 seconds away (whole seconds)
		c2, err := h.as(t).dialURL(h.url+"?token="+token(t, "shortlived", 2*time.Second), nil)
		if err != nil {
			t.Fatal(err)
		}
		if m := c2.next(); m["type"] != "welcome" {
			t.Fatalf("got %v, want a welcome", m)
		}
		began := time.Now()
		code, reason := c2.closedWith()
		if code != ws.StatusPolicyViolation || reason != "token expired" {
			t.Fatalf("close %d %q, want 1008 token expired", code, reason)
		}
		t.Logf("closed %v after the welcome", time.Since(began).Round(10*time.Millisecond))
		expectCount(t, "closes{auth_expired}", h.closeCount(ReasonAuthExpired), 1)
		// The user's other socket, whose token is good for an hour, stays.
		expectPong(t, c, 1)
		h.as(t).expectUserMessage("shortlived", "still here", c)
		c.Conn.Close()
	})

	origins := []struct {
		origin string // "" sends none
		want   int
		bug    string
	}{
		{origin: "https://app.example.com", want: 101},                               // exact
		{origin: "https://other.example.com", want: 101},                             // subdomain
		{origin: "https://evilapp.example.com", want: 101},                           // also a subdomain of example.com
		{origin: "https://a.b.example.com", want: 101},                               // nested subdomain
		{origin: "HTTPS://APP.EXAMPLE.COM", want: 101},                               // scheme and host are case-insensitive
		{origin: "HTTPS://X.EXAMPLE.COM", want: 101},                                 // likewise under the wildcard
		{origin: "", want: 101},                                                      // not a browser
		{origin: "https://evil.com", want: 403},                                      // other site
		{origin: "https://app.example.com.evil.com", want: 403},                      // suffix trick
		{origin: "https://evil-example.com", want: 403},                              // prefix trick
		{origin: "https://evilexample.com", want: 403},                               // prefix trick without a dash
		{origin: "https://example.com", want: 403},                                   // the apex is not a subdomain
		{origin: "https://.example.com", want: 403},                                  // empty label
		{origin: "http://app.example.com", want: 403},                                // scheme
		{origin: "http://x.example.com", want: 403},                                  // scheme under the wildcard
		{origin: "wss://app.example.com", want: 403},                                 // scheme
		{origin: "https://app.example.com:8443", want: 403},                          // port
		{origin: "https://x.example.com:8443", want: 403},                            // port under the wildcard
		{origin: "null", want: 403},                                                  // sandboxed or file: page
		{origin: "https://app.example.com/", want: 403},                              // not an origin
		{origin: "https://evil.com/.example.com", want: 403},                         // a path is not a host
		{origin: "https://evil.com?.example.com", want: 403},                         // neither is a query
		{origin: "https://evil.com#.example.com", want: 403},                         // nor a fragment
		{origin: "https://user@evil.com@x.example.com", want: 403},                   // nor userinfo
		{origin: "https://app.example.com, https://evil.com", want: 403},             // a list
		{origin: "https://evil.com https://app.example.com", want: 403},              // a list
		{origin: "https://app.example.com\x00.evil.com", want: 403},                  // a NUL
		{origin: "https://xn--pple-43d.example.com", want: 101},                      // punycode is a subdomain like any
		{origin: "https://" + strings.Repeat("a.", 4000) + "example.com", want: 101}, // long, within MaxHandshakeSize
	}
	for _, tt := range origins {
		name := tt.origin
		if name == "" {
			name = "missing"
		}
		if len(name) > 60 {
			name = name[:60] + "…"
		}
		h.run(t, "origin "+name, func(t *testing.T) {
			var header http.Header
			if tt.origin != "" {
				header = http.Header{"Origin": {tt.origin}}
			}
			got := h.status(t, h.url+"?token="+valid, header)
			if got != tt.want && tt.bug != "" {
				t.Skipf("bug: %s: Origin %q is answered %d, want %d", tt.bug, tt.origin, got, tt.want)
			}
			if got != tt.want {
				t.Fatalf("Origin %q: status %d, want %d", tt.origin, got, tt.want)
			}
		})
	}
}

// Algorithm confusion: with an RS256 public key configured, a token signed
// with HS256 using the public key's bytes as the HMAC secret is refused.
func TestHostileAlgorithmConfusion(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pemPublic(t, &key.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(sub string) jwtClaims {
		return jwtClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	}
	h := newHostile(t, func(c *Config) {
		auth, err := NewJWTAuth(JWTConfig{PublicKeyPEM: pemKey})
		if err != nil {
			t.Fatal(err)
		}
		c.Auth = auth
	}, func(e *env) *client {
		c, err := e.dialURL(e.url+"?token="+string(sign(t, jwt.SigningMethodRS256, key, claims("bystander"))), nil)
		if err != nil {
			t.Fatal(err)
		}
		if m := c.next(); m["type"] != "welcome" {
			t.Fatalf("bystander got %v", m)
		}
		return c
	})
	for _, tt := range []struct {
		name string
		tok  []byte
	}{
		{name: "HS256 with the PEM public key as secret", tok: sign(t, jwt.SigningMethodHS256, pemKey, claims("attacker"))},
		{name: "HS256 with the PEM public key without its final newline", tok: sign(t, jwt.SigningMethodHS256, bytes.TrimSpace(pemKey), claims("attacker"))},
		{name: "HS256 with the DER public key as secret", tok: sign(t, jwt.SigningMethodHS256, der, claims("attacker"))},
		{name: "PS256 with the right key", tok: sign(t, jwt.SigningMethodPS256, key, claims("attacker"))},
		{name: "RS512 with the right key", tok: sign(t, jwt.SigningMethodRS512, key, claims("attacker"))},
	} {
		h.run(t, tt.name, func(t *testing.T) {
			if got := h.status(t, h.url+"?token="+string(tt.tok), nil); got != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", got)
			}
		})
	}
}

// With Issuer and Audience configured, a token for another issuer or
// audience, or without them, is refused.
func TestHostileIssuerAudience(t *testing.T) {
	h := newHostile(t, func(c *Config) {
		auth, err := NewJWTAuth(JWTConfig{Secret: testSecret, Issuer: "https://auth.example.com", Audience: "wsgate"})
		if err != nil {
			t.Fatal(err)
		}
		c.Auth = auth
	}, func(e *env) *client {
		tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.RegisteredClaims{Subject: "bystander", Issuer: "https://auth.example.com",
			Audience: jwt.ClaimStrings{"wsgate"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))})
		c, err := e.dialURL(e.url+"?token="+string(tok), nil)
		if err != nil {
			t.Fatal(err)
		}
		if m := c.next(); m["type"] != "welcome" {
			t.Fatalf("bystander got %v", m)
		}
		return c
	})
	exp := jwt.NewNumericDate(time.Now().Add(time.Hour))
	for _, tt := range []struct {
		name string
		iss  string
		aud  jwt.ClaimStrings
		want int
	}{
		{name: "right iss and aud", iss: "https://auth.example.com", aud: jwt.ClaimStrings{"wsgate"}, want: 101},
		{name: "aud among others", iss: "https://auth.example.com", aud: jwt.ClaimStrings{"billing", "wsgate"}, want: 101},
		{name: "wrong iss", iss: "https://evil.example.com", aud: jwt.ClaimStrings{"wsgate"}, want: 401},
		{name: "iss with a trailing slash", iss: "https://auth.example.com/", aud: jwt.ClaimStrings{"wsgate"}, want: 401},
		{name: "missing iss", aud: jwt.ClaimStrings{"wsgate"}, want: 401},
		{name: "wrong aud", iss: "https://auth.example.com", aud: jwt.ClaimStrings{"billing"}, want: 401},
		{name: "aud in capitals", iss: "https://auth.example.com", aud: jwt.ClaimStrings{"WSGATE"}, want: 401},
		{name: "missing aud", iss: "https://auth.example.com", want: 401},
	} {
		h.run(t, tt.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, testSecret, jwt.RegisteredClaims{Subject: "attacker", Issuer: tt.iss, Audience: tt.aud, ExpiresAt: exp})
			if got := h.status(t, h.url+"?token="+string(tok), nil); got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
		})
	}
}
