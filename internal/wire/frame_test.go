package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Every length class encodes as gobwas/ws reads it, masked or not, and
// ParseHeader reads it back.
func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte{'x'}, n)
		for _, masked := range []bool{false, true} {
			var frame []byte
			if masked {
				frame = AppendMaskedFrame(nil, ws.OpBinary, p, [4]byte{1, 2, 3, 4})
			} else {
				frame = AppendFrame(nil, ws.OpBinary, p)
			}
			want, err := ws.ReadHeader(bytes.NewReader(frame))
			if err != nil {
				t.Fatalf("n=%d masked=%v: gobwas reads %v", n, masked, err)
			}
			h, hlen, err := ParseHeader(frame)
			if err != nil || h != want {
				t.Fatalf("n=%d masked=%v: ParseHeader = %+v, %v; want %+v", n, masked, h, err, want)
			}
			if hlen+n != len(frame) {
				t.Fatalf("n=%d: header %d + payload %d != frame %d", n, hlen, n, len(frame))
			}
			if got := frame[hlen:]; masked {
				ws.Cipher(got, h.Mask, 0)
			}
			if !bytes.Equal(frame[hlen:], p) {
				t.Fatalf("n=%d masked=%v: payload changed", n, masked)
			}
			for cut := range hlen {
				if _, _, err := ParseHeader(frame[:cut]); !errors.Is(err, ErrIncomplete) {
					t.Fatalf("n=%d: %d of %d header bytes: %v, want ErrIncomplete", n, cut, hlen, err)
				}
			}
		}
	}
}

// A client's masked frame is what a server-side reader decodes.
func TestMaskedFrameReadByServer(t *testing.T) {
	frame := AppendMaskedFrame(nil, ws.OpText, []byte("hello"), [4]byte{0xde, 0xad, 0xbe, 0xef})
	got, op, err := wsutil.ReadClientData(rw{bytes.NewReader(frame)})
	if err != nil || op != ws.OpText || string(got) != "hello" {
		t.Fatalf("ReadClientData = %q, %v, %v", got, op, err)
	}
}

func TestParseHeaderLengthMSB(t *testing.T) {
	p := []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}
	if _, _, err := ParseHeader(p); !errors.Is(err, ws.ErrHeaderLengthMSB) {
		t.Fatalf("err = %v, want ErrHeaderLengthMSB", err)
	}
}

// Build puts the header right in front of the body, whose length it did
// not know in advance, and body aliases the frame.
func TestBuild(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65536} {
		text := strings.Repeat("y", n)
		frame, body := Build(ws.OpText, n, func(b []byte) []byte { return append(b, text...) })
		got, err := wsutil.ReadServerText(rw{bytes.NewReader(frame)})
		if err != nil || string(got) != text {
			t.Fatalf("n=%d: read back %d bytes, %v", n, len(got), err)
		}
		if string(body) != text || n > 0 && &body[0] != &frame[len(frame)-n] {
			t.Fatalf("n=%d: body does not alias the frame's tail", n)
		}
	}
}

func TestMessageFrameAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	payload := []byte(`{"text":"hello"}`)
	for _, pos := range []Position{{}, {Seq: 7, Prev: 5, Epoch: 1764650000000}} {
		got := testing.AllocsPerRun(100, func() {
			MessageFrame("user.42", payload, pos)
		})
		if got != 1 {
			t.Errorf("MessageFrame at %+v: %v allocations, want 1 (the frame)", pos, got)
		}
	}
}

func BenchmarkParseHeader(b *testing.B) {
	frame := AppendMaskedFrame(nil, ws.OpText, make([]byte, 300), [4]byte{1, 2, 3, 4})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseHeader(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseHeader checks the slice parser against gobwas/ws's reader. The
// corpus in testdata holds client frames as real clients send them.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4, 'h'})
	f.Add([]byte{0x82, 126, 1, 0})
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		h, n, err := ParseHeader(p)
		r := bytes.NewReader(p)
		want, werr := ws.ReadHeader(r)
		switch {
		case werr == io.EOF || werr == io.ErrUnexpectedEOF:
			// gobwas reads length and mask in one go; ParseHeader may see a
			// bad length before the mask has arrived.
			if err != ErrIncomplete && err != ws.ErrHeaderLengthMSB {
				t.Fatalf("gobwas: incomplete; ParseHeader: %v", err)
			}
		case werr != nil:
			if err == nil {
				t.Fatalf("gobwas: %v; ParseHeader accepted %+v", werr, h)
			}
		default:
			if err != nil || h != want || n != len(p)-r.Len() {
				t.Fatalf("ParseHeader = %+v, %d, %v; gobwas = %+v, %d", h, n, err, want, len(p)-r.Len())
			}
		}
	})
}

// rw reads frames from r; wsutil's readers want a writer for control
// replies, which these frames never need.
type rw struct{ *bytes.Reader }

func (rw) Write(p []byte) (int, error) { return len(p), nil }
