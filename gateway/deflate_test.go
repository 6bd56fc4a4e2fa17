package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wire"
)

// deflateClient is the tests' client offering permessage-deflate: it reads
// frames as they come (ReadFrame), so that it sees RSV1 and the compressed
// bytes, and inflates them itself.
type deflateClient struct {
	*client
	ext string // Sec-WebSocket-Extensions of the 101
}

func dialDeflate(t *testing.T, e *env, user, offer string) *deflateClient {
	t.Helper()
	var d ws.Dialer
	if offer != "" {
		opts, ok := httphead.ParseOptions([]byte(offer), nil)
		if !ok {
			t.Fatalf("bad offer %q", offer)
		}
		d.Extensions = opts
	}
	c, err := e.as(t).dial(d, e.url+"?token="+token(t, user, time.Hour, "topic.*"))
	if err != nil {
		t.Fatal(err)
	}
	var ext []string
	for _, o := range c.Extensions {
		s := string(o.Name)
		o.Parameters.ForEach(func(k, v []byte) bool {
			s += "; " + string(k)
			if len(v) > 0 {
				s += "=" + string(v)
			}
			return true
		})
		ext = append(ext, s)
	}
	dc := &deflateClient{client: c, ext: strings.Join(ext, ", ")}
	if m, _ := dc.next(); m["type"] != "welcome" {
		t.Fatalf("first frame %v, want the welcome", m)
	}
	return dc
}

// next reads the next data frame, inflating it when RSV1 is set; it skips
// pings and fails on the server's close frame.
func (c *deflateClient) next() (map[string]any, bool) {
	c.t.Helper()
	for {
		f := readRawFrame(c.t, c.client)
		switch f.op {
		case ws.OpPing:
			continue
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.payload)
			c.t.Fatalf("closed with %d", code)
		}
		p, compressed := f.payload, f.header.Rsv1()
		if compressed {
			p = inflateRaw(c.t, p)
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			c.t.Fatalf("frame %q: %v", p, err)
		}
		return m, compressed
	}
}

// send writes msg as one masked text frame, compressed when deflated.
func (c *deflateClient) send(msg []byte, deflated bool) {
	c.t.Helper()
	b0 := byte(bitFin | ws.OpText)
	if deflated {
		msg = deflateRaw(msg)
		b0 |= bitRsv1
	}
	c.write(craft(b0, true, msg))
}

// write writes raw bytes.
func (c *deflateClient) write(p []byte) {
	c.t.Helper()
	if _, err := c.Conn.Write(p); err != nil {
		c.t.Fatal(err)
	}
}

// closeCode reads until the server's close frame.
func (c *deflateClient) closeCode() ws.StatusCode {
	c.t.Helper()
	code, _ := rawCloseCode(c.t, c.client)
	return code
}

func TestDeflateNegotiation(t *testing.T) {
	const accepted = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	for _, tt := range []struct {
		name, offer, want string
		disable           bool
	}{
		{"chromium's offer", "permessage-deflate; client_max_window_bits", accepted, false},
		{"bare offer", "permessage-deflate", accepted, false},
		{"no offer", "", "", false},
		{"a smaller server window we cannot honour", "permessage-deflate; server_max_window_bits=10", "", false},
		{"a second offer after one we decline", "permessage-deflate; server_max_window_bits=9, permessage-deflate", accepted, false},
		{"malformed offer declined, not failed", "permessage-deflate; client_max_window_bits=99", "", false},
		{"unknown extension", "x-webkit-deflate-frame", "", false},
		{"disabled", "permessage-deflate", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.DisableCompression = tt.disable })
			c := dialDeflate(t, e, "u", tt.offer)
			if c.ext != tt.want {
				t.Fatalf("Sec-WebSocket-Extensions = %q, want %q", c.ext, tt.want)
			}
		})
	}
}

// A notification is compressed once for every recipient that negotiated
// deflate and reaches them with RSV1; the others, and messages under the
// threshold, get the plain frame.
func TestDeflateDelivery(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CompressThreshold = 200 })
	z1 := dialDeflate(t, e, "z1", "permessage-deflate")
	z2 := dialDeflate(t, e, "z2", "permessage-deflate; client_max_window_bits")
	plain := dialDeflate(t, e, "p", "")

	big := fmt.Sprintf(`{"text":%q}`, strings.Repeat("compressible ", 100))
	if err := e.pub.Broadcast([]byte(big)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    *deflateClient
		want bool
	}{{z1, true}, {z2, true}, {plain, false}} {
		m, compressed := tc.c.next()
		if compressed != tc.want || m["channel"] != "broadcast" || !strings.Contains(fmt.Sprint(m["data"]), "compressible") {
			t.Fatalf("got %v (compressed %v), want the broadcast (compressed %v)", m, compressed, tc.want)
		}
	}
	if n := counterValue(e.srv.metrics.compressed); n != 1 {
		t.Fatalf("compressed %v times, want once for all recipients", n)
	}
	if err := e.pub.Broadcast([]byte(`{"small":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, compressed := z1.next(); compressed {
		t.Fatal("a message under the threshold was compressed")
	}
}

// Compressed client messages are inflated, bounded by MaxMessageSize, and
// RSV1 where the extension does not allow it fails the connection.
func TestDeflateClientMessages(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageSize = 1024 })
	t.Run("compressed subscribe", func(t *testing.T) {
		c := dialDeflate(t, e, "a", "permessage-deflate")
		c.send([]byte(`{"op":"subscribe","channel":"topic.news","ref":7}`), true)
		if m, _ := c.next(); m["type"] != "subscribed" || m["ref"] != 7.0 {
			t.Fatalf("got %v, want subscribed", m)
		}
	})
	t.Run("fragmented compressed message", func(t *testing.T) {
		c := dialDeflate(t, e, "b", "permessage-deflate")
		z := deflateRaw([]byte(`{"op":"ping","ref":3}`))
		c.write(craft(bitRsv1|byte(ws.OpText), true, z[:4]))
		c.write(craft(bitFin|byte(ws.OpContinuation), true, z[4:]))
		if m, _ := c.next(); m["type"] != "pong" || m["ref"] != 3.0 {
			t.Fatalf("got %v, want pong", m)
		}
	})
	for _, tt := range []struct {
		name string
		send func(c *deflateClient)
		want ws.StatusCode
	}{
		{"bomb: 1 KiB limit, 1 MiB inflated", func(c *deflateClient) {
			c.send(bytes.Repeat([]byte("a"), 1<<20), true)
		}, ws.StatusMessageTooBig},
		{"corrupt data", func(c *deflateClient) {
			c.write(craft(bitFin|bitRsv1|byte(ws.OpText), true, []byte{0xff, 0xff, 0xff, 0xff}))
		}, ws.StatusInvalidFramePayloadData},
		{"RSV1 on a continuation", func(c *deflateClient) {
			c.write(craft(byte(ws.OpText), true, []byte("a")))
			c.write(craft(bitFin|bitRsv1|byte(ws.OpContinuation), true, []byte("b")))
		}, ws.StatusProtocolError},
		{"RSV1 on a ping", func(c *deflateClient) {
			c.write(craft(bitFin|bitRsv1|byte(ws.OpPing), true, nil))
		}, ws.StatusProtocolError},
		{"RSV2", func(c *deflateClient) {
			c.write(craft(bitFin|bitRsv2|byte(ws.OpText), true, []byte("{}")))
		}, ws.StatusProtocolError},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialDeflate(t, e, "c", "permessage-deflate")
			tt.send(c)
			if got := c.closeCode(); got != tt.want {
				t.Fatalf("close code %d, want %d", got, tt.want)
			}
		})
	}
	t.Run("RSV1 without the extension", func(t *testing.T) {
		c := dialDeflate(t, e, "d", "")
		c.send([]byte(`{"op":"ping","ref":1}`), true)
		if got := c.closeCode(); got != ws.StatusProtocolError {
			t.Fatalf("close code %d, want 1002", got)
		}
	})
}

// Broadcasts walk every socket, those still in their handshake included,
// while upgrades set the deflate flag: the race detector watches that the
// flag is read only once the connection is open.
func TestDeflateBroadcastDuringUpgrades(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CompressThreshold = -1 })
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				e.srv.Deliver("broadcast", []byte(`{"n":1}`), wire.Position{})
			}
		}
	}()
	for i := range 50 {
		dialDeflate(t, e, fmt.Sprintf("u%d", i), "permessage-deflate")
	}
	close(stop)
	<-done
}
