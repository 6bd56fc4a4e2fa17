package engine

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// With --deflate every client offers permessage-deflate (RFC 7692) the way
// Chromium does, and a connection whose 101 accepts it takes compressed
// (RSV1) message frames. The harness keeps no compression state per
// connection: it accepts the extension only when the server promises
// server_no_context_takeover, so every message inflates on its own, with a
// decompressor taken from a pool for that one message. A server that wants
// to keep its context across messages fails the handshake with
// "deflate_context_takeover": following it would need a 32 KiB window per
// connection. The client never compresses what it sends (pongs and close
// frames), which the extension allows.
//
// klauspost/compress/flate (in the module graph for the gateway) reuses its
// Huffman tables across Reset, so inflating a message allocates nothing
// once the pool is warm; compress/flate allocates link tables for every
// dynamic block with codes longer than 9 bits.

// deflateOffer is the Sec-WebSocket-Extensions header Chromium sends.
const deflateOffer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

// Why a 101's Sec-WebSocket-Extensions cannot be followed. They are
// handshake failure reasons (Totals.Failures).
const (
	ReasonDeflateTakeover = "deflate_context_takeover" // the server wants to keep its compression context
	ReasonDeflateBad      = "deflate_bad_response"     // an answer a client must refuse (RFC 7692 section 5)
)

// deflateAnswer reads the Sec-WebSocket-Extensions headers of a 101
// response head to an offer of deflateOffer. It reports whether the server
// accepted permessage-deflate, or the failure reason when it answered
// something a client must refuse (RFC 7692 section 5: an extension or a
// parameter that was not offered, a repeated parameter) or something
// wsbench cannot follow (context takeover).
func deflateAnswer(head []byte) (accepted bool, reason string) {
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Extensions")) {
			continue
		}
		for ext := range bytes.SplitSeq(value, []byte(",")) {
			if len(bytes.TrimSpace(ext)) == 0 {
				continue
			}
			if accepted {
				return false, ReasonDeflateBad // a second extension, or deflate twice
			}
			noTakeover, ok := deflateParams(ext)
			if !ok {
				return false, ReasonDeflateBad
			}
			if !noTakeover {
				return false, ReasonDeflateTakeover
			}
			accepted = true
		}
	}
	return accepted, ""
}

// deflateParams checks one extension of the answer: permessage-deflate with
// parameters that answer the offer, each at most once. noTakeover reports
// server_no_context_takeover.
func deflateParams(ext []byte) (noTakeover, ok bool) {
	var seen [4]bool // server_no_context_takeover, client_no_context_takeover, server_max_window_bits, client_max_window_bits
	for i, p := range bytes.Split(ext, []byte(";")) {
		p = bytes.TrimSpace(p)
		if i == 0 {
			if !bytes.EqualFold(p, []byte("permessage-deflate")) {
				return false, false
			}
			continue
		}
		name, value, hasValue := bytes.Cut(p, []byte("="))
		name = bytes.TrimSpace(name)
		var k int
		switch {
		case bytes.EqualFold(name, []byte("server_no_context_takeover")) && !hasValue:
			k = 0
		case bytes.EqualFold(name, []byte("client_no_context_takeover")) && !hasValue:
			k = 1
		case bytes.EqualFold(name, []byte("server_max_window_bits")) && windowBits(value):
			k = 2 // the window the server compresses with: inflating takes any
		case bytes.EqualFold(name, []byte("client_max_window_bits")) && windowBits(value):
			k = 3 // the window for what the client compresses: it compresses nothing
		default:
			return false, false
		}
		if seen[k] {
			return false, false
		}
		seen[k] = true
	}
	return seen[0], true
}

// windowBits reports whether v is a window size parameter value, 8 to 15,
// optionally quoted.
func windowBits(v []byte) bool {
	v = bytes.Trim(bytes.TrimSpace(v), `"`)
	switch len(v) {
	case 1:
		return v[0] >= '8' && v[0] <= '9'
	case 2:
		return v[0] == '1' && v[1] >= '0' && v[1] <= '5'
	}
	return false
}

// inflateEnd follows every compressed message: the empty stored block its
// sender removed (RFC 7692 section 7.2.2) and a final empty stored block,
// so that the decompressor ends at io.EOF instead of waiting for more.
var inflateEnd = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

var errInflateTooBig = errors.New("engine: compressed server message inflates beyond the frame limit")

// inflater is a pooled decompressor with its buffers. A bytes.Reader
// source takes the decompressor's fast path.
type inflater struct {
	in  []byte // the message with inflateEnd appended
	src bytes.Reader
	fr  io.ReadCloser // also a flate.Resetter
	out []byte
}

var inflaters = sync.Pool{New: func() any {
	f := &inflater{in: make([]byte, 0, 4<<10), out: make([]byte, 0, 4<<10)}
	f.fr = flate.NewReader(&f.src)
	return f
}}

// inflaterKeep is the largest buffer an inflater keeps when it goes back to
// the pool.
const inflaterKeep = 256 << 10

func getInflater() *inflater { return inflaters.Get().(*inflater) }

// put returns f to the pool; what inflate returned is invalid from then on.
func (f *inflater) put() {
	if cap(f.in) > inflaterKeep {
		f.in = make([]byte, 0, 4<<10)
	}
	if cap(f.out) > inflaterKeep {
		f.out = make([]byte, 0, 4<<10)
	}
	inflaters.Put(f)
}

// inflate decompresses one permessage-deflate message of at most limit
// bytes. The result aliases f's buffer and is valid until the next inflate
// or put.
func (f *inflater) inflate(msg []byte, limit int) ([]byte, error) {
	f.in = append(append(f.in[:0], msg...), inflateEnd...)
	f.src.Reset(f.in)
	if err := f.fr.(flate.Resetter).Reset(&f.src, nil); err != nil {
		return nil, err
	}
	out := f.out[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				f.out = out[:0]
				return nil, errInflateTooBig
			}
			out = append(out, 0)[:len(out)]
		}
		n, err := f.fr.Read(out[len(out):cap(out)])
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
		return nil, errInflateTooBig
	}
	return out, nil
}
