package wire

import (
	"encoding/binary"
	"errors"

	"github.com/gobwas/ws"
)

// MaxServerHeader is the largest header of an unmasked frame: two bytes and
// a 64-bit length.
const MaxServerHeader = 10

// RSV1 is the bit of a frame's first byte that marks a message compressed
// with permessage-deflate (RFC 7692 section 6).
const RSV1 = 0x40

// ErrIncomplete is returned by ParseHeader when the bytes hold only part of
// a header.
var ErrIncomplete = errors.New("wire: incomplete frame header")

// HeaderLen is the length of the header of an unmasked frame carrying n
// payload bytes: 2, 4 or 10.
func HeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return MaxServerHeader
	}
}

// AppendHeader appends the header of a final, unmasked frame of op carrying
// n payload bytes (RFC 6455 section 5.2), as a server sends it.
func AppendHeader(b []byte, op ws.OpCode, n int) []byte {
	return appendLength(append(b, 0x80|byte(op)), 0, n)
}

// AppendFrame appends a final, unmasked frame of op with payload p.
func AppendFrame(b []byte, op ws.OpCode, p []byte) []byte {
	return append(AppendHeader(b, op, len(p)), p...)
}

// AppendMaskedFrame appends a final frame of op with payload p masked with
// mask, as a client must send it (RFC 6455 section 5.3).
func AppendMaskedFrame(b []byte, op ws.OpCode, p []byte, mask [4]byte) []byte {
	b = appendLength(append(b, 0x80|byte(op)), 0x80, len(p))
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range p {
		b[start+i] ^= mask[i&3]
	}
	return b
}

// appendLength appends the second header byte (mask bit and length code)
// and the extended length of an n-byte payload.
func appendLength(b []byte, maskBit byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, maskBit|byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, maskBit|127), uint64(n))
	}
}

// Build frames a body written by fill as one final, unmasked frame of op in
// one allocation. size is an upper bound of the body's length, used to size
// the buffer; the header goes in front of the body once its length is
// known. body aliases the tail of frame.
func Build(op ws.OpCode, size int, fill func([]byte) []byte) (frame, body []byte) {
	buf := make([]byte, MaxServerHeader, MaxServerHeader+size)
	buf = fill(buf)
	n := len(buf)
	body = buf[MaxServerHeader:n:n] // full slice expressions: an append to
	var hdr [MaxServerHeader]byte   // either cannot write into the other
	h := AppendHeader(hdr[:0], op, len(body))
	start := MaxServerHeader - len(h)
	copy(buf[start:], h)
	return buf[start:n:n], body
}

// ParseHeader parses the frame header at the start of p and returns it with
// its length in bytes. It returns ErrIncomplete when p holds only part of
// the header, and ws.ErrHeaderLengthMSB for a 64-bit length with its top
// bit set. It does not validate the header otherwise: that is
// ws.CheckHeader's job, or the caller's.
func ParseHeader(p []byte) (h ws.Header, n int, err error) {
	if len(p) < 2 {
		return h, 0, ErrIncomplete
	}
	h.Fin = p[0]&0x80 != 0
	h.Rsv = (p[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(p[0] & 0x0f)
	h.Masked = p[1]&0x80 != 0
	n = 2
	switch l := p[1] & 0x7f; l {
	case 126:
		if len(p) < n+2 {
			return h, 0, ErrIncomplete
		}
		h.Length = int64(binary.BigEndian.Uint16(p[n:]))
		n += 2
	case 127:
		if len(p) < n+8 {
			return h, 0, ErrIncomplete
		}
		u := binary.BigEndian.Uint64(p[n:])
		if u>>63 != 0 {
			return h, 0, ws.ErrHeaderLengthMSB
		}
		h.Length = int64(u)
		n += 8
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(p) < n+4 {
			return h, 0, ErrIncomplete
		}
		copy(h.Mask[:], p[n:n+4])
		n += 4
	}
	return h, n, nil
}
