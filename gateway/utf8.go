package gateway

import "unicode/utf8"

// A text message may reach the server in pieces: fragments, or one frame
// over several reads. utf8Tail validates it piece by piece, so that the
// connection fails (1007) with the first piece after which the text can no
// longer be valid UTF-8, as RFC 6455 section 8.1 allows, rather than once
// the message is complete. All it carries from one piece to the next is
// the start of a code point that a boundary cut: at most 3 bytes, kept in
// the connection's readState, which exists only while a frame or message
// is incomplete. A message that arrives whole is checked whole, with
// utf8.Valid.

// utf8Tail is the state of a text message validated piece by piece: the
// first bytes of a code point the last piece cut. The zero value is the
// start of a message.
type utf8Tail struct {
	b [utf8.UTFMax - 1]byte
	n uint8
}

// feed reports whether p, following the pieces fed before, can still be
// part of valid UTF-8, and keeps the bytes of a code point p leaves cut.
func (t *utf8Tail) feed(p []byte) bool {
	if t.n > 0 {
		// Complete the code point the last piece cut.
		var r [utf8.UTFMax]byte
		k := copy(r[:], t.b[:t.n])
		need := seqLen(r[0])
		m := copy(r[k:need], p)
		p, k = p[m:], k+m
		if k < need {
			t.n = uint8(copy(t.b[:], r[:k]))
			return validPrefix(r[:k])
		}
		if !utf8.Valid(r[:need]) {
			return false
		}
		t.n = 0
	}
	// A code point that p cuts starts at one of its last 3 bytes: the
	// last byte that is not a continuation byte.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-(utf8.UTFMax-1); i-- {
		if p[i]&0xc0 != 0x80 {
			if !utf8.FullRune(p[i:]) {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) || cut < len(p) && !validPrefix(p[cut:]) {
		return false
	}
	t.n = uint8(copy(t.b[:], p[cut:]))
	return true
}

// complete reports whether the text fed so far ends with a whole code
// point.
func (t *utf8Tail) complete() bool { return t.n == 0 }

// seqLen returns the length of the UTF-8 sequence that b starts, or 0 when
// b starts none (a continuation byte, C0, C1, F5-FF).
func seqLen(b byte) int {
	switch {
	case b < 0x80:
		return 1
	case b < 0xc2:
		return 0
	case b < 0xe0:
		return 2
	case b < 0xf0:
		return 3
	case b < 0xf5:
		return 4
	}
	return 0
}

// validPrefix reports whether p, shorter than the sequence its first byte
// starts, can begin a valid encoding. The range of the second byte depends
// on the first (RFC 3629 section 4): no overlong form, no surrogate,
// nothing above U+10FFFF.
func validPrefix(p []byte) bool {
	if n := seqLen(p[0]); n <= len(p) {
		return false // no sequence, or not a prefix
	}
	if len(p) > 1 {
		lo, hi := byte(0x80), byte(0xbf)
		switch p[0] {
		case 0xe0:
			lo = 0xa0
		case 0xed:
			hi = 0x9f
		case 0xf0:
			lo = 0x90
		case 0xf4:
			hi = 0x8f
		}
		if p[1] < lo || p[1] > hi {
			return false
		}
	}
	return len(p) < 3 || p[2] >= 0x80 && p[2] <= 0xbf
}
