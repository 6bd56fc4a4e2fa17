package engine

import (
	"bytes"
	"compress/flate"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/bench/internal/config"
	"github.com/wsgate/wsgate/bench/internal/hist"
	"github.com/wsgate/wsgate/bench/internal/payload"
	"github.com/wsgate/wsgate/internal/wire"
)

func TestDeflateAnswer(t *testing.T) {
	head := func(ext ...string) []byte {
		h := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n"
		for _, e := range ext {
			h += e + "\r\n"
		}
		return []byte(h + "\r\n")
	}
	for _, tc := range []struct {
		name     string
		head     []byte
		accepted bool
		reason   string
	}{
		{"declined", head(), false, ""},
		{"wsgate", head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"), true, ""},
		{"lower case, no spaces", head("sec-websocket-extensions:permessage-deflate;server_no_context_takeover"), true, ""},
		{"window bits", head(`Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits="15"`), true, ""},
		{"context takeover", head("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover"), false, ReasonDeflateTakeover},
		{"bare", head("Sec-WebSocket-Extensions: permessage-deflate"), false, ReasonDeflateTakeover},
		{"not offered", head("Sec-WebSocket-Extensions: x-webkit-deflate-frame"), false, ReasonDeflateBad},
		{"twice in one header", head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover"), false, ReasonDeflateBad},
		{"twice in two headers", head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover", "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover"), false, ReasonDeflateBad},
		{"repeated parameter", head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_no_context_takeover"), false, ReasonDeflateBad},
		{"unknown parameter", head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; level=9"), false, ReasonDeflateBad},
		{"bad window", head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=16"), false, ReasonDeflateBad},
		{"window without value", head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits"), false, ReasonDeflateBad},
		{"takeover with a value", head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover=1"), false, ReasonDeflateBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accepted, reason := deflateAnswer(tc.head)
			if accepted != tc.accepted || reason != tc.reason {
				t.Errorf("got %v %q, want %v %q", accepted, reason, tc.accepted, tc.reason)
			}
		})
	}
}

func TestInflate(t *testing.T) {
	big := bytes.Repeat([]byte(`{"k":"value","n":12345},`), 2000) // 48 KB: the output buffer grows
	for _, tc := range []struct {
		name  string
		p     []byte
		level int
	}{
		{"json1k best speed", json1kMessage(t, 7), flate.BestSpeed},
		{"json1k default", json1kMessage(t, 7), flate.DefaultCompression},
		{"stored", json1kMessage(t, 7), flate.NoCompression},
		{"huffman only", json1kMessage(t, 7), flate.HuffmanOnly},
		{"empty", nil, flate.BestSpeed},
		{"big", big, flate.BestSpeed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := wire.GetInflater()
			defer f.Recycle()
			for range 3 { // the decompressor is reset between messages
				got, err := f.Inflate(deflateMessage(t, tc.p, tc.level), maxFramePayload)
				if err != nil || !bytes.Equal(got, tc.p) {
					t.Fatalf("got %d bytes, err %v; want %d bytes", len(got), err, len(tc.p))
				}
			}
		})
	}
}

func TestInflateErrors(t *testing.T) {
	f := wire.GetInflater()
	defer f.Recycle()
	msg := deflateMessage(t, bytes.Repeat([]byte("a"), 10000), flate.BestSpeed)
	if _, err := f.Inflate(msg, 9999); err != wire.ErrTooBig {
		t.Errorf("over the limit: err %v, want wire.ErrTooBig", err)
	}
	if got, err := f.Inflate(msg, 10000); err != nil || len(got) != 10000 {
		t.Errorf("at the limit: %d bytes, err %v", len(got), err)
	}
	if _, err := f.Inflate([]byte{0xff, 0xff, 0xff}, 1<<16); err == nil {
		t.Error("garbage inflated without an error")
	}
	// A final block inside the message: the decompressor stops there and
	// the rest is ignored; what it returned must still be right.
	p := []byte("hello")
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(p)
	w.Close()
	if got, err := f.Inflate(b.Bytes(), 1<<16); err != nil || string(got) != "hello" {
		t.Errorf("final block: %q, %v", got, err)
	}
}

// TestInflateAllocs holds one inflater (the race detector makes sync.Pool
// drop items on purpose, so the pool is left out).
func TestInflateAllocs(t *testing.T) {
	msg := deflateMessage(t, json1kMessage(t, 3), flate.BestSpeed)
	f := wire.GetInflater()
	defer f.Recycle()
	if _, err := f.Inflate(msg, maxFramePayload); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = f.Inflate(msg, maxFramePayload) }); n != 0 {
		t.Errorf("inflate allocates %v times per message, want 0", n)
	}
}

func BenchmarkInflate(b *testing.B) {
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"json1k", json1kMessage(b, 3)},
		{"pad4k", wire.AppendMessage(nil, "broadcast", payload.Append(nil, 3, 99, 4096), wire.Position{})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			msg := deflateMessage(b, tc.p, flate.BestSpeed)
			frame := wire.AppendFrame(nil, ws.OpText, msg)
			frame[0] |= wire.RSV1
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.p)))
			for b.Loop() {
				f, _, _ := parseFrame(frame, maxFramePayload, true)
				fl := wire.GetInflater()
				p, _ := fl.Inflate(f.payload, maxFramePayload)
				parseMessage(p)
				fl.Recycle()
			}
		})
	}
}

// TestParseTemplatePayload: the fast path reads seq and ts of a template
// payload, which come first.
func TestParseTemplatePayload(t *testing.T) {
	body, err := payload.Template([]byte(payload.JSON1K))
	if err != nil {
		t.Fatal(err)
	}
	p := payload.AppendTemplate(nil, 42, 1700000000123456789, body)
	m := parseMessage(wire.AppendMessage(nil, "broadcast", p, wire.Position{}))
	if m.kind != kindMessage || m.seq != 42 || m.ts != 1700000000123456789 {
		t.Errorf("parsed %+v", m)
	}
}

// TestInflateOnce: with InflateOnce a reader serves a compressed payload
// identical to the previous one from its cache, without allocating; a
// different payload is inflated.
func TestInflateOnce(t *testing.T) {
	e := &Engine{cfg: &config.Config{Scenario: config.ScenarioBroadcast, Deflate: true, InflateOnce: true}, spec: Spec{Workers: 1}}
	e.conns = make([]conn, 1)
	c := &e.conns[0]
	r := &reader{e: e, hist: hist.New()}
	z1 := deflateMessage(t, json1kMessage(t, 1), flate.BestSpeed)
	z2 := deflateMessage(t, json1kMessage(t, 2), flate.BestSpeed)
	if !r.inflateText(c, 0, z1, len(z1)+4, 1) {
		t.Fatal("z1 did not inflate")
	}
	// Poison the cache: a repeat of z1 must be served from it (seq 3), not
	// inflated again (seq 1, a duplicate).
	r.zout = json1kMessage(t, 3)
	if !r.inflateText(c, 0, z1, len(z1)+4, 1) || !r.inflateText(c, 0, z2, len(z2)+4, 1) {
		t.Fatal("a message did not inflate")
	}
	if c.seq.recv != 3 || c.seq.dup != 0 || r.compressed != 3 || r.delivered.Load() != 3 {
		t.Errorf("received %d, duplicates %d, compressed %d, delivered %d; want 3, 0, 3, 3",
			c.seq.recv, c.seq.dup, r.compressed, r.delivered.Load())
	}
	if n := testing.AllocsPerRun(100, func() { r.inflateText(c, 0, z2, len(z2)+4, 1) }); n != 0 {
		t.Errorf("a repeated frame allocates %v times, want 0", n)
	}
	if !bytes.Equal(r.zlast, z2) {
		t.Error("the cache does not hold the last payload inflated")
	}
}
