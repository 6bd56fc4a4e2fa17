package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// inflateStd inflates a permessage-deflate message with the standard
// library's reader, as a browser would.
func inflateStd(t testing.TB, msg []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(msg), bytes.NewReader(inflateEnd)))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// Compress frames what a standard client inflates; Inflate reads it back
// and keeps its limit; an incompressible body is left alone.
func TestCompressInflate(t *testing.T) {
	for _, body := range []string{
		strings.Repeat(`{"k":"v"}`, 200),       // 16-bit length
		strings.Repeat("x", 70000),             // 64-bit length before compression
		`{"data":"` + strings.Repeat("é", 300), // multi-byte
	} {
		z := Compress(ws.OpText, []byte(body))
		if z == nil {
			t.Fatalf("a %d-byte compressible body was not compressed", len(body))
		}
		h, hlen, err := ParseHeader(z)
		if err != nil || !h.Fin || !h.Rsv1() || h.OpCode != ws.OpText || h.Masked || hlen+int(h.Length) != len(z) {
			t.Fatalf("header %+v (%d bytes), %v", h, hlen, err)
		}
		msg := z[hlen:]
		if got := inflateStd(t, msg); string(got) != body {
			t.Fatalf("the standard reader changed the message (%d → %d bytes)", len(body), len(got))
		}
		f := GetInflater()
		out, err := f.Inflate(msg, len(body))
		if err != nil || string(out) != body {
			t.Fatalf("Inflate: %v, equal %v", err, string(out) == body)
		}
		if _, err := f.Inflate(msg, len(body)-1); !errors.Is(err, ErrTooBig) {
			t.Fatalf("Inflate past its limit: %v, want ErrTooBig", err)
		}
		f.Recycle()
	}
	random := make([]byte, 300)
	for i := range random {
		random[i] = byte(i*7919 + i*i)
	}
	if z := Compress(ws.OpBinary, random); z != nil && len(z) >= len(random)+2 {
		t.Fatalf("an incompressible %d-byte body came out as a %d-byte frame", len(random), len(z))
	}
}

// A decompression bomb stops at the limit.
func TestInflateBomb(t *testing.T) {
	z := Compress(ws.OpBinary, make([]byte, 10<<20))
	h, hlen, _ := ParseHeader(z)
	f := GetInflater()
	defer f.Recycle()
	if _, err := f.Inflate(z[hlen:hlen+int(h.Length)], 1<<16); !errors.Is(err, ErrTooBig) {
		t.Fatalf("10 MiB of zeros under a 64 KiB limit: %v, want ErrTooBig", err)
	}
	if cap(f.out) > 1<<17+1 {
		t.Fatalf("the bomb grew the buffer to %d bytes", cap(f.out))
	}
}

func TestInflateCorrupt(t *testing.T) {
	f := GetInflater()
	defer f.Recycle()
	if _, err := f.Inflate([]byte{0xff, 0xff, 0xff}, 1024); err == nil || errors.Is(err, ErrTooBig) {
		t.Fatalf("corrupt data: %v, want a decompressor error", err)
	}
}

func TestInflateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	z := Compress(ws.OpText, []byte(strings.Repeat(`{"type":"message","data":"x"}`, 50)))
	_, hlen, _ := ParseHeader(z)
	msg := z[hlen:]
	got := testing.AllocsPerRun(100, func() {
		f := GetInflater()
		if _, err := f.Inflate(msg, 1<<20); err != nil {
			t.Fatal(err)
		}
		f.Recycle()
	})
	if got != 0 {
		t.Errorf("Inflate with a warm pool: %v allocations, want 0", got)
	}
}

func TestWindowBits(t *testing.T) {
	for v, want := range map[string]bool{"8": true, "15": true, `"10"`: true, " 9 ": true, "7": false, "16": false, "": false, "1": false, "08": false, "x": false} {
		if got := WindowBits([]byte(v)); got != want {
			t.Errorf("WindowBits(%q) = %v, want %v", v, got, want)
		}
	}
}

func BenchmarkCompress(b *testing.B) {
	body := []byte(strings.Repeat(`{"type":"message","channel":"broadcast","data":{"k":"v"}}`, 20))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		Compress(ws.OpText, body)
	}
}

func BenchmarkInflate(b *testing.B) {
	body := []byte(strings.Repeat(`{"type":"message","channel":"broadcast","data":{"k":"v"}}`, 20))
	z := Compress(ws.OpText, body)
	_, hlen, _ := ParseHeader(z)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		f := GetInflater()
		if _, err := f.Inflate(z[hlen:], 1<<20); err != nil {
			b.Fatal(err)
		}
		f.Recycle()
	}
}

// deflateRaw compresses p as one permessage-deflate message with the
// flate writer at level, the way another sender might (no threshold, no
// size check), and removes the tail.
func deflateRaw(t testing.TB, p []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	w.Flush()
	out := b.Bytes()
	if !bytes.HasSuffix(out, DeflateTail) {
		t.Fatalf("flush did not end with the empty stored block: % x", out[max(0, len(out)-8):])
	}
	return out[:len(out)-len(DeflateTail)]
}

// FuzzInflate feeds arbitrary bytes to the inflater as a compressed
// message: it must not panic or return more than the limit, and the same
// pooled Inflater must then bring back unchanged what a flate writer
// compressed.
func FuzzInflate(f *testing.F) {
	f.Add(Compress(ws.OpText, []byte(strings.Repeat("ab", 100)))[2:], []byte(nil), 300)
	f.Add([]byte{0x00, 0x00, 0xff, 0xff}, []byte("hello"), 10)
	f.Add([]byte{0xff}, []byte(strings.Repeat("ab", 300)), 4096)
	f.Fuzz(func(t *testing.T, msg, plain []byte, limit int) {
		if limit < 0 || limit > 1<<20 {
			return
		}
		inf := GetInflater()
		defer inf.Recycle()
		if out, err := inf.Inflate(msg, limit); err == nil && len(out) > limit {
			t.Fatalf("%d bytes out under a limit of %d", len(out), limit)
		}
		for _, level := range []int{flate.BestSpeed, flate.BestCompression} {
			out, err := inf.Inflate(deflateRaw(t, plain, level), 1<<20)
			if err != nil || !bytes.Equal(out, plain) {
				t.Fatalf("round trip at level %d: %d bytes, %v; want %d", level, len(out), err, len(plain))
			}
		}
	})
}
