package control

import (
	"errors"
	"time"
)

// Subjects of the control plane, under the gateways' subject prefix
// ("notify" by default). Every gateway subscribes to each request subject
// without a queue group, so one request reaches the whole fleet and every
// gateway answers it (scatter-gather).
const (
	// SubjectPresence is "<prefix>.ctl.presence": PresenceQuery in,
	// GatewayPresence out.
	SubjectPresence = "ctl.presence"
	// SubjectDisconnect is "<prefix>.ctl.disconnect": Disconnect in,
	// GatewayCount out.
	SubjectDisconnect = "ctl.disconnect"
	// SubjectSubscribe is "<prefix>.ctl.subscribe": Subscription in,
	// GatewayCount out.
	SubjectSubscribe = "ctl.subscribe"
	// SubjectUnsubscribe is "<prefix>.ctl.unsubscribe": Subscription in,
	// GatewayCount out.
	SubjectUnsubscribe = "ctl.unsubscribe"
	// SubjectStats is "<prefix>.ctl.stats": an empty body in, GatewayStats
	// out.
	SubjectStats = "ctl.stats"
	// SubjectUpstream is the first part of "<prefix>.up.<channel>", where
	// the gateways publish what clients send up.
	SubjectUpstream = "up"
)

// Headers the gateway stamps on every upstream message. Their values come
// from the connection the message arrived on, never from the client's
// message.
const (
	HeaderUser    = "Wsgate-User"    // the user id the connection authenticated as
	HeaderConn    = "Wsgate-Conn"    // the connection id, as in the client's welcome frame
	HeaderGateway = "Wsgate-Gateway" // the id of the gateway that holds the connection
	// HeaderError, on a service's reply to an upstream request, refuses
	// it: the client gets an error frame with code "rejected" and this
	// header's value as its message.
	HeaderError = "Wsgate-Error"
)

// Disconnect reasons. Each picks the close code the client receives
// (docs/protocol.md): whether it should reconnect, and with what.
const (
	// ReasonLogout: the user logged out. Close code 4005: do not reconnect.
	ReasonLogout = "logout"
	// ReasonRevoked: the user's credentials are revoked. Close code 4006:
	// reconnect only with a new token. The user's tokens issued until now
	// are refused at upgrade until the revocation expires.
	ReasonRevoked = "revoked"
	// ReasonReconnect: the service wants the socket elsewhere or anew
	// (rebalancing, a changed session). Close code 4004: reconnect after
	// the usual backoff.
	ReasonReconnect = "reconnect"
)

// PresenceQuery asks each gateway about one user, or one topic, or, with
// neither, only its totals.
type PresenceQuery struct {
	// User is a user id; the answer lists that user's sockets.
	User string `json:"user,omitempty"`
	// Topic is a topic channel ("topic.team-7"); the answer counts its
	// subscribers.
	Topic string `json:"topic,omitempty"`
}

// Socket is one connection in a presence answer.
type Socket struct {
	// Conn is the connection id, as in its welcome frame.
	Conn string `json:"conn"`
	// Topics are the topic channels the socket has joined.
	Topics []string `json:"topics"`
}

// GatewayPresence is one gateway's answer to a PresenceQuery.
type GatewayPresence struct {
	Gateway string `json:"gateway"`
	// Connections and Users are the gateway's open connections and
	// distinct users.
	Connections int `json:"connections"`
	Users       int `json:"users"`
	// Sockets are the queried user's sockets on this gateway.
	Sockets []Socket `json:"sockets,omitempty"`
	// Subscribers is how many of this gateway's sockets have joined the
	// queried topic.
	Subscribers int `json:"subscribers,omitempty"`
	// Error is set, and the rest empty, when the gateway refused the query.
	Error string `json:"error,omitempty"`
}

// Disconnect closes the sockets of a user, or one socket by id.
type Disconnect struct {
	// User closes every socket of this user id.
	User string `json:"user,omitempty"`
	// Conn closes the socket with this connection id (only on the gateway
	// that holds it). With User too, only if it is that user's.
	Conn string `json:"conn,omitempty"`
	// Reason is ReasonLogout, ReasonRevoked or ReasonReconnect.
	Reason string `json:"reason"`
	// Revocation, with ReasonRevoked, is applied by every gateway before
	// it closes the sockets, so that a reconnect racing the disconnect is
	// refused even before the gateway's copy of the denylist has it.
	Revocation *Revocation `json:"revocation,omitempty"`
}

// Revocation is one entry of the denylist checked at upgrade.
type Revocation struct {
	// User refuses this user's tokens issued at or before Before (tokens
	// without an iat claim, and every connection in development mode,
	// count as issued before).
	User   string    `json:"user,omitempty"`
	Before time.Time `json:"before,omitzero"`
	// TokenID refuses the token with this jti claim.
	TokenID string `json:"token_id,omitempty"`
	// Until is when the entry ends: the expiry of the longest-lived token
	// it refuses. The denylist keeps it that long and no longer.
	Until time.Time `json:"until"`
}

// Subscription adds or removes a topic for every socket of a user.
type Subscription struct {
	User  string `json:"user"`
	Topic string `json:"topic"`
}

// GatewayCount is one gateway's answer to a Disconnect or a Subscription:
// how many sockets it acted on.
type GatewayCount struct {
	Gateway string `json:"gateway"`
	Sockets int    `json:"sockets"`
	// Refused counts the sockets it did not act on (a subscription beyond
	// the socket's limit, or the bus unavailable).
	Refused int    `json:"refused,omitempty"`
	Error   string `json:"error,omitempty"`
}

// GatewayStats is one gateway's answer to a stats request.
type GatewayStats struct {
	Gateway     string  `json:"gateway"`
	Host        string  `json:"host,omitempty"`
	Version     string  `json:"version,omitempty"`
	Connections int     `json:"connections"`
	Users       int     `json:"users"`
	Topics      int     `json:"topics"`
	Uptime      float64 `json:"uptime_seconds"`
	Draining    bool    `json:"draining"`
}

// Gateway is what Serve needs from a gateway: *gateway.Server implements
// it. Each method acts on this gateway's sockets only and must not block on
// the network.
type Gateway interface {
	ID() string
	Presence(q PresenceQuery) GatewayPresence
	Disconnect(d Disconnect) GatewayCount
	Subscribe(s Subscription) GatewayCount
	Unsubscribe(s Subscription) GatewayCount
	Stats() GatewayStats
}

// Errors.
var (
	// ErrNoGateways: no gateway is subscribed to the control subjects
	// (NATS answered "no responders" at once), or none answered before the
	// request's end (the error then says "within <timeout>").
	ErrNoGateways = errors.New("control: no gateway answered")
	// ErrInvalid: a request names no user, an invalid user id or topic,
	// or an unknown reason.
	ErrInvalid = errors.New("control: invalid request")
	// ErrTimeout: an upstream request got no reply in time.
	ErrTimeout = errors.New("control: no reply in time")
	// ErrNoResponders: no service listens on an upstream request's
	// subject.
	ErrNoResponders = errors.New("control: no service listens")
	// ErrNoDenylist: a revocation could not be stored in the denylist's
	// KV bucket (no JetStream, no bucket, a timeout). After a Disconnect it
	// holds only in the memory of the gateways that answered.
	ErrNoDenylist = errors.New("control: revocation not stored in the denylist")
	// ErrClosed: the Upstream was closed before the request's reply came.
	ErrClosed = errors.New("control: closed")
)

// ReplyError is a service's refusal of an upstream request (HeaderError).
type ReplyError struct{ Message string }

// Error returns "control: rejected: " and the service's message.
func (e *ReplyError) Error() string { return "control: rejected: " + e.Message }
