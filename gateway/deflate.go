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

// deflateAccept is the answer to every accepted offer, built once: the
// upgrade allocates nothing for it.
var deflateAccept = deflateParams.Option()

// negotiate is the handshake's ws.Upgrader.Negotiate callback, called for
// each offered extension in the client's order of preference. The first
// permessage-deflate offer the server can honour is accepted; one asking
// for a smaller server window (compress/flate always uses 32 KiB) or a
// malformed one is declined, not failed: the connection then goes on
// uncompressed, or with a later offer.
func (h *handshake) negotiate(opt httphead.Option) (httphead.Option, error) {
	if h.srv.cfg.DisableCompression || h.deflate || !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
		return httphead.Option{}, nil
	}
	var offer wsflate.Parameters
	if offer.Parse(opt) != nil || offer.ServerMaxWindowBits.Defined() {
		return httphead.Option{}, nil
	}
	h.deflate = true
	return deflateAccept, nil
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
