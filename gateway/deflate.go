package gateway

import (
	"bytes"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"

	"github.com/wsgate/wsgate/internal/wire"
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
// wire.Inflater into at most MaxMessageSize bytes: a decompression bomb ends
// in 1009 after MaxMessageSize bytes of output, not more. Compressing and
// inflating live in internal/wire, shared with the bench clients.

// deflateParams are the only parameters the server accepts.
var deflateParams = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

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
func (u *upgrader) negotiate(header []byte, accepted []httphead.Option) ([]httphead.Option, bool) {
	if u.srv.cfg.DisableCompression || u.deflate || len(accepted) > 0 {
		return accepted, true
	}
	for len(header) > 0 {
		var offer []byte
		offer, header, _ = bytes.Cut(header, []byte{','})
		if acceptableDeflate(offer) {
			u.deflate = true
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
			if hasVal && !wire.WindowBits(val) {
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
