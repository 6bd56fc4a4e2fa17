package engine

import (
	"bytes"
	"compress/flate"
	"testing"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/bench/internal/payload"
	"github.com/wsgate/wsgate/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deflateMessage compresses p as one permessage-deflate message without
// context takeover, with the standard library (not the decompressor's
// own package), and removes the tail as RFC 7692 7.2.1 says.
func deflateMessage(t testing.TB, p []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out := b.Bytes()
	if !bytes.HasSuffix(out, wire.DeflateTail) {
		t.Fatalf("flush did not end with the empty stored block: % x", out[max(0, len(out)-8):])
	}
	return out[:len(out)-len(wire.DeflateTail)]
}

// json1kMessage is the gateway message of the json1k payload with seq.
func json1kMessage(t testing.TB, seq uint32) []byte {
	t.Helper()
	body, err := payload.Template([]byte(payload.JSON1K))
	if err != nil {
		t.Fatal(err)
	}
	return wire.AppendMessage(nil, "broadcast", payload.AppendTemplate(nil, seq, 1700000000000000000+int64(seq), body), wire.Position{})
}

// serverStream is a real byte stream as wsgate sends it: a welcome, a
// ping, two messages (one with a 16-bit length), a close.
func serverStream() []byte {
	var b []byte
	b = wire.AppendFrame(b, ws.OpText, []byte(`{"type":"welcome","conn":"3f9a1c-1b","user":"u7","ping_interval":25}`))
	b = wire.AppendFrame(b, ws.OpPing, []byte("hi"))
	b = wire.AppendFrame(b, ws.OpText, wire.AppendMessage(nil, "broadcast", payload.Append(nil, 1, 1700000000000000000, 40), wire.Position{}))
	b = wire.AppendFrame(b, ws.OpText, wire.AppendMessage(nil, "broadcast", payload.Append(nil, 2, 1700000000000000001, 300), wire.Position{}))
	b = wire.AppendFrame(b, ws.OpClose, []byte{0x03, 0xe9})
	return b
}

// parseAll parses b fed in chunks of size step, keeping incomplete frames
// as the reader does, and returns the frames' opcodes and payloads.
func parseAll(b []byte, step int) ([]frame, error) {
	var out []frame
	var pending []byte
	for i := 0; i < len(b); i += step {
		pending = append(pending, b[i:min(i+step, len(b))]...)
		for {
			f, n, err := parseFrame(pending, 1<<16, false)
			if err != nil {
				return out, err
			}
			if n == 0 {
				break
			}
			f.payload = append([]byte(nil), f.payload...)
			out = append(out, f)
			pending = pending[n:]
		}
	}
	return out, nil
}
