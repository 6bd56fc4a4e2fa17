package gateway

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Server frames are unmasked, final, and built once: the same bytes go to
// every recipient of a notification and are never modified afterwards (write
// queues keep references to them).

// maxServerHeader is the largest header of an unmasked frame.
const maxServerHeader = 10

// appendHeader appends the header of a final, unmasked frame of op carrying
// n payload bytes (RFC 6455 section 5.2).
func appendHeader(b []byte, op ws.OpCode, n int) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n < 126:
		return append(b, b0, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, b0, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, b0, 127), uint64(n))
	}
}

// textFrame frames a JSON body built by fill into one allocation. size is an
// upper bound of the body's length used to size the buffer; the header is
// written in front of the body once its length is known.
func textFrame(size int, fill func([]byte) []byte) []byte {
	buf := make([]byte, maxServerHeader, maxServerHeader+size)
	buf = fill(buf)
	n := len(buf) - maxServerHeader
	hdr := appendHeader(make([]byte, 0, maxServerHeader), ws.OpText, n)
	start := maxServerHeader - len(hdr)
	copy(buf[start:], hdr)
	return buf[start:]
}

// messageFrame builds {"type":"message","channel":<ch>,"data":<payload>}.
// A payload that is valid JSON is embedded verbatim; anything else becomes a
// JSON string. ch must be a valid channel name (no escaping needed).
func messageFrame(ch string, payload []byte) []byte {
	const head, mid, tail = `{"type":"message","channel":"`, `","data":`, `}`
	// json.Valid accepts invalid UTF-8 inside strings; browsers fail the
	// connection on it, so such a payload is sent as a (repaired) string.
	verbatim := json.Valid(payload) && utf8.Valid(payload)
	size := len(head) + len(ch) + len(mid) + len(tail) + len(payload)
	if !verbatim {
		size += len(payload)/4 + 16 // room for the quoting of a few characters
	}
	return textFrame(size, func(b []byte) []byte {
		b = append(b, head...)
		b = append(b, ch...)
		b = append(b, mid...)
		if verbatim {
			b = append(b, payload...)
		} else {
			b = appendJSONString(b, payload)
		}
		return append(b, tail...)
	})
}

// welcomeFrame builds the welcome frame. conn and user are tokens of
// [A-Za-z0-9_-] and need no escaping.
func welcomeFrame(conn, user string, pingSeconds int64) []byte {
	return textFrame(80+len(conn)+len(user), func(b []byte) []byte {
		b = append(b, `{"type":"welcome","conn":"`...)
		b = append(b, conn...)
		b = append(b, `","user":"`...)
		b = append(b, user...)
		b = append(b, `","ping_interval":`...)
		b = strconv.AppendInt(b, pingSeconds, 10)
		return append(b, '}')
	})
}

// replyFrame builds {"type":<typ>,"channel":<ch>,"ref":<ref>}, leaving out
// the channel when ch is empty. ch must be a valid channel name.
func replyFrame(typ, ch string, ref int64) []byte {
	return textFrame(64+len(typ)+len(ch), func(b []byte) []byte {
		b = append(b, `{"type":"`...)
		b = append(b, typ...)
		b = append(b, '"')
		if ch != "" {
			b = append(b, `,"channel":"`...)
			b = append(b, ch...)
			b = append(b, '"')
		}
		b = append(b, `,"ref":`...)
		b = strconv.AppendInt(b, ref, 10)
		return append(b, '}')
	})
}

// errorFrame builds {"type":"error","ref":<ref>,"code":<code>,"message":<msg>}.
func errorFrame(ref int64, code, msg string) []byte {
	return textFrame(64+len(code)+2*len(msg), func(b []byte) []byte {
		b = append(b, `{"type":"error","ref":`...)
		b = strconv.AppendInt(b, ref, 10)
		b = append(b, `,"code":"`...)
		b = append(b, code...)
		b = append(b, `","message":`...)
		b = appendJSONString(b, []byte(msg))
		return append(b, '}')
	})
}

// controlFrame builds a control frame (ping, pong, close) with payload p,
// which must be at most 125 bytes. It builds any unfragmented frame: the
// conformance echo uses it for data frames.
func controlFrame(op ws.OpCode, p []byte) []byte {
	b := appendHeader(make([]byte, 0, 2+len(p)), op, len(p))
	return append(b, p...)
}

// closeFrame builds a close frame with code and reason.
func closeFrame(code ws.StatusCode, reason string) []byte {
	return controlFrame(ws.OpClose, ws.NewCloseFrameBody(code, reason))
}

// pingFrame is the server's RFC 6455 ping, shared by every connection.
var pingFrame = controlFrame(ws.OpPing, nil)

// appendJSONString appends s as a JSON string. encoding/json replaces
// invalid UTF-8 with U+FFFD, so the result is always valid JSON.
func appendJSONString(b, s []byte) []byte {
	q, err := json.Marshal(string(s))
	if err != nil { // unreachable: a string always marshals
		return append(b, `""`...)
	}
	return append(b, q...)
}
