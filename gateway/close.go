package gateway

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
)

// The last stage. There is one close path, shut: whatever ends a
// connection (the client's close frame, EOF, a read or write error, a
// protocol error, a timer of the sweeper, Shutdown or Close) goes through
// it, and the first caller wins. With a close code the server sends its
// close frame and waits for the client's (closing) until CloseTimeout;
// otherwise the socket goes at once. Either way the connection leaves its
// channels at once, and its socket goes back to the poller (free) last.

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
	// ReasonDisconnected: a service disconnected the socket (reason
	// "reconnect"). Close code 4004: reconnect after the usual backoff.
	ReasonDisconnected
	// ReasonLogout: a service disconnected the user, who logged out.
	// Close code 4005: do not reconnect.
	ReasonLogout
	// ReasonRevoked: a service revoked the user's credentials. Close code
	// 4006: reconnect only with a new token.
	ReasonRevoked

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
	// StatusDisconnected is wsgate's 4004: a service closed the socket and
	// wants the client back, after the usual backoff (rebalancing, a
	// changed session).
	StatusDisconnected ws.StatusCode = 4004
	// StatusLogout is wsgate's 4005: a service closed every socket of the
	// user, who logged out. A client must not reconnect.
	StatusLogout ws.StatusCode = 4005
	// StatusRevoked is wsgate's 4006: a service revoked the user's
	// credentials. The token the client holds is refused from now on; it
	// may reconnect only with a new one.
	StatusRevoked ws.StatusCode = 4006
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
	ReasonDisconnected:    {"disconnected", StatusDisconnected, "disconnected by the server"},
	ReasonLogout:          {"logout", StatusLogout, "logged out"},
	ReasonRevoked:         {"revoked", StatusRevoked, "credentials revoked"},
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

// closeMode says how a connection closes.
type closeMode uint8

const (
	closeDrop      closeMode = iota // no close frame: the peer is gone or unusable
	closeReply                      // send a close frame and drop the socket now
	closeHandshake                  // send a close frame and wait for the client's
)

// close ends the connection for reason r, with the close handshake when r
// has a close code. It is safe from any goroutine, any number of times; the
// first call wins.
func (c *Conn) close(r CloseReason) {
	frame, mode := r.frame(), closeDrop
	if frame != nil {
		mode = closeHandshake
	}
	c.shut(r, frame, mode)
}

// handleClose answers the client's close frame with the same code (RFC 6455
// section 5.5.1) and drops the socket, or fails the connection when the
// frame is malformed.
func (c *Conn) handleClose(p []byte) {
	if c.state.Load() != stateOpen {
		c.finishClose()
		return
	}
	r, code, text := ReasonClientClose, ws.StatusNormalClosure, ""
	switch {
	case len(p) == 1:
		r, code, text = ReasonProtocolError, ws.StatusProtocolError, "bad close frame"
	case len(p) >= 2:
		code = ws.StatusCode(binary.BigEndian.Uint16(p))
		switch {
		case !utf8.Valid(p[2:]):
			r, code, text = ReasonBadUTF8, ws.StatusInvalidFramePayloadData, "invalid utf-8"
		case !validCloseCode(code):
			r, code, text = ReasonProtocolError, ws.StatusProtocolError, "bad close code"
		}
	}
	if !c.shut(r, closeFrame(code, text), closeReply) {
		// Our close frame crossed this one: the server closed after the
		// read task saw the connection open, and this frame is the answer
		// (or the client's own close, sent at the same moment). Both sides
		// have now sent and received a close frame.
		c.finishClose()
	}
}

// validCloseCode reports whether a client may send code in a close frame:
// the codes RFC 6455 defines for sending, those IANA registered since
// (1012-1014), and the 3000-4999 range for libraries and applications.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// shut is the one close path. It leaves every channel, counts and logs the
// reason once, sends the close frame as mode says, and frees the socket
// now or, for closeHandshake, when the client answers or CloseTimeout passes.
// frame is ignored with closeDrop. It reports false when the connection was
// already closing or closed.
func (c *Conn) shut(r CloseReason, frame []byte, mode closeMode) bool {
	c.wmu.Lock()
	switch c.state.Load() {
	case stateOpen:
	case stateHandshake:
		// Not a WebSocket yet: nothing joined, nothing to say.
		c.state.Store(stateClosed)
		c.wmu.Unlock()
		c.free()
		return true
	default:
		c.wmu.Unlock()
		return false
	}
	c.reason = r
	if mode != closeDrop && c.writeCloseLocked(frame) != nil {
		mode = closeDrop
	}
	if mode == closeReply && c.wq != nil {
		// Our answer waits behind a backlog: drop the socket once the
		// queue has flushed (or after CloseTimeout), not before.
		c.peerClosed = true
		mode = closeHandshake
	}
	if mode == closeHandshake {
		c.since.Store(c.srv.clock())
		c.state.Store(stateClosing)
	} else {
		c.state.Store(stateClosed)
	}
	topics := c.topics
	c.topics = nil
	c.endReplays()
	c.wmu.Unlock()

	c.srv.detach(c, topics, r)
	c.srv.upstreams.forget(c)
	if mode != closeHandshake {
		c.free()
	}
	return true
}

// detach removes a connection that stopped being open from its channels and
// drops the bus interest they held.
func (s *Server) detach(c *Conn, topics []string, r CloseReason) {
	if s.hub.leave(c, channel.User(c.user)) {
		s.bus.DropInterest(channel.User(c.user))
	}
	for _, t := range topics {
		if s.hub.leave(c, t) {
			s.bus.DropInterest(t)
		}
	}
	if c.desc != nil {
		s.metrics.connections.Dec()
		s.metrics.closed.Inc()
	}
	s.metrics.closes[r].Inc()
	if r == ReasonSlowConsumer {
		s.metrics.slowConsumers.Inc()
	}
	if ce := s.log.Check(zap.DebugLevel, "connection closed"); ce != nil {
		ce.Write(zap.String("conn", c.srv.connID(c.id)), zap.String("user", c.user), zap.Stringer("reason", r))
	}
}

// finishClose frees a connection that was waiting for the client's close
// frame.
func (c *Conn) finishClose() {
	if c.state.CompareAndSwap(stateClosing, stateClosed) {
		c.free()
	}
}

// free gives back what a closed connection holds: its hub entry, its
// admission places, what waits in its write queue, and its socket, which
// the poller closes once no stale event for its fd can be in flight
// (whatever error it returns). It runs once.
func (c *Conn) free() {
	s := c.srv
	s.hub.removeConn(c)
	s.unadmit(c)
	c.wmu.Lock()
	if c.wq != nil { // what a closed connection left unsent
		s.queuedBytes.Add(-int64(c.wq.bytes))
		c.wq = nil
	}
	c.wmu.Unlock()
	s.poller.CloseSocket(c.desc, c.closer)
}
