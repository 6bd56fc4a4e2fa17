package engine

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
)

// WebSocket opcodes (RFC 6455 5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// maxFramePayload bounds a server frame: the largest payload (1 MiB, the
// NATS max_payload) plus the message envelope.
const maxFramePayload = 1<<20 + 4096

var (
	errProtocol   = errors.New("engine: protocol error in a server frame")
	errFragmented = errors.New("engine: fragmented server message (wsgate never fragments)")
	errTooBig     = errors.New("engine: server frame too big")
)

// rsv1 is the bit of a frame's first byte that marks a message compressed
// with permessage-deflate (RFC 7692 section 6).
const rsv1 = 0x40

// frame is one parsed server frame. payload aliases the read buffer and is
// valid until the buffer is reused.
type frame struct {
	op         byte
	compressed bool // RSV1: payload is a permessage-deflate message
	payload    []byte
}

// parseFrame parses the server frame at the start of b. It returns n == 0
// and no error when b holds only part of a frame. Server frames are never
// masked (RFC 6455 5.1); a masked frame, RSV bits, a reserved opcode, or a
// control frame that is fragmented or over 125 bytes is errProtocol. Data
// frames must be final: wsgate never fragments, and a client that only
// counts whole messages has no use for fragments (errFragmented). deflate
// says the connection negotiated permessage-deflate: then RSV1 is allowed
// on data frames, and f.compressed reports it; maxPayload bounds the
// compressed payload, not what it inflates to.
func parseFrame(b []byte, maxPayload int, deflate bool) (f frame, n int, err error) {
	if len(b) < 2 {
		return f, 0, nil
	}
	b0, b1 := b[0], b[1]
	fin, op := b0&0x80 != 0, b0&0x0f
	if rsv := b0 & 0x70; rsv != 0 {
		if !deflate || rsv != rsv1 || (op != opText && op != opBinary) {
			return f, 0, errProtocol
		}
		f.compressed = true
	}
	if b1&0x80 != 0 {
		return f, 0, errProtocol
	}
	length, h := uint64(b1&0x7f), 2
	switch length {
	case 126:
		if len(b) < 4 {
			return f, 0, nil
		}
		length, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, 0, nil
		}
		length, h = binary.BigEndian.Uint64(b[2:]), 10
		if length>>63 != 0 {
			return f, 0, errProtocol
		}
	}
	switch op {
	case opText, opBinary:
		if !fin {
			return f, 0, errFragmented
		}
	case opCont:
		return f, 0, errFragmented
	case opClose, opPing, opPong:
		if !fin || length > 125 {
			return f, 0, errProtocol
		}
	default:
		return f, 0, errProtocol
	}
	if length > uint64(maxPayload) {
		return f, 0, errTooBig
	}
	end := h + int(length)
	if len(b) < end {
		return f, 0, nil
	}
	f.op, f.payload = op, b[h:end]
	return f, end, nil
}

// appendServerFrame appends an unmasked final frame, as a server sends it.
func appendServerFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	dst = appendLength(dst, 0, len(payload))
	return append(dst, payload...)
}

// appendClientFrame appends a masked final frame, as a client must send
// it (RFC 6455 5.3), with a fresh random mask.
func appendClientFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	dst = appendLength(dst, 0x80, len(payload))
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= mask[i&3]
	}
	return dst
}

func appendLength(dst []byte, maskBit byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, maskBit|byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, maskBit|126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, maskBit|127), uint64(n))
	}
}

// closeCode returns the status code of a close frame's payload, 1005 when
// it has none.
func closeCode(p []byte) int {
	if len(p) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(p))
}

// msgKind is what a text frame from the gateway is.
type msgKind uint8

const (
	kindOther      msgKind = iota // anything else (pong, error, unknown)
	kindMessage                   // {"type":"message",...}
	kindWelcome                   // {"type":"welcome",...}
	kindSubscribed                // {"type":"subscribed",...}
	kindError                     // {"type":"error",...}
)

var (
	typeMessage    = []byte(`{"type":"message"`)
	typeWelcome    = []byte(`{"type":"welcome"`)
	typeSubscribed = []byte(`{"type":"subscribed"`)
	typeError      = []byte(`{"type":"error"`)
	keyChannel     = []byte(`"channel":"`)
	keyData        = []byte(`"data":`)
	keySeq         = []byte(`"seq":`)
	keyTS          = []byte(`"ts":`)
)

// message is what the harness reads from a text frame.
type message struct {
	kind    msgKind
	channel []byte // aliases the frame; nil when not found
	seq     uint32 // 0 when the payload has none
	ts      int64  // unix nanoseconds of the publish; 0 when none
}

// parseMessage reads a gateway text frame. The fast path relies on the
// byte-exact field order of docs/protocol.md: it looks for "seq": and
// "ts": after "data": without decoding the JSON. Anything else (other
// field order, spaces, a different server) falls back to encoding/json.
func parseMessage(p []byte) message {
	switch {
	case bytes.HasPrefix(p, typeMessage):
		m := message{kind: kindMessage}
		rest := p[len(typeMessage):]
		if i := bytes.Index(rest, keyChannel); i >= 0 {
			ch := rest[i+len(keyChannel):]
			if j := bytes.IndexByte(ch, '"'); j >= 0 {
				m.channel = ch[:j]
				rest = ch[j:]
			}
		}
		if i := bytes.Index(rest, keyData); i >= 0 {
			rest = rest[i+len(keyData):]
			seq, ok1 := numberAfter(rest, keySeq)
			ts, ok2 := numberAfter(rest, keyTS)
			if ok1 && ok2 && m.channel != nil && seq > 0 && seq <= 1<<32-1 {
				m.seq, m.ts = uint32(seq), ts
				return m
			}
		}
		return parseMessageJSON(p)
	case bytes.HasPrefix(p, typeWelcome):
		return message{kind: kindWelcome}
	case bytes.HasPrefix(p, typeSubscribed):
		return message{kind: kindSubscribed}
	case bytes.HasPrefix(p, typeError):
		return message{kind: kindError}
	}
	return parseMessageJSON(p)
}

// numberAfter returns the non-negative integer right after key in b.
func numberAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	var n int64
	digits := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		if n > (1<<63-1)/10-1 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	return n, digits > 0
}

func parseMessageJSON(p []byte) message {
	var env struct {
		Type    string          `json:"type"`
		Channel *string         `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if json.Unmarshal(p, &env) != nil {
		return message{}
	}
	switch env.Type {
	case "welcome":
		return message{kind: kindWelcome}
	case "subscribed":
		return message{kind: kindSubscribed}
	case "error":
		return message{kind: kindError}
	case "message":
	default:
		return message{}
	}
	m := message{kind: kindMessage}
	if env.Channel != nil {
		m.channel = []byte(*env.Channel)
	}
	var data struct {
		Seq json.Number `json:"seq"`
		TS  json.Number `json:"ts"`
	}
	if json.Unmarshal(env.Data, &data) == nil {
		if s, err := strconv.ParseUint(data.Seq.String(), 10, 32); err == nil {
			m.seq = uint32(s)
		}
		if t, err := strconv.ParseInt(data.TS.String(), 10, 64); err == nil {
			m.ts = t
		}
	}
	return m
}

// appendMessageJSON appends the gateway's message envelope around payload,
// byte for byte as wsgate writes it.
func appendMessageJSON(dst []byte, channel string, payload []byte) []byte {
	dst = append(dst, `{"type":"message","channel":"`...)
	dst = append(dst, channel...)
	dst = append(dst, `","data":`...)
	dst = append(dst, payload...)
	return append(dst, '}')
}

// MessageFrame appends the frame wsgate sends for a notification of
// payload on channel: an unmasked text frame of the message envelope. The
// floor server writes it to measure the kernel's cost of a gateway's
// writes.
func MessageFrame(dst []byte, channel string, payload []byte) []byte {
	return appendServerFrame(dst, opText, appendMessageJSON(nil, channel, payload))
}
