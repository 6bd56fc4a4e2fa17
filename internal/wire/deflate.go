package wire

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// wsgate's permessage-deflate runs without context takeover in either
// direction: every message is compressed and inflated on its own, so an
// idle connection keeps no compression state and one compressed frame of a
// notification serves every recipient that negotiated it.
//
// klauspost/compress/flate (in the module graph through nats-server)
// compresses about twice as fast as compress/flate at the same ratio, and
// reuses its Huffman tables across Reset, so inflating allocates nothing
// once the pool is warm.

// DeflateTail ends every compressed message (a sync flush's empty stored
// block); RFC 7692 section 7.2.1 removes it from the frame, and the
// receiver puts it back before inflating.
var DeflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// inflateEnd follows every compressed message when it is inflated: the
// removed DeflateTail and a final empty stored block, so that the
// decompressor ends at io.EOF instead of waiting for more.
var inflateEnd = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// WindowBits reports whether v, the value of a client_max_window_bits or
// server_max_window_bits parameter (spaces and quotes allowed around it),
// is a window size from 8 to 15 (RFC 7692 section 7.1.2).
func WindowBits(v []byte) bool {
	v = bytes.Trim(bytes.TrimSpace(v), `"`)
	switch len(v) {
	case 1:
		return '8' <= v[0] && v[0] <= '9'
	case 2:
		return v[0] == '1' && '0' <= v[1] && v[1] <= '5'
	}
	return false
}

var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level
	return w
}}

// Compress returns body compressed as one permessage-deflate message in a
// final, unmasked frame of op with RSV1 set, or nil when compressing would
// not make the body smaller.
func Compress(op ws.OpCode, body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(MaxServerHeader + len(body)/2 + 16)
	buf.Write(make([]byte, MaxServerHeader)) // room for the header
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(&buf)
	w.Write(body)
	w.Flush()
	flateWriters.Put(w)
	out := buf.Bytes()
	out = out[:len(out)-len(DeflateTail)] // Flush always ends with the tail
	n := len(out) - MaxServerHeader
	if n >= len(body) {
		return nil
	}
	var hdr [MaxServerHeader]byte
	h := AppendHeader(hdr[:0], op, n)
	h[0] |= RSV1
	start := MaxServerHeader - len(h)
	copy(out[start:], h)
	return out[start:]
}

// ErrTooBig is returned by Inflate for a message that inflates beyond its
// limit.
var ErrTooBig = errors.New("wire: message inflates beyond the limit")

// An Inflater is a pooled decompressor with its buffers. A bytes.Reader
// source takes the decompressor's fast path, so the message is copied in
// with its tail rather than read in place.
type Inflater struct {
	in  []byte // the message with inflateEnd appended
	src bytes.Reader
	fr  io.ReadCloser // also a flate.Resetter
	out []byte
}

// inflaterKeep is the largest buffer an Inflater keeps when it goes back
// to the pool: a rare large message does not pin its memory.
const inflaterKeep = 64 << 10

var inflaters = sync.Pool{New: func() any {
	f := &Inflater{in: make([]byte, 0, 4<<10), out: make([]byte, 0, 4<<10)}
	f.fr = flate.NewReader(&f.src)
	return f
}}

// GetInflater takes an Inflater from the pool.
func GetInflater() *Inflater { return inflaters.Get().(*Inflater) }

// Recycle returns f and its buffers to the pool; what Inflate returned is
// invalid from then on.
func (f *Inflater) Recycle() {
	if cap(f.in) > inflaterKeep {
		f.in = make([]byte, 0, 4<<10)
	}
	if cap(f.out) > inflaterKeep {
		f.out = make([]byte, 0, 4<<10)
	}
	f.src.Reset(nil)
	inflaters.Put(f)
}

// Inflate decompresses one permessage-deflate message (its frame payload,
// without the tail) into at most limit bytes. A message that would inflate
// beyond limit stops there with ErrTooBig, so a decompression bomb costs
// at most limit+1 bytes of output; corrupt data returns the decompressor's error. The
// result aliases f's buffer and is valid until the next Inflate or Recycle.
func (f *Inflater) Inflate(msg []byte, limit int) ([]byte, error) {
	f.in = append(append(f.in[:0], msg...), inflateEnd...)
	f.src.Reset(f.in)
	if err := f.fr.(flate.Resetter).Reset(&f.src, nil); err != nil {
		return nil, err
	}
	out := f.out[:0]
	for {
		if len(out) > limit {
			f.out = out[:0]
			return nil, ErrTooBig
		}
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := f.fr.Read(out[len(out):min(cap(out), limit+1)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			f.out = out[:0]
			return nil, err
		}
	}
	f.out = out[:0]
	if len(out) > limit {
		return nil, ErrTooBig
	}
	return out, nil
}
