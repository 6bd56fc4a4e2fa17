package engine

import (
	"bytes"

	"github.com/wsgate/wsgate/internal/wire"
)

// With --deflate every client offers permessage-deflate (RFC 7692) the way
// Chromium does, and a connection whose 101 accepts it takes compressed
// (RSV1) message frames. The harness keeps no compression state per
// connection: it accepts the extension only when the server promises
// server_no_context_takeover, so every message inflates on its own, with a
// wire.Inflater taken from its pool for that one message (the gateway's
// own decompressor, which allocates nothing once the pool is warm). A
// server that wants to keep its context across messages fails the
// handshake with "deflate_context_takeover": following it would need a
// 32 KiB window per connection. The client never compresses what it sends
// (pongs and close frames), which the extension allows.

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
		case bytes.EqualFold(name, []byte("server_max_window_bits")) && wire.WindowBits(value):
			k = 2 // the window the server compresses with: inflating takes any
		case bytes.EqualFold(name, []byte("client_max_window_bits")) && wire.WindowBits(value):
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
