package gateway

import (
	"bytes"
	"io"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692) is negotiated when the client offers it
// (browsers always do), and only without context takeover in either
// direction: every message is compressed and decompressed on its own, so an
// idle connection holds no compression state, a flag is all it keeps, and
// one compressed frame of a notification serves every recipient that
// negotiated it (there is only one set of parameters to negotiate).
//
// Messages below Config.CompressThreshold go out uncompressed, which the
// extension allows per message. Client messages are inflated with a pooled
// reader into at most MaxMessageSize bytes: a decompression bomb ends in
// 1009 after MaxMessageSize bytes of work, not more.
//
// klauspost/compress/flate (already in the module graph through
// nats-server) compresses about twice as fast as compress/flate at the same
// ratio, which matters when every broadcast is compressed once.

// deflateParams are the only parameters the server accepts.
var deflateParams = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

// deflateTail ends every compressed message (a sync flush's empty stored
// block); RFC 7692 section 7.2.1 removes it from the frame.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// deflateSlack is how much a compressed frame may exceed MaxMessageSize:
// incompressible data grows by a few bytes per stored block.
const deflateSlack = 64

// deflateAccepted is the answer to every accepted offer, built once and
// shared read-only: negotiating allocates nothing.
var deflateAccepted = []httphead.Option{deflateParams.Option()}

// negotiate is the handshake's extension callback: it gets each
// Sec-WebSocket-Extensions header line and the extensions accepted so far.
// The first permessage-deflate offer the server can honour is accepted. One
// asking for a smaller server window (flate always uses 32 KiB), or a
// malformed one, is declined, not failed: the connection then goes on
// uncompressed, or with a later offer.
//
// It parses the header itself because gobwas/ws's Negotiate path copies
// every offer to the heap (about 500 bytes per upgrade), and browsers
// always offer: that garbage alone raised idle RSS by 0.8 KiB per
// connection (make idle-rss IDLE_FLAGS=-deflate).
func (h *handshake) negotiate(header []byte, accepted []httphead.Option) ([]httphead.Option, bool) {
	if h.srv.cfg.DisableCompression || h.deflate || len(accepted) > 0 {
		return accepted, true
	}
	for len(header) > 0 {
		var offer []byte
		offer, header, _ = bytes.Cut(header, []byte{','})
		if acceptableDeflate(offer) {
			h.deflate = true
			return deflateAccepted, true
		}
	}
	return accepted, true
}

// acceptableDeflate reports whether offer, one extension of a
// Sec-WebSocket-Extensions header ("permessage-deflate; a; b=1"), is a
// well-formed permessage-deflate offer (RFC 7692 section 7.1) that the
// server's parameters satisfy.
func acceptableDeflate(offer []byte) bool {
	name, params, _ := bytes.Cut(offer, []byte{';'})
	if string(bytes.TrimSpace(name)) != wsflate.ExtensionName {
		return false
	}
	var seen [4]bool
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte{';'})
		key, val, hasVal := bytes.Cut(bytes.TrimSpace(p), []byte{'='})
		val = bytes.Trim(bytes.TrimSpace(val), `"`)
		var i int
		switch string(bytes.TrimSpace(key)) {
		case "server_no_context_takeover":
			i = 0
		case "client_no_context_takeover":
			i = 1
		case "client_max_window_bits":
			i = 2
			if hasVal && !windowBits(val) {
				return false
			}
			hasVal = false // a value is allowed here
		case "server_max_window_bits":
			return false // the server's window is fixed at 15: decline
		default:
			return false // unknown parameter
		}
		if seen[i] || hasVal {
			return false // duplicate, or a value where none belongs
		}
		seen[i] = true
	}
	return true
}

// windowBits reports whether v is a window size from 8 to 15.
func windowBits(v []byte) bool {
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

// compressedFrame returns frame (a final, unmasked, unfragmented data
// frame) compressed as one permessage-deflate message, or nil when that
// would not make it smaller.
func compressedFrame(frame []byte) []byte {
	h, hlen, err := parseServerHeader(frame)
	if err != nil {
		return nil
	}
	payload := frame[hlen:]
	var buf bytes.Buffer
	buf.Grow(maxServerHeader + len(payload)/2 + 16)
	buf.Write(make([]byte, maxServerHeader)) // room for the header
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(&buf)
	w.Write(payload)
	w.Flush()
	flateWriters.Put(w)
	out := buf.Bytes()
	out = out[:len(out)-len(deflateTail)] // Flush always ends with the tail
	n := len(out) - maxServerHeader
	if n >= len(payload) {
		return nil
	}
	hdr := appendHeader(make([]byte, 0, maxServerHeader), h.OpCode, n)
	hdr[0] |= rsv1
	start := maxServerHeader - len(hdr)
	copy(out[start:], hdr)
	return out[start:]
}

// rsv1 is the per-message compressed bit in a frame's first byte.
const rsv1 = 0x40

// parseServerHeader reads the opcode and header length of a frame built by
// appendHeader.
func parseServerHeader(frame []byte) (ws.Header, int, error) {
	if len(frame) < 2 {
		return ws.Header{}, 0, errIncomplete
	}
	h := ws.Header{Fin: frame[0]&0x80 != 0, OpCode: ws.OpCode(frame[0] & 0x0f)}
	switch frame[1] & 0x7f {
	case 126:
		return h, 4, nil
	case 127:
		return h, 10, nil
	}
	return h, 2, nil
}

// inflater is a pooled decompressor with its output buffer.
type inflater struct {
	src inflateSource
	fr  io.ReadCloser // a flate reader, also a flate.Resetter
	lr  io.LimitedReader
	out bytes.Buffer
}

// inflateSource reads a compressed message and then the tail its sender
// removed plus a final empty stored block, so that the flate reader ends
// cleanly. It reads msg in place: appending the tail to msg could overwrite
// the next frame in the read buffer.
type inflateSource struct {
	msg  []byte
	tail []byte
}

var inflateEnd = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

func (s *inflateSource) Read(p []byte) (int, error) {
	if len(s.msg) > 0 {
		n := copy(p, s.msg)
		s.msg = s.msg[n:]
		return n, nil
	}
	if len(s.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.tail)
	s.tail = s.tail[n:]
	return n, nil
}

// ReadByte lets the flate reader use the source without a bufio.Reader.
func (s *inflateSource) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := s.Read(b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

var inflaters = sync.Pool{New: func() any {
	f := &inflater{}
	f.fr = flate.NewReader(&f.src)
	return f
}}

// inflate decompresses one client message into a pooled buffer of at most
// limit bytes. tooBig reports a message that inflates beyond limit; err a
// corrupt one. out is valid until f.release.
func inflate(msg []byte, limit int) (f *inflater, out []byte, tooBig bool, err error) {
	f = inflaters.Get().(*inflater)
	f.src = inflateSource{msg: msg, tail: inflateEnd}
	if err := f.fr.(flate.Resetter).Reset(&f.src, nil); err != nil {
		return f, nil, false, err
	}
	f.out.Reset()
	f.lr = io.LimitedReader{R: f.fr, N: int64(limit) + 1}
	if _, err := f.out.ReadFrom(&f.lr); err != nil {
		return f, nil, false, err
	}
	if f.out.Len() > limit {
		return f, nil, true, nil
	}
	return f, f.out.Bytes(), false, nil
}

// release returns f to the pool; a buffer grown past 64 KiB is dropped.
func (f *inflater) release() {
	f.src = inflateSource{}
	if f.out.Cap() > 64<<10 {
		f.out = bytes.Buffer{}
	}
	inflaters.Put(f)
}
