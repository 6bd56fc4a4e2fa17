package bus

import (
	"bytes"
	"errors"
	"fmt"
)

// The part of the NATS client protocol the subscription connection
// (subconn.go) reads: the operations a server sends to a client that only
// subscribes. Everything here parses bytes from the network and is fuzzed
// (FuzzServerOp).

// maxControlLine bounds a line of the protocol, as the server's own
// MAX_CONTROL_LINE (4 KiB) does: subjects are short, and a server that
// sends more is not a NATS server.
const maxControlLine = 4096

// opKind is a server operation.
type opKind uint8

const (
	opMsg  opKind = iota + 1 // MSG or HMSG: a message follows the line
	opPing                   // PING: answer PONG
	opPong                   // PONG: the oldest PING in flight is answered
	opOK                     // +OK: only in verbose mode, which the connection does not ask for
	opErr                    // -ERR: the server's complaint; it may close the connection after it
	opInfo                   // INFO: the server's description, sent again when the cluster changes
)

// op is one parsed operation line, without its CRLF. Its byte slices
// point into the line and are valid only until the next read.
type op struct {
	kind    opKind
	subject []byte // opMsg
	hdr     int    // opMsg: bytes of headers at the start of the body; 0 for MSG
	size    int    // opMsg: bytes of the body (headers and payload) that follow the line
	arg     []byte // opErr: the message, quotes removed; opInfo: the JSON
}

var errProto = errors.New("bus: nats protocol error")

// parseOp parses one line the server sent, without its CRLF. A body larger
// than maxBody is refused: the server announced its max_payload in INFO.
func parseOp(line []byte, maxBody int) (op, error) {
	verb, rest, _ := bytes.Cut(line, []byte(" "))
	switch {
	case equalFold(verb, "MSG"):
		return parseMsg(line, rest, false, maxBody)
	case equalFold(verb, "HMSG"):
		return parseMsg(line, rest, true, maxBody)
	case equalFold(verb, "PING") && len(rest) == 0:
		return op{kind: opPing}, nil
	case equalFold(verb, "PONG") && len(rest) == 0:
		return op{kind: opPong}, nil
	case equalFold(verb, "+OK") && len(rest) == 0:
		return op{kind: opOK}, nil
	case equalFold(verb, "-ERR"):
		return op{kind: opErr, arg: bytes.Trim(bytes.TrimSpace(rest), "'")}, nil
	case equalFold(verb, "INFO"):
		return op{kind: opInfo, arg: bytes.TrimSpace(rest)}, nil
	}
	return op{}, fmt.Errorf("%w: unknown operation %q", errProto, clip(line))
}

// parseMsg parses the arguments of MSG (subject sid [reply] size) and HMSG
// (subject sid [reply] hdr size). The sid and reply subject are not used:
// the subject names the channel.
func parseMsg(line, rest []byte, headers bool, maxBody int) (op, error) {
	var args [5][]byte
	n := 0
	for f := range bytes.FieldsSeq(rest) {
		if n == len(args) {
			return op{}, fmt.Errorf("%w: too many arguments: %q", errProto, clip(line))
		}
		args[n] = f
		n++
	}
	want := 3 // subject sid size
	if headers {
		want = 4 // subject sid hdr size
	}
	if n != want && n != want+1 { // with a reply subject
		return op{}, fmt.Errorf("%w: %d arguments: %q", errProto, n, clip(line))
	}
	m := op{kind: opMsg, subject: args[0], size: parseSize(args[n-1])}
	if headers {
		m.hdr = parseSize(args[n-2])
	}
	if m.size < 0 || m.hdr < 0 || m.hdr > m.size || m.size > maxBody {
		return op{}, fmt.Errorf("%w: bad sizes (body limit %d): %q", errProto, maxBody, clip(line))
	}
	return m, nil
}

// parseSize parses a decimal size of at most 9 digits (below 1 GB; the
// server's max_payload cannot exceed 64 MiB); -1 if it is not one.
func parseSize(b []byte) int {
	if len(b) == 0 || len(b) > 9 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// equalFold reports whether b is verb in any case: the protocol's
// operation names are case-insensitive.
func equalFold(b []byte, verb string) bool {
	return len(b) == len(verb) && bytes.EqualFold(b, []byte(verb))
}

// clip shortens a line for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
