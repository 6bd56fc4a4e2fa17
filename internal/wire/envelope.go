package wire

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The message envelope: every notification reaches a client as
//
//	{"type":"message","channel":"<channel>","data":<payload>}
//
// and a durable one, which has a position in the stream that stored it, as
//
//	{"type":"message","channel":"<channel>","seq":<seq>,"prev":<prev>,"epoch":<epoch>,"data":<payload>}
//
// byte for byte, in this field order, so a reader may match MessageHead as
// a prefix, and find the position before "data", instead of decoding the
// JSON.
const (
	MessageHead  = `{"type":"message","channel":"`
	messageSeq   = `","seq":`
	messagePrev  = `,"prev":`
	messageEpoch = `,"epoch":`
	messageData  = `","data":`
	messageTail  = `}`
)

// Position is where a durable notification sits in the stream that
// stored it. The zero Position is a volatile notification's: it has none.
type Position struct {
	// Seq is the notification's sequence in the stream, increasing across
	// all channels; 0 for a volatile notification.
	Seq uint64

	// Prev is the sequence of the previous durable notification on the
	// same channel that the stream knew of when it stored this one; 0 when
	// there was none.
	Prev uint64

	// Epoch identifies the stream: its creation time in unix
	// milliseconds. A stream deleted and created again restarts its
	// sequences with a new epoch. 0 means unknown.
	Epoch uint64
}

// Durable reports whether p is a durable notification's position.
func (p Position) Durable() bool { return p.Seq != 0 }

// MessageFrame builds the final, unmasked text frame of a notification on
// channel ch at position pos (see AppendMessage) in one allocation,
// validating the payload once. body, the envelope alone, aliases the
// frame's tail: it is what Compress takes.
func MessageFrame(ch string, payload []byte, pos Position) (frame, body []byte) {
	v := verbatim(payload)
	size := len(MessageHead) + len(ch) + len(messageData) + len(messageTail) + len(payload)
	if pos.Durable() {
		// The keys, the numbers, and no quote before "data".
		size += len(messageSeq) + len(messagePrev) + len(messageEpoch) - 1 +
			digits(pos.Seq) + digits(pos.Prev) + digits(pos.Epoch)
	}
	if !v {
		size += len(payload)/4 + 16 // quotes and the escaping of a few characters
	}
	return Build(ws.OpText, size, func(b []byte) []byte {
		return appendMessage(b, ch, payload, pos, v)
	})
}

// AppendMessage appends the envelope of a notification on channel ch: with
// seq, prev and epoch between channel and data when pos is durable, without
// them otherwise. A payload that is valid JSON in valid UTF-8 is embedded
// verbatim as data; anything else becomes a JSON string (see
// AppendJSONString). ch must be a valid channel name, which needs no
// escaping.
func AppendMessage(b []byte, ch string, payload []byte, pos Position) []byte {
	return appendMessage(b, ch, payload, pos, verbatim(payload))
}

// appendMessage is AppendMessage with the payload's validation done.
func appendMessage(b []byte, ch string, payload []byte, pos Position, verbatim bool) []byte {
	b = append(b, MessageHead...)
	b = append(b, ch...)
	if pos.Durable() {
		b = append(b, messageSeq...)
		b = strconv.AppendUint(b, pos.Seq, 10)
		b = append(b, messagePrev...)
		b = strconv.AppendUint(b, pos.Prev, 10)
		b = append(b, messageEpoch...)
		b = strconv.AppendUint(b, pos.Epoch, 10)
		b = append(b, messageData[1:]...) // no quote closes a number
	} else {
		b = append(b, messageData...)
	}
	if verbatim {
		b = append(b, payload...)
	} else {
		b = AppendJSONString(b, payload)
	}
	return append(b, messageTail...)
}

// digits returns the number of decimal digits of u.
func digits(u uint64) int {
	n := 1
	for ; u >= 10; u /= 10 {
		n++
	}
	return n
}

// verbatim reports whether payload can be embedded as it is. json.Valid
// accepts invalid UTF-8 inside strings; browsers fail the connection on it,
// so such a payload is sent as a (repaired) string.
func verbatim(payload []byte) bool {
	return json.Valid(payload) && utf8.Valid(payload)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaping only what JSON
// requires (RFC 8259 section 7): the quotation mark, the backslash and the
// control characters below U+0020. Unlike encoding/json it leaves <, > and
// & alone, so a text of 1 MiB of "<" stays about 1 MiB instead of 6.
// Each invalid UTF-8 byte becomes the escape \ufffd, as encoding/json
// writes it, so the result is always valid JSON in valid UTF-8.
func AppendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is pending, copied in one append
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
