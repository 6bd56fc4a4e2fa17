package gateway

// The raw client of the RFC 6455 conformance suite (conformance_test.go).
// It speaks WebSocket byte by byte, so that it can break any rule on
// purpose: a hand-written upgrade request, frames crafted bit by bit
// (unmasked, reserved bits, reserved opcodes, any fragmentation, declared
// lengths the payload does not have), written in chunks of any size with
// pauses between them. It reads the server's frames strictly: a server
// frame that breaks RFC 6455 fails the case even when the case got what it
// expected.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wire"
)

// confFrame is one client frame as a case crafts it. The zero value of
// every field is what a correct client sends: final, masked, no reserved
// bits, the payload's own length.
type confFrame struct {
	op       ws.OpCode
	payload  []byte
	more     bool     // FIN clear: more fragments follow
	rsv      byte     // the reserved bits: 4 is RSV1, 2 RSV2, 1 RSV3
	unmasked bool     // no mask, as only a broken client sends
	key      *[4]byte // the masking key; nil means testKey
	declare  uint64   // nonzero: the length the header declares (in the 64-bit form), whatever the payload
}

func cfText(s string) confFrame        { return confFrame{op: ws.OpText, payload: []byte(s)} }
func cfBinary(p []byte) confFrame      { return confFrame{op: ws.OpBinary, payload: p} }
func cfCont(p []byte) confFrame        { return confFrame{op: ws.OpContinuation, payload: p} }
func cfPing(p []byte) confFrame        { return confFrame{op: ws.OpPing, payload: p} }
func cfPong(p []byte) confFrame        { return confFrame{op: ws.OpPong, payload: p} }
func cfOp(op byte, p []byte) confFrame { return confFrame{op: ws.OpCode(op), payload: p} }

// cfClose is a close frame carrying code and reason.
func cfClose(code uint16, reason string) confFrame {
	return confFrame{op: ws.OpClose, payload: append(binary.BigEndian.AppendUint16(nil, code), reason...)}
}

// cfCloseRaw is a close frame with exactly payload p (none, one byte…).
func cfCloseRaw(p []byte) confFrame { return confFrame{op: ws.OpClose, payload: p} }

func (f confFrame) fragment() confFrame          { f.more = true; return f }
func (f confFrame) withRSV(rsv byte) confFrame   { f.rsv = rsv; return f }
func (f confFrame) unmask() confFrame            { f.unmasked = true; return f }
func (f confFrame) withKey(k [4]byte) confFrame  { f.key = &k; return f }
func (f confFrame) declaring(n uint64) confFrame { f.declare = n; return f }

// appendTo appends the frame's bytes to b (RFC 6455 section 5.2).
func (f confFrame) appendTo(b []byte) []byte {
	b0 := byte(f.op)&0x0f | (f.rsv&7)<<4
	if !f.more {
		b0 |= bitFin
	}
	var key *[4]byte
	if !f.unmasked {
		key = &testKey
		if f.key != nil {
			key = f.key
		}
	}
	if f.declare == 0 {
		return append(b, craftKey(b0, key, f.payload)...)
	}
	b = append(b, declaredKey(b0, key, f.declare)...)
	start := len(b)
	b = append(b, f.payload...)
	if key != nil {
		ws.Cipher(b[start:], *key, 0)
	}
	return b
}

// wellFormedClose reports whether the server parses f as a close frame
// (it may still refuse its payload), so that the client has started or
// answered the closing handshake and must not send another close.
func (f confFrame) wellFormedClose() bool {
	return f.op == ws.OpClose && !f.more && f.rsv == 0 && !f.unmasked && f.declare == 0 && len(f.payload) <= 125
}

// confStream encodes frames into one byte stream and reports whether it
// holds a close frame the server will read as one: not one swallowed by a
// frame that declares more payload than it carries.
func confStream(frames []confFrame) (stream []byte, closes bool) {
	swallowed := false
	for _, f := range frames {
		stream = f.appendTo(stream)
		if !swallowed && f.wellFormedClose() {
			closes = true
		}
		if f.declare > uint64(len(f.payload)) {
			swallowed = true
		}
	}
	return stream, closes
}

// confMsg is what the server sent: a complete data message (reassembled if
// the server fragmented it), a control frame, or, in a case's expectations,
// what it must send.
type confMsg struct {
	op      ws.OpCode
	payload []byte        // data messages, pings and pongs
	code    ws.StatusCode // close frames; 0 means a close frame without payload
	reason  string        // close frames, as received; expectations ignore it
}

func cwText(s string) confMsg    { return confMsg{op: ws.OpText, payload: []byte(s)} }
func cwBinary(p []byte) confMsg  { return confMsg{op: ws.OpBinary, payload: p} }
func cwPong(p []byte) confMsg    { return confMsg{op: ws.OpPong, payload: p} }
func cwClose(code int) confMsg   { return confMsg{op: ws.OpClose, code: ws.StatusCode(code)} }
func cwEcho(f confFrame) confMsg { return confMsg{op: f.op, payload: f.payload} }
func (m confMsg) matches(w confMsg) bool {
	if m.op != w.op {
		return false
	}
	if m.op == ws.OpClose {
		return m.code == w.code
	}
	return string(m.payload) == string(w.payload)
}

func (m confMsg) String() string {
	if m.op == ws.OpClose {
		if m.code == 0 {
			return "close without payload"
		}
		return fmt.Sprintf("close %d %q", m.code, m.reason)
	}
	p := m.payload
	const show = 24
	if len(p) > show {
		return fmt.Sprintf("%s of %d bytes %q…", confOpName(m.op), len(p), p[:show])
	}
	return fmt.Sprintf("%s of %d bytes %q", confOpName(m.op), len(p), p)
}

func confOpName(op ws.OpCode) string {
	switch op {
	case ws.OpContinuation:
		return "continuation"
	case ws.OpText:
		return "text"
	case ws.OpBinary:
		return "binary"
	case ws.OpClose:
		return "close"
	case ws.OpPing:
		return "ping"
	case ws.OpPong:
		return "pong"
	}
	return fmt.Sprintf("opcode %#x", byte(op))
}

// confConn is one raw client connection.
type confConn struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	// msg and msgOp hold a server data message whose final frame has not
	// come yet; msgOp is 0 when none is open.
	msg   []byte
	msgOp ws.OpCode
}

// confMaxFrame bounds what the reader accepts from the server.
const confMaxFrame = 1 << 21

// dialConf connects to the gateway at addr as user and upgrades with a
// hand-written request, sending early (frames, typically) in the same write
// as the request. It checks the 101 answer as a browser does, and that the
// server negotiated no extension or subprotocol, since none was offered.
func dialConf(t testing.TB, addr, user string, early []byte) *confConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET /ws?user=" + user + " HTTP/1.1\r\n" +
		"Host: " + addr + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(append([]byte(req), early...)); err != nil {
		t.Fatalf("write upgrade request: %v", err)
	}
	br := bufio.NewReader(conn)
	tp := textproto.NewReader(br)
	status, err := tp.ReadLine()
	if err != nil {
		t.Fatalf("read upgrade response: %v", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 101 ") {
		t.Fatalf("upgrade response %q, want HTTP/1.1 101", status)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("read upgrade response headers: %v", err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	switch {
	case !strings.EqualFold(h.Get("Upgrade"), "websocket"):
		t.Fatalf("Upgrade: %q, want websocket", h.Get("Upgrade"))
	case !confHasToken(h.Values("Connection"), "upgrade"):
		t.Fatalf("Connection: %q, want upgrade", h.Values("Connection"))
	case h.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]):
		t.Fatalf("Sec-WebSocket-Accept: %q, want %q", h.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]))
	case h.Get("Sec-WebSocket-Extensions") != "":
		t.Fatalf("Sec-WebSocket-Extensions: %q, but none was offered", h.Get("Sec-WebSocket-Extensions"))
	case h.Get("Sec-WebSocket-Protocol") != "":
		t.Fatalf("Sec-WebSocket-Protocol: %q, but none was offered", h.Get("Sec-WebSocket-Protocol"))
	}
	conn.SetDeadline(time.Time{})
	return &confConn{t: t, conn: conn, br: br}
}

func confHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(s), token) {
				return true
			}
		}
	}
	return false
}

// write sends p in writes of chunk bytes (all at once when chunk is 0),
// pausing between them so that the server sees each piece on its own. The
// pauses shape the input; nothing waits on them.
func (c *confConn) write(p []byte, chunk int, pause time.Duration) error {
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if chunk <= 0 {
		chunk = len(p)
	}
	for len(p) > 0 {
		n := min(chunk, len(p))
		if _, err := c.conn.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
		if pause > 0 && len(p) > 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

// writeCut sends p split at the offsets cuts, pause apart, or, without
// cuts, as write does.
func (c *confConn) writeCut(p []byte, cuts []int, chunk int, pause time.Duration) error {
	if len(cuts) == 0 {
		return c.write(p, chunk, pause)
	}
	from := 0
	for _, to := range append(cuts, len(p)) {
		if err := c.write(p[from:to], 0, 0); err != nil {
			return err
		}
		if from = to; pause > 0 && from < len(p) {
			time.Sleep(pause)
		}
	}
	return nil
}

// send writes frames in one write.
func (c *confConn) send(frames ...confFrame) {
	c.t.Helper()
	stream, _ := confStream(frames)
	if err := c.write(stream, 0, 0); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readFrame reads one server frame and checks it against RFC 6455 section
// 5: never masked (5.1), no reserved bit without an extension (5.2), no
// reserved opcode, the minimal length encoding and a clear most
// significant bit (5.2), control frames final and at most 125 bytes (5.5).
// The header is parsed by wire.ParseHeader, as the gateway parses a
// client's.
func (c *confConn) readFrame() (fin bool, op ws.OpCode, p []byte, err error) {
	var (
		h   ws.Header
		hdr []byte
		n   int
	)
	for need := 2; ; need++ {
		if hdr, err = c.br.Peek(need); err != nil {
			return false, 0, nil, err
		}
		h, n, err = wire.ParseHeader(hdr)
		if err == wire.ErrIncomplete {
			continue
		}
		if err != nil {
			return false, 0, nil, fmt.Errorf("server frame header % x: %w", hdr, err)
		}
		break
	}
	lengthCode := hdr[1] & 0x7f
	c.br.Discard(n)
	fin, op = h.Fin, h.OpCode
	switch {
	case h.Rsv != 0:
		return fin, op, nil, fmt.Errorf("server frame with reserved bits %#x and no extension", h.Rsv<<4)
	case h.Masked:
		return fin, op, nil, errors.New("masked server frame")
	}
	switch op {
	case ws.OpContinuation, ws.OpText, ws.OpBinary, ws.OpClose, ws.OpPing, ws.OpPong:
	default:
		return fin, op, nil, fmt.Errorf("server frame with reserved opcode %#x", byte(op))
	}
	switch {
	case lengthCode == 126 && h.Length < 126:
		return fin, op, nil, fmt.Errorf("server frame length %d not minimally encoded", h.Length)
	case lengthCode == 127 && h.Length <= 0xffff:
		return fin, op, nil, fmt.Errorf("server frame length %d badly encoded", h.Length)
	case op.IsControl() && (!fin || h.Length > 125):
		return fin, op, nil, fmt.Errorf("server %s frame with FIN=%v and %d bytes", confOpName(op), fin, h.Length)
	case h.Length > confMaxFrame:
		return fin, op, nil, fmt.Errorf("server frame of %d bytes", h.Length)
	}
	p = make([]byte, h.Length)
	_, err = io.ReadFull(c.br, p)
	return fin, op, p, err
}

// next reads the server's next control frame or complete data message
// within timeout, checking fragmentation (5.4), that a text message is
// UTF-8 (8.1) and the close frame's payload (5.5.1, 7.4).
func (c *confConn) next(timeout time.Duration) (confMsg, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		fin, op, p, err := c.readFrame()
		if err != nil {
			return confMsg{}, err
		}
		switch {
		case op == ws.OpClose:
			return confCloseMsg(p)
		case op.IsControl():
			return confMsg{op: op, payload: p}, nil
		case op == ws.OpContinuation && c.msgOp == 0:
			return confMsg{}, errors.New("server continuation frame without a message")
		case op != ws.OpContinuation && c.msgOp != 0:
			return confMsg{}, errors.New("server data frame inside a fragmented message")
		case op != ws.OpContinuation:
			c.msgOp = op
		}
		if len(c.msg)+len(p) > confMaxFrame {
			return confMsg{}, errors.New("server message too big for the test")
		}
		c.msg = append(c.msg, p...)
		if !fin {
			continue
		}
		m := confMsg{op: c.msgOp, payload: c.msg}
		c.msg, c.msgOp = nil, 0
		if m.op == ws.OpText && !utf8.Valid(m.payload) {
			return m, errors.New("server text message is not UTF-8")
		}
		return m, nil
	}
}

// confCloseMsg checks a server close payload: empty, or a code a sender may
// use followed by a UTF-8 reason.
func confCloseMsg(p []byte) (confMsg, error) {
	m := confMsg{op: ws.OpClose}
	switch {
	case len(p) == 0:
		return m, nil
	case len(p) == 1:
		return m, errors.New("server close frame with a 1-byte payload")
	}
	m.code, m.reason = ws.StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
	if !validCloseCode(m.code) {
		return m, fmt.Errorf("server close code %d may not be sent", m.code)
	}
	if !utf8.ValidString(m.reason) {
		return m, fmt.Errorf("server close reason %q is not UTF-8", m.reason)
	}
	return m, nil
}

// expect reads the server's next message and checks it is want.
func (c *confConn) expect(want confMsg, timeout time.Duration) confMsg {
	c.t.Helper()
	got, err := c.next(timeout)
	if err != nil {
		c.t.Fatalf("want %v: %v", want, err)
	}
	if !got.matches(want) {
		c.t.Fatalf("got %v, want %v", got, want)
	}
	return got
}

// expectEOF reads until the server closes the TCP connection, failing on
// any byte it sends first or when it does not close within timeout.
func (c *confConn) expectEOF(timeout time.Duration) {
	c.t.Helper()
	if err := c.closed(timeout); err != nil {
		c.t.Fatal(err)
	}
}

// closed reads until the server closes the TCP connection and reports any
// byte it sends first, or that it did not close within timeout. It wants a
// clean end of stream: the server has read what the client sent before it
// closes, so that its kernel sends FIN. A reset (close with unread bytes)
// may destroy the server's close frame before a client reads it.
func (c *confConn) closed(timeout time.Duration) error {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	var b [512]byte
	n, err := c.br.Read(b[:])
	switch {
	case n > 0:
		return fmt.Errorf("got %d bytes after the close frame (% x…), want the TCP connection closed", n, b[:min(n, 16)])
	case errors.Is(err, io.EOF):
		return nil
	}
	return fmt.Errorf("want the server to close the TCP connection: %w", err)
}

// The suite's reader must refuse every server frame that breaks RFC 6455,
// or a passing case proves less than it says. It reads here from a fake
// server on a pipe.
func TestConformanceReaderIsStrict(t *testing.T) {
	frame := func(b0, b1 byte, rest ...byte) []byte { return append([]byte{b0, b1}, rest...) }
	tests := []struct {
		name string
		in   []byte
		want []confMsg // read first; then the next read must fail
	}{
		{name: "masked", in: frame(0x81, 0x81, 1, 2, 3, 4, 'x')},
		{name: "RSV1 without extension", in: frame(0xc1, 0x01, 'x')},
		{name: "RSV3 without extension", in: frame(0x91, 0x01, 'x')},
		{name: "reserved data opcode", in: frame(0x83, 0x00)},
		{name: "reserved control opcode", in: frame(0x8b, 0x00)},
		{name: "ping with FIN clear", in: frame(0x09, 0x00)},
		{name: "ping of 126 bytes", in: append(frame(0x89, 126, 0, 126), make([]byte, 126)...)},
		{name: "16-bit length under 126", in: frame(0x81, 126, 0, 1, 'x')},
		{name: "64-bit length under 65536", in: frame(0x81, 127, 0, 0, 0, 0, 0, 0, 0, 1, 'x')},
		{name: "64-bit length with its top bit", in: frame(0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1)},
		{name: "close with 1 byte", in: frame(0x88, 0x01, 3)},
		{name: "close 1005", in: frame(0x88, 0x02, 0x03, 0xed)},
		{name: "close 1006", in: frame(0x88, 0x02, 0x03, 0xee)},
		{name: "close reason not UTF-8", in: frame(0x88, 0x03, 0x03, 0xe8, 0xff)},
		{name: "text not UTF-8", in: frame(0x81, 0x01, 0xff)},
		{name: "text not UTF-8 across fragments", in: append(frame(0x01, 0x01, 0xe2), frame(0x80, 0x01, 0x82)...)},
		{name: "continuation without a message", in: frame(0x80, 0x01, 'x')},
		{name: "text inside a fragmented message", in: append(frame(0x01, 0x01, 'a'), frame(0x81, 0x01, 'b')...)},
		{
			name: "fragmented text with a ping between, then a masked frame",
			in:   bytes.Join([][]byte{frame(0x01, 0x01, 0xe2), frame(0x89, 0x01, 'p'), frame(0x00, 0x01, 0x82), frame(0x80, 0x01, 0xac), frame(0x81, 0x81, 0, 0, 0, 0, 'x')}, nil),
			want: []confMsg{{op: ws.OpPing, payload: []byte("p")}, cwText("€")},
		},
		{name: "close 1000, then a byte", in: frame(0x88, 0x02, 0x03, 0xe8, 0), want: []confMsg{cwClose(1000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				server.Write(tt.in)
				server.Close()
			}()
			c := &confConn{t: t, conn: client, br: bufio.NewReader(client)}
			for _, w := range tt.want {
				c.expect(w, time.Second)
			}
			if len(tt.want) > 0 && tt.want[len(tt.want)-1].op == ws.OpClose {
				if err := c.closed(time.Second); err == nil {
					t.Fatal("a byte after the close frame passed")
				}
				return
			}
			m, err := c.next(time.Second)
			if err == nil {
				t.Fatalf("read %v, want an error", m)
			}
			t.Log(err)
		})
	}
}
