package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wstest"
)

func TestCloseCodes(t *testing.T) {
	// A frame that announces more than the client sends swallows the
	// client's close reply; the server then gives up after CloseTimeout.
	e := newEnv(t, func(c *Config) { c.CloseTimeout = 300 * time.Millisecond })
	tests := []struct {
		name string
		send func(c *client) error
		want ws.StatusCode
	}{
		{
			name: "too big",
			send: func(c *client) error { return writeFrame(c.Conn, true, opText, bytes.Repeat([]byte("a"), 5000)) },
			want: ws.StatusMessageTooBig,
		},
		{
			name: "too big in fragments",
			send: func(c *client) error {
				for i := range 3 {
					if err := writeFragment(c.Conn, true, false, []ws.OpCode{opText, opCont, opCont}[i], bytes.Repeat([]byte("a"), 2000)); err != nil {
						return err
					}
				}
				return nil
			},
			want: ws.StatusMessageTooBig,
		},
		{
			// The announced length would overflow a naive
			// "length + buffered > limit" check.
			name: "continuation of 2^63-1 bytes",
			send: func(c *client) error {
				if err := writeFragment(c.Conn, true, false, opText, []byte("a")); err != nil {
					return err
				}
				_, err := c.Conn.Write([]byte{0x80, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 'x'})
				return err
			},
			want: ws.StatusMessageTooBig,
		},
		{
			name: "unmasked",
			send: func(c *client) error { return writeFrame(c.Conn, false, opText, []byte(`{"op":"ping"}`)) },
			want: ws.StatusProtocolError,
		},
		{
			name: "reserved opcode",
			send: func(c *client) error { return writeFrame(c.Conn, true, ws.OpCode(0x3), []byte("x")) },
			want: ws.StatusProtocolError,
		},
		{
			name: "continuation without start",
			send: func(c *client) error { return writeFrame(c.Conn, true, opCont, []byte("x")) },
			want: ws.StatusProtocolError,
		},
		{
			name: "invalid utf-8",
			send: func(c *client) error { return writeFrame(c.Conn, true, opText, []byte{'"', 0xff, 0xfe, '"'}) },
			want: ws.StatusInvalidFramePayloadData,
		},
		{
			name: "binary",
			send: func(c *client) error { return writeFrame(c.Conn, true, opBinary, []byte{1, 2, 3}) },
			want: ws.StatusUnsupportedData,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connect("closer")
			if err := tt.send(c); err != nil {
				t.Fatal(err)
			}
			if got := c.closeCode(); got != tt.want {
				t.Fatalf("close code = %d, want %d", got, tt.want)
			}
			// The client answered the close; the server drops the socket.
			expectEOF(t, c)
		})
	}
	// Nobody else was disturbed.
	other := e.connect("bystander")
	e.pub.User("bystander", []byte(`1`))
	if m := other.next(); m["data"] != 1.0 {
		t.Fatalf("bystander got %v", m)
	}
}

// The client starts the close handshake: the server echoes its code and
// drops the socket.
func TestClientCloseHandshake(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connect("leaver")
	if err := writeFrame(c.Conn, true, opClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")); err != nil {
		t.Fatal(err)
	}
	f := readRawFrame(t, c)
	if f.op != opClose {
		t.Fatalf("got opcode %v, want close", f.op)
	}
	code, _ := ws.ParseCloseFrameData(f.payload)
	if code != ws.StatusNormalClosure {
		t.Fatalf("close reply code = %d, want 1000", code)
	}
	expectEOF(t, c)
	wstest.CheckFor(t, 2*time.Second, poll, func() error {
		if n := e.srv.hub.count(); n != 0 {
			return errors.New("the connection is still in the hub")
		}
		return nil
	})

	// A close frame with a code that must not be sent is a protocol error.
	for _, code := range []ws.StatusCode{1005, 1006, 1015, 999, 2000, 5000} {
		c = e.connect("leaver")
		writeFrame(c.Conn, true, opClose, ws.NewCloseFrameBody(code, ""))
		f = readRawFrame(t, c)
		if got, _ := ws.ParseCloseFrameData(f.payload); f.op != opClose || got != ws.StatusProtocolError {
			t.Fatalf("reply to close %d = %v %d, want close 1002", code, f.op, got)
		}
	}
	// Application codes and the codes IANA registered after the RFC are
	// echoed.
	for _, code := range []ws.StatusCode{4321, 3000, 1012, 1013, 1014} {
		c = e.connect("leaver")
		writeFrame(c.Conn, true, opClose, ws.NewCloseFrameBody(code, "app"))
		f = readRawFrame(t, c)
		if got, _ := ws.ParseCloseFrameData(f.payload); got != code {
			t.Fatalf("reply to close %d = %d, want the same code", code, got)
		}
	}
}
func TestFragmentedMessage(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connect("frag")
	writeFragment(c.Conn, true, false, opText, []byte(`{"op":"pi`))
	writeFrame(c.Conn, true, opPing, []byte("in between")) // control frames may interleave
	writeFragment(c.Conn, true, true, opCont, []byte(`ng","ref":9}`))
	if f := readRawFrame(t, c); f.op != opPong {
		t.Fatalf("got %v, want the pong first", f.op)
	}
	if m := c.next(); m["type"] != "pong" || m["ref"] != 9.0 {
		t.Fatalf("reply = %v", m)
	}
}

// A frame that arrives one byte at a time is assembled across read tasks.
func TestByteByByte(t *testing.T) {
	e := newEnv(t, nil)
	c := e.connect("slowpoke")
	var buf bytes.Buffer
	writeFrame(&buf, true, opText, []byte(`{"op":"ping","ref":77}`))
	for _, b := range buf.Bytes() {
		if _, err := c.Conn.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // spread the bytes over separate reads
	}
	if m := c.next(); m["type"] != "pong" || m["ref"] != 77.0 {
		t.Fatalf("reply = %v", m)
	}
}
func TestUpgradeRejections(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedOrigins = []string{"https://app.example.com", "https://*.example.org"} })
	good := token(t, "u", time.Hour)
	tests := []struct {
		name   string
		url    string
		header http.Header
		want   int // HTTP status; 101 for success
	}{
		{name: "wrong path", url: strings.Replace(e.url, "/ws", "/nope", 1) + "?token=" + good, want: 404},
		{name: "no token", url: e.url, want: 401},
		{name: "bad token", url: e.url + "?token=abc.def.ghi", want: 401},
		{name: "expired", url: e.url + "?token=" + token(t, "u", -time.Minute), want: 401},
		{name: "wrong key", url: e.url + "?token=" + otherKeyToken(t), want: 401},
		{name: "user param ignored in jwt mode", url: e.url + "?user=u", want: 401},
		{name: "query token", url: e.url + "?token=" + good, want: 101},
		{name: "bearer header", url: e.url, header: http.Header{"Authorization": {"Bearer " + good}}, want: 101},
		{name: "cookie", url: e.url, header: http.Header{"Cookie": {"a=b; wsgate_token=" + good}}, want: 101},
		{name: "query before bearer", url: e.url + "?token=" + good, header: http.Header{"Authorization": {"Bearer bad"}}, want: 101},
		{name: "bearer before cookie", url: e.url, header: http.Header{"Cookie": {"wsgate_token=" + good}, "Authorization": {"Bearer bad"}}, want: 401},
		{name: "user id too long for its channel", url: e.url + "?token=" + token(t, strings.Repeat("u", 124), time.Hour), want: 401},
		{name: "origin allowed", url: e.url + "?token=" + good, header: http.Header{"Origin": {"https://app.example.com"}}, want: 101},
		{name: "origin subdomain", url: e.url + "?token=" + good, header: http.Header{"Origin": {"https://x.example.org"}}, want: 101},
		{name: "origin denied", url: e.url + "?token=" + good, header: http.Header{"Origin": {"https://evil.com"}}, want: 403},
		{name: "origin look-alike", url: e.url + "?token=" + good, header: http.Header{"Origin": {"https://evilexample.org"}}, want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.dialURL(tt.url, tt.header)
			got := 101
			var se ws.StatusError
			if errors.As(err, &se) {
				got = int(se)
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("status = %d, want %d", got, tt.want)
			}
		})
	}
}
func otherKeyToken(t testing.TB) string {
	saved := testSecret
	testSecret = []byte("another-secret-another-secret-xx")
	defer func() { testSecret = saved }()
	return token(t, "u", time.Hour)
}
func TestHandshakeLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/ws")

	t.Run("too large", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := "GET /ws HTTP/1.1\r\nHost: x\r\nX-Junk: " + strings.Repeat("j", 20<<10) + "\r\n\r\n"
		go conn.Write([]byte(req))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status = %d, want 431", resp.StatusCode)
		}
	})
	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n"))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server kept an incomplete handshake open past its deadline")
		}
	})
}
func TestShutdownSendsGoingAway(t *testing.T) {
	e := newEnv(t, nil)
	clients := []*client{e.connect("a"), e.connect("b")}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	for _, c := range clients {
		if got := c.closeCode(); got != ws.StatusGoingAway {
			t.Fatalf("close code = %d, want 1001", got)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := e.dialURL(e.url+"?token="+token(t, "late", time.Hour), nil); err == nil {
		t.Fatal("a connection was accepted after Shutdown")
	}
}
