package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/channel"
)

// MaxMsgIDLen is the longest message id a durable publish accepts, in
// bytes.
const MaxMsgIDLen = 256

// errBadRequest marks what the caller sent wrong: a malformed body, a field
// out of its rules. Its message is safe to return to the caller.
var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadRequest}, args...)...)
}

// publishRequest is the body of POST /api/v1/publish.
type publishRequest struct {
	// Channel is "user.<id>", "topic.<name>" or "broadcast".
	Channel string `json:"channel"`
	// Data is the notification payload: any JSON value, sent byte for
	// byte as it appeared in the body.
	Data json.RawMessage `json:"data"`
	// Durable stores the notification in JetStream before it is
	// delivered.
	Durable bool `json:"durable,omitempty"`
	// ID is the message id of a durable publish (deduplication).
	ID string `json:"id,omitempty"`
	// TTL is how long the stream keeps a durable notification, as a Go
	// duration ("10m"), at least 1s.
	TTL string `json:"ttl,omitempty"`

	ttl time.Duration // TTL parsed by validate
}

// decodePublish parses and validates a publish body.
func decodePublish(b []byte) (publishRequest, error) {
	var p publishRequest
	if err := decodeJSON(b, &p); err != nil {
		return publishRequest{}, err
	}
	if err := p.validate(); err != nil {
		return publishRequest{}, err
	}
	return p, nil
}

// validate checks p's fields and sets p.ttl.
func (p *publishRequest) validate() error {
	if _, _, err := splitChannel(p.Channel); err != nil {
		return err
	}
	if p.Data == nil {
		return badRequest("data is required (any JSON value)")
	}
	if !json.Valid(p.Data) {
		return badRequest("data is not a JSON value")
	}
	if !utf8.Valid(p.Data) {
		return badRequest("data is not valid UTF-8")
	}
	if !p.Durable && (p.ID != "" || p.TTL != "") {
		return badRequest("id and ttl need durable:true")
	}
	if p.ID != "" {
		if len(p.ID) > MaxMsgIDLen {
			return badRequest("id is %d bytes, at most %d allowed", len(p.ID), MaxMsgIDLen)
		}
		if !printable(p.ID) {
			return badRequest("id holds a byte that is not printable ASCII")
		}
	}
	p.ttl = 0
	if p.TTL != "" {
		d, err := time.ParseDuration(p.TTL)
		if err != nil {
			return badRequest("ttl %q is not a duration like \"90s\" or \"10m\"", p.TTL)
		}
		if d < time.Second {
			return badRequest("ttl %q is shorter than 1s", p.TTL)
		}
		p.ttl = d
	}
	return nil
}

// splitChannel returns the kind of ch (channel.UserKind, channel.TopicKind
// or channel.Broadcast) and the name a Publisher takes for it: the user id,
// the topic name without "topic.", or "".
func splitChannel(ch string) (kind, name string, err error) {
	switch {
	case ch == "":
		return "", "", badRequest("channel is required: \"user.<id>\", \"topic.<name>\" or \"broadcast\"")
	case ch == channel.Broadcast:
		return channel.Broadcast, "", nil
	case strings.HasPrefix(ch, channel.UserKind+"."):
		id := ch[len(channel.UserKind)+1:]
		if !channel.ValidUser(id) {
			return "", "", badRequest("channel %q: a user id is one token of [A-Za-z0-9_-], at most %d bytes", ch, channel.MaxUserLen)
		}
		return channel.UserKind, id, nil
	case channel.IsTopic(ch):
		return channel.TopicKind, ch[len(channel.TopicKind)+1:], nil
	default:
		return "", "", badRequest("channel %q is not \"user.<id>\", \"topic.<name>\" or \"broadcast\" (dot-separated tokens of [A-Za-z0-9_-], at most %d bytes)", ch, channel.MaxLen)
	}
}

// disconnectRequest is the body of POST /api/v1/disconnect.
type disconnectRequest struct {
	User   string `json:"user,omitempty"`
	Conn   string `json:"conn,omitempty"`
	Reason string `json:"reason"`
}

// decodeDisconnect parses and validates a disconnect body.
func decodeDisconnect(b []byte) (disconnectRequest, error) {
	var d disconnectRequest
	if err := decodeJSON(b, &d); err != nil {
		return disconnectRequest{}, err
	}
	if err := d.validate(); err != nil {
		return disconnectRequest{}, err
	}
	return d, nil
}

func (d *disconnectRequest) validate() error {
	return asBadRequest(control.Disconnect{User: d.User, Conn: d.Conn, Reason: d.Reason}.Validate())
}

// subscriptionRequest is the body of POST /api/v1/subscribe and
// /api/v1/unsubscribe.
type subscriptionRequest struct {
	User  string `json:"user"`
	Topic string `json:"topic"`
}

// decodeSubscription parses and validates a subscribe or unsubscribe body.
func decodeSubscription(b []byte) (subscriptionRequest, error) {
	var s subscriptionRequest
	if err := decodeJSON(b, &s); err != nil {
		return subscriptionRequest{}, err
	}
	if err := s.validate(); err != nil {
		return subscriptionRequest{}, err
	}
	return s, nil
}

func (s *subscriptionRequest) validate() error {
	if s.User == "" || s.Topic == "" {
		return badRequest("user and topic are required")
	}
	return asBadRequest(control.Subscription{User: s.User, Topic: s.Topic}.Validate())
}

// asBadRequest marks an error of control's Validate as the caller's,
// keeping its message.
func asBadRequest(err error) error {
	if err == nil {
		return nil
	}
	return callerError{err}
}

// callerError is an error the caller made, found by another package.
type callerError struct{ err error }

func (e callerError) Error() string        { return e.err.Error() }
func (e callerError) Unwrap() error        { return e.err }
func (e callerError) Is(target error) bool { return target == errBadRequest }

// decodePresence parses the query of GET /api/v1/presence: user or topic,
// not both, each at most once, nothing else.
func decodePresence(q url.Values) (control.PresenceQuery, error) {
	var pq control.PresenceQuery
	for k, v := range q {
		if len(v) != 1 {
			return control.PresenceQuery{}, badRequest("parameter %q given %d times", k, len(v))
		}
		switch k {
		case "user":
			pq.User = v[0]
		case "topic":
			pq.Topic = v[0]
		default:
			return control.PresenceQuery{}, badRequest("unknown parameter %q: only user or topic", k)
		}
	}
	if q.Has("user") && q.Has("topic") {
		return control.PresenceQuery{}, badRequest("give user or topic, not both")
	}
	if q.Has("user") && pq.User == "" || q.Has("topic") && pq.Topic == "" {
		return control.PresenceQuery{}, badRequest("user and topic, when given, may not be empty")
	}
	if err := pq.Validate(); err != nil {
		return control.PresenceQuery{}, asBadRequest(err)
	}
	return pq, nil
}

// decodeJSON decodes the single JSON object in b into v, refusing unknown
// fields, anything but an object, and anything after it but white space.
func decodeJSON(b []byte, v any) error {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return badRequest("empty body: a JSON object is required")
	}
	if b[0] != '{' {
		return badRequest("the body is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON: %s", jsonMessage(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed JSON: data after the object")
	}
	return nil
}

// jsonMessage returns err's message without the "json: " prefix.
func jsonMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %q must be a JSON %s", te.Field, jsonKind(te.Type.Kind()))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of the body"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON type that decodes into a Go kind.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	default:
		return "value of another type"
	}
}

// printable reports whether s holds only printable ASCII, without spaces.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}
