package engine

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wire"
)

// maxFramePayload bounds a server frame: the largest payload (1 MiB, the
// NATS max_payload) plus the message envelope.
const maxFramePayload = 1<<20 + 4096

var (
	errProtocol   = errors.New("engine: protocol error in a server frame")
	errFragmented = errors.New("engine: fragmented server message (wsgate never fragments)")
	errTooBig     = errors.New("engine: server frame too big")
)

// frame is one parsed server frame. payload aliases the read buffer and is
// valid until the buffer is reused.
type frame struct {
	op         ws.OpCode
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
	// The RSV bits and the mask bit fail a frame from its first two bytes,
	// before the rest of its header has arrived.
	op := ws.OpCode(b[0] & 0x0f)
	if rsv := b[0] & 0x70; rsv != 0 {
		if !deflate || rsv != wire.RSV1 || (op != ws.OpText && op != ws.OpBinary) {
			return f, 0, errProtocol
		}
		f.compressed = true
	}
	if b[1]&0x80 != 0 {
		return f, 0, errProtocol
	}
	h, hlen, err := wire.ParseHeader(b)
	switch {
	case errors.Is(err, wire.ErrIncomplete):
		return f, 0, nil
	case err != nil: // a 64-bit length with its top bit set
		return f, 0, errProtocol
	}
	switch op {
	case ws.OpText, ws.OpBinary:
		if !h.Fin {
			return f, 0, errFragmented
		}
	case ws.OpContinuation:
		return f, 0, errFragmented
	case ws.OpClose, ws.OpPing, ws.OpPong:
		if !h.Fin || h.Length > 125 {
			return f, 0, errProtocol
		}
	default:
		return f, 0, errProtocol
	}
	if h.Length > int64(maxPayload) {
		return f, 0, errTooBig
	}
	end := hlen + int(h.Length)
	if len(b) < end {
		return f, 0, nil
	}
	f.op, f.payload = op, b[hlen:end]
	return f, end, nil
}

// appendClientFrame appends a masked final frame, as a client must send
// it (RFC 6455 5.3), with a fresh random mask.
func appendClientFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	return wire.AppendMaskedFrame(dst, op, payload, mask)
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
	kindResumed                   // {"type":"resumed",...}
)

var (
	messageHead    = []byte(wire.MessageHead) // up to the channel name
	typeWelcome    = []byte(`{"type":"welcome"`)
	typeSubscribed = []byte(`{"type":"subscribed"`)
	typeError      = []byte(`{"type":"error"`)
	typeResumed    = []byte(`{"type":"resumed"`)
	keyPrev        = []byte(`"prev":`)
	keyEpoch       = []byte(`"epoch":`)
	recoveredTrue  = []byte(`"recovered":true`)
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

	// pos is a durable message frame's position (the frame's own "seq",
	// "prev" and "epoch", before "data"), or a resumed answer's "seq"
	// and "epoch"; zero for a volatile frame.
	pos position
	// recovered is a resumed answer's "recovered".
	recovered bool
}

// position is a durable frame's place in the stream (docs/protocol.md,
// "Durable message frames").
type position struct {
	seq, prev, epoch uint64
}

// parseMessage reads a gateway text frame. The fast path relies on the
// byte-exact envelope of wire.AppendMessage (docs/protocol.md): it takes
// the channel after wire.MessageHead and looks for "seq": and "ts": after
// "data": without decoding the JSON (a durable frame's own "seq", the
// stream's, comes before "data" and is not the payload's). Anything else (other field order,
// spaces, a different server) falls back to encoding/json.
func parseMessage(p []byte) message {
	switch {
	case bytes.HasPrefix(p, messageHead):
		m := message{kind: kindMessage}
		rest := p[len(messageHead):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			m.channel = rest[:j]
			rest = rest[j:]
		}
		if i := bytes.Index(rest, keyData); i >= 0 {
			if head := rest[:i]; len(head) > 3 { // more than `",`: a durable frame's position
				m.pos = positionIn(head)
			}
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
	case bytes.HasPrefix(p, typeResumed):
		return message{kind: kindResumed, pos: positionIn(p), recovered: bytes.Contains(p, recoveredTrue)}
	}
	return parseMessageJSON(p)
}

// positionIn reads "seq", "prev" and "epoch" in b, a frame's envelope
// without its data; a missing one is 0.
func positionIn(b []byte) position {
	var pos position
	if v, ok := numberAfter(b, keySeq); ok {
		pos.seq = uint64(v)
	}
	if v, ok := numberAfter(b, keyPrev); ok {
		pos.prev = uint64(v)
	}
	if v, ok := numberAfter(b, keyEpoch); ok {
		pos.epoch = uint64(v)
	}
	return pos
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
		Type      string          `json:"type"`
		Channel   *string         `json:"channel"`
		Seq       uint64          `json:"seq"`
		Prev      uint64          `json:"prev"`
		Epoch     uint64          `json:"epoch"`
		Recovered bool            `json:"recovered"`
		Data      json.RawMessage `json:"data"`
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
	case "resumed":
		return message{kind: kindResumed, pos: position{seq: env.Seq, epoch: env.Epoch}, recovered: env.Recovered}
	case "message":
	default:
		return message{}
	}
	m := message{kind: kindMessage, pos: position{seq: env.Seq, prev: env.Prev, epoch: env.Epoch}}
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
