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

var reasonNames = [numReasons]string{
	ReasonClientClose:     "client_close",
	ReasonPeerGone:        "peer_gone",
	ReasonReadError:       "read_error",
	ReasonWriteError:      "write_error",
	ReasonProtocolError:   "protocol_error",
	ReasonUnsupportedData: "unsupported_data",
	ReasonBadUTF8:         "bad_utf8",
	ReasonTooBig:          "too_big",
	ReasonAuthExpired:     "auth_expired",
	ReasonSlowConsumer:    "slow_consumer",
	ReasonIdleTimeout:     "idle_timeout",
	ReasonShutdown:        "shutdown",
	ReasonBusError:        "bus_error",
	ReasonInternal:        "internal",
	ReasonRateLimited:     "rate_limited",
	ReasonReplaced:        "replaced",
	ReasonBadData:         "bad_data",
}

// String returns the reason's metric label, e.g. "slow_consumer".
func (r CloseReason) String() string {
	if r == 0 || int(r) >= len(reasonNames) {
		return "unknown"
	}
	return reasonNames[r]
}

// Code returns the close code the server sends for r, and false when r
// sends no close frame (the peer is gone, or the socket is unusable).
func (r CloseReason) Code() (ws.StatusCode, bool) {
	switch r {
	case ReasonProtocolError:
		return ws.StatusProtocolError, true
	case ReasonUnsupportedData:
		return ws.StatusUnsupportedData, true
	case ReasonBadUTF8, ReasonBadData:
		return ws.StatusInvalidFramePayloadData, true
	case ReasonTooBig:
		return ws.StatusMessageTooBig, true
	case ReasonAuthExpired, ReasonRateLimited:
		return ws.StatusPolicyViolation, true
	case ReasonReplaced:
		return StatusReplaced, true
	case ReasonIdleTimeout:
		return StatusIdleTimeout, true
	case ReasonShutdown:
		return ws.StatusGoingAway, true
	case ReasonBusError:
		return StatusTryAgainLater, true
	case ReasonInternal:
		return ws.StatusInternalServerError, true
	}
	// ReasonClientClose echoes the client's own code (handled by the reader);
	// ReasonSlowConsumer cannot reach a client whose queue is full.
	return 0, false
}

// closeText is the short reason text sent in the close frame.
func (r CloseReason) closeText() string {
	switch r {
	case ReasonProtocolError:
		return "protocol error"
	case ReasonUnsupportedData:
		return "binary messages are not supported"
	case ReasonBadUTF8:
		return "invalid utf-8"
	case ReasonTooBig:
		return "message too big"
	case ReasonAuthExpired:
		return "token expired"
	case ReasonIdleTimeout:
		return "idle timeout"
	case ReasonShutdown:
		return "server going away"
	case ReasonBusError:
		return "try again later"
	case ReasonRateLimited:
		return "rate limit exceeded"
	case ReasonReplaced:
		return "replaced by a newer connection"
	case ReasonBadData:
		return "invalid compressed data"
	}
	return ""
}
