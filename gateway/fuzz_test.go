package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// FuzzParseHeader checks our slice parser against gobwas/ws's reader.
func FuzzParseHeader(f *testing.F) {
	for _, seed := range frameSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		h, n, err := parseHeader(p)
		r := bytes.NewReader(p)
		want, werr := ws.ReadHeader(r)
		switch {
		case werr == io.EOF || werr == io.ErrUnexpectedEOF:
			// gobwas reads length and mask in one go; we may see a bad
			// length before the mask has arrived.
			if err != errIncomplete && err != ws.ErrHeaderLengthMSB {
				t.Fatalf("gobwas: incomplete; parseHeader: %v", err)
			}
		case werr != nil:
			if err == nil {
				t.Fatalf("gobwas: %v; parseHeader accepted %+v", werr, h)
			}
		default:
			if err != nil || h != want || n != len(p)-r.Len() {
				t.Fatalf("parseHeader = %+v, %d, %v; gobwas = %+v, %d", h, n, err, want, len(p)-r.Len())
			}
		}
	})
}

// frameSeeds are client byte streams as real clients send them.
func frameSeeds() [][]byte {
	var seeds [][]byte
	add := func(frames ...func(w io.Writer)) {
		var b bytes.Buffer
		for _, f := range frames {
			f(&b)
		}
		seeds = append(seeds, b.Bytes())
	}
	text := func(s string) func(io.Writer) {
		return func(w io.Writer) { writeFrame(w, true, opText, []byte(s)) }
	}
	add(text(`{"op":"subscribe","channel":"topic.sports","ref":1}`))
	add(text(`{"op":"ping","ref":3}`), text(`{"op":"unsubscribe","channel":"topic.sports","ref":2}`))
	add(func(w io.Writer) { writeFragment(w, true, false, opText, []byte(`{"op":`)) },
		func(w io.Writer) { writeFrame(w, true, opPing, []byte("x")) },
		func(w io.Writer) { writeFragment(w, true, true, opCont, []byte(`"ping"}`)) })
	add(func(w io.Writer) { writeFrame(w, true, opClose, ws.NewCloseFrameBody(1000, "bye")) })
	add(func(w io.Writer) { writeFrame(w, true, opText, bytes.Repeat([]byte("a"), 300)) })
	add(func(w io.Writer) { writeFrame(w, false, opText, []byte("unmasked")) })
	add(func(w io.Writer) { w.Write([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}) })
	add(func(w io.Writer) { w.Write([]byte{0x81, 0xfe, 0x03, 0xe8, 1, 2, 3, 4, 'x'}) }) // 1000 bytes announced, 1 sent
	return seeds
}

// FuzzConnInput sends arbitrary bytes from a real client on a real socket.
// Whatever they are, the gateway must answer the next ping op or close the
// connection with a valid close code, and never disturb another client.
func FuzzConnInput(f *testing.F) {
	for _, seed := range frameSeeds() {
		f.Add(seed)
	}
	e := newEnv(f, nil)
	witness := e.connect("witness")
	f.Fuzz(func(t *testing.T, p []byte) {
		c := e.as(t).connect("fuzz")
		defer c.conn.Close()
		c.conn.Write(p)
		var probe bytes.Buffer
		writeFrame(&probe, true, opText, []byte(`{"op":"ping","ref":424242}`))
		c.conn.Write(probe.Bytes())
		// If p ended inside a frame, the probe went into its payload: zeros
		// complete any frame within the size limit, and then read as
		// unmasked frames, which must close the connection.
		filled := false
		for {
			c.conn.SetReadDeadline(time.Now().Add(time.Second))
			data, err := wsutil.ReadServerText(c.rw)
			var ce wsutil.ClosedError
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				if ce.Code.IsNotUsed() || ce.Code == 0 {
					t.Fatalf("closed with code %d", ce.Code)
				}
				return
			case errors.As(err, &ne) && ne.Timeout():
				if filled {
					t.Fatalf("no answer and no close for %q", p)
				}
				filled = true
				c.conn.Write(make([]byte, 8<<10))
				continue
			case err != nil:
				return // dropped without a close frame, or reset after a close
			}
			if bytes.Contains(data, []byte(`424242`)) {
				return
			}
		}
	})
	e.pub.User("witness", []byte(`"ok"`))
	if m := witness.next(); m["data"] != "ok" {
		f.Fatalf("witness got %v", m)
	}
}

// FuzzHandshake sends arbitrary upgrade requests. The gateway answers with
// an HTTP status or closes; it never hangs or panics.
func FuzzHandshake(f *testing.F) {
	f.Add("GET /ws?user=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	f.Add("GET /ws?token=%41%4 HTTP/1.1\r\nHost: x\r\nCookie: wsgate_token=\"abc\"; x\r\nAuthorization: bearer  \r\n\r\n")
	f.Add("POST / HTTP/1.0\r\n\r\n")
	f.Add("GET /ws HTTP/1.1\r\nOrigin: https://a.example.org\r\n\r\n")
	e := newEnv(f, func(c *Config) {
		c.Auth = InsecureAuth{}
		c.AllowedOrigins = []string{"https://*.example.org"}
		c.HandshakeTimeout = 200 * time.Millisecond
	})
	addr := strings.TrimSuffix(strings.TrimPrefix(e.url, "ws://"), "/ws")
	f.Fuzz(func(t *testing.T, req string) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go conn.Write([]byte(req))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			resp.Body.Close()
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer to %q", req)
		}
	})
}

func TestAppendUnescaped(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "abc", want: "abc"},
		{in: "a%2Eb", want: "a.b"},
		{in: "a+b", want: "a b"},
		{in: "%zz", want: "%zz"},
		{in: "%4", want: "%4"},
		{in: "%41%42", want: "AB"},
	}
	for _, tt := range tests {
		if got := string(appendUnescaped(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("appendUnescaped(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
