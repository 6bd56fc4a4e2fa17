package control

import (
	"fmt"
	"strconv"

	"github.com/wsgate/wsgate/internal/channel"
)

// The checks below are shared by the Client, which refuses a bad request
// before sending it, and the Responder, which refuses one a service in
// another language sent anyway. Each returns what is wrong, or "" when
// nothing is; the Client wraps it in ErrInvalid, the Responder answers it
// as "invalid: <what>".

// Validate returns an error wrapping ErrInvalid that says what makes q
// invalid, or nil. Client.Presence calls it; so can a service (the HTTP
// API does) to refuse a request before it reaches NATS.
func (q PresenceQuery) Validate() error { return invalid(q.check()) }

// Validate is PresenceQuery.Validate for a Subscription.
func (s Subscription) Validate() error { return invalid(s.check()) }

// Validate is PresenceQuery.Validate for a Disconnect.
func (d Disconnect) Validate() error { return invalid(d.check()) }

func invalid(bad string) error {
	if bad == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, bad)
}

// maxTokenIDLen bounds a revocation's TokenID (a jti claim): longer ones
// are refused rather than stored.
const maxTokenIDLen = 256

func checkUser(id string) string {
	if !channel.ValidUser(id) {
		return "user id " + strconv.Quote(id) + " is not one token of [A-Za-z0-9_-] of at most " +
			strconv.Itoa(channel.MaxUserLen) + " bytes"
	}
	return ""
}

func checkTopic(topic string) string {
	if !channel.IsTopic(topic) {
		return "topic " + strconv.Quote(topic) + " is not a topic channel (topic.<name>)"
	}
	return ""
}

func (q PresenceQuery) check() string {
	if q.User != "" {
		if bad := checkUser(q.User); bad != "" {
			return bad
		}
	}
	if q.Topic != "" {
		return checkTopic(q.Topic)
	}
	return ""
}

func (s Subscription) check() string {
	if bad := checkUser(s.User); bad != "" {
		return bad
	}
	return checkTopic(s.Topic)
}

func (d Disconnect) check() string {
	switch d.Reason {
	case ReasonLogout, ReasonRevoked, ReasonReconnect:
	default:
		return "reason " + strconv.Quote(d.Reason) + " is not logout, revoked or reconnect"
	}
	if d.User == "" && d.Conn == "" {
		return "disconnect names neither a user nor a connection"
	}
	if d.User != "" {
		if bad := checkUser(d.User); bad != "" {
			return bad
		}
	}
	if d.Conn != "" && !channel.ValidToken(d.Conn) {
		return "connection id " + strconv.Quote(d.Conn) + " is not one token of [A-Za-z0-9_-]"
	}
	if d.Revocation != nil {
		if d.Reason != ReasonRevoked {
			return "a revocation comes only with reason revoked"
		}
		return d.Revocation.check()
	}
	return ""
}

// check refuses a revocation that refuses nothing; a zero Until is
// refused too (the Client fills it in before it checks).
func (r Revocation) check() string {
	if r.User == "" && r.TokenID == "" {
		return "revocation names neither a user nor a token id"
	}
	if r.User != "" {
		if bad := checkUser(r.User); bad != "" {
			return bad
		}
	}
	if len(r.TokenID) > maxTokenIDLen {
		return "token id longer than " + strconv.Itoa(maxTokenIDLen) + " bytes"
	}
	if r.Until.IsZero() {
		return "revocation without until"
	}
	return ""
}
