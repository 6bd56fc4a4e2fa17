package gateway

import "github.com/gobwas/ws"

// CloseReason says why a connection ended. It is the log field and the
// metric label of every close, and it picks the close code sent to the
// client.
type CloseReason uint8

// The close reasons. The zero value is not a reason.
const (
	// ReasonClientClose: the client sent a close frame; it gets the same code back.
	ReasonClientClose CloseReason = iota + 1
	// ReasonPeerGone: the socket reached EOF or hung up without a close frame.
	ReasonPeerGone
	// ReasonReadError: reading the socket failed.
	ReasonReadError
	// ReasonWriteError: writing the socket failed.
	ReasonWriteError
	// ReasonProtocolError: the client broke RFC 6455 (unmasked frame, bad
	// opcode, bad close code…). Close code 1002.
	ReasonProtocolError
	// ReasonUnsupportedData: the client sent a binary message; the protocol
	// is JSON text. Close code 1003.
	ReasonUnsupportedData
	// ReasonBadUTF8: a text message or close reason was not valid UTF-8. Close code 1007.
	ReasonBadUTF8
	// ReasonTooBig: a client message exceeded MaxMessageSize. Close code 1009.
	ReasonTooBig
	// ReasonAuthExpired: the token's exp passed while connected. Close code 1008.
	ReasonAuthExpired
	// ReasonSlowConsumer: the write queue went over its limit or did not
	// drain for WriteTimeout. The socket is dropped without a close frame:
	// the client is not reading, so none could reach it (it sees 1006).
	ReasonSlowConsumer
	// ReasonIdleTimeout: nothing was read (not even a pong) for IdleTimeout.
	// Close code 4001.
	ReasonIdleTimeout
	// ReasonShutdown: the gateway is going away. Close code 1001.
	ReasonShutdown
	// ReasonBusError: the bus could not subscribe the connection's channels.
	// Close code 1013 (try again later).
	ReasonBusError
	// ReasonInternal: a bug or an unexpected state. Close code 1011.
	ReasonInternal
	// ReasonRateLimited: the client sent messages faster than
	// Config.MessageRate allows, beyond its burst. Close code 1008.
	ReasonRateLimited
	// ReasonReplaced: the user opened a newer connection beyond
	// Config.MaxUserConns under the CloseOldest policy. Close code 4003.
	ReasonReplaced
	// ReasonBadData: a compressed message did not inflate. Close code 1007.
	ReasonBadData

	numReasons = iota + 1
)

// Close codes wsgate sends that gobwas/ws has no constant for; all close
// codes are listed in docs/protocol.md.
const (
	// StatusTryAgainLater is 1013, registered with IANA after RFC 6455.
	StatusTryAgainLater ws.StatusCode = 1013
	// StatusIdleTimeout is wsgate's 4001 (RFC 6455 section 7.4.2 leaves
	// 4000-4999 to applications): nothing, not even a pong, was read for
	// IdleTimeout.
	StatusIdleTimeout ws.StatusCode = 4001
	// StatusTooManyConns is wsgate's 4002: the user already holds
	// Config.MaxUserConns sockets on this gateway (policy RejectNew). The
	// upgrade succeeds and this close frame follows the 101 at once, so
	// that a browser's WebSocket sees why.
	StatusTooManyConns ws.StatusCode = 4002
	// StatusReplaced is wsgate's 4003: a newer connection of the same user
	// took this one's place (policy CloseOldest). A client should not
	// reconnect on it, or two tabs would take turns forever.
	StatusReplaced ws.StatusCode = 4003
)

// closeReasons holds, for each reason, its metric label and what the
// server sends: the close code and the reason text, or code 0 for no close
// frame.
var closeReasons = [numReasons]struct {
	label string
	code  ws.StatusCode
	text  string
}{
	ReasonClientClose:     {"client_close", 0, ""}, // the reader echoes the client's own code
	ReasonPeerGone:        {"peer_gone", 0, ""},
	ReasonReadError:       {"read_error", 0, ""},
	ReasonWriteError:      {"write_error", 0, ""},
	ReasonProtocolError:   {"protocol_error", ws.StatusProtocolError, "protocol error"},
	ReasonUnsupportedData: {"unsupported_data", ws.StatusUnsupportedData, "binary messages are not supported"},
	ReasonBadUTF8:         {"bad_utf8", ws.StatusInvalidFramePayloadData, "invalid utf-8"},
	ReasonTooBig:          {"too_big", ws.StatusMessageTooBig, "message too big"},
	ReasonAuthExpired:     {"auth_expired", ws.StatusPolicyViolation, "token expired"},
	ReasonSlowConsumer:    {"slow_consumer", 0, ""}, // its queue is full: no frame could reach it
	ReasonIdleTimeout:     {"idle_timeout", StatusIdleTimeout, "idle timeout"},
	ReasonShutdown:        {"shutdown", ws.StatusGoingAway, "server going away"},
	ReasonBusError:        {"bus_error", StatusTryAgainLater, "try again later"},
	ReasonInternal:        {"internal", ws.StatusInternalServerError, ""},
	ReasonRateLimited:     {"rate_limited", ws.StatusPolicyViolation, "rate limit exceeded"},
	ReasonReplaced:        {"replaced", StatusReplaced, "replaced by a newer connection"},
	ReasonBadData:         {"bad_data", ws.StatusInvalidFramePayloadData, "invalid compressed data"},
}

// String returns the reason's metric label, e.g. "slow_consumer".
func (r CloseReason) String() string {
	if r == 0 || int(r) >= len(closeReasons) {
		return "unknown"
	}
	return closeReasons[r].label
}

// reasonFrames are the close frames of the reasons that send one, built
// once and shared like every server frame.
var reasonFrames = func() (frames [numReasons][]byte) {
	for r, cr := range closeReasons {
		if cr.code != 0 {
			frames[r] = closeFrame(cr.code, cr.text)
		}
	}
	return frames
}()

// frame returns the close frame the server sends for r, or nil when it
// sends none.
func (r CloseReason) frame() []byte { return reasonFrames[r] }
