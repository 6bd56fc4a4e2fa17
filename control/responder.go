package control

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/lograte"
)

// ServeConfig configures Serve.
type ServeConfig struct {
	// Prefix is the gateways' subject prefix. Empty means "notify".
	Prefix string
	// Denylist, when set, takes the Revocation of a Disconnect before the
	// Gateway closes the sockets.
	Denylist *Denylist
	// Logger; nil means zap.NewNop().
	Logger *zap.Logger
}

// Responder answers the control requests for one gateway.
//
// Every request is checked like the Client checks it (a service in another
// language may send anything): one that does not decode, or that names an
// invalid user, topic or reason, is answered with Error set ("invalid:
// …") and the Gateway is not called. Requests without a reply subject are
// ignored. The stats request's body is ignored.
type Responder struct {
	nc   *nats.Conn
	g    Gateway
	deny *Denylist
	log  *zap.Logger

	replyErrs lograte.Limiter

	mu   sync.Mutex
	subs []*nats.Subscription // guarded by mu: nil once closed
}

// Serve subscribes to the control subjects on nc and answers them from g
// until Close. It returns once the server has confirmed the subscriptions.
// The subscriptions have no queue group: every gateway answers every
// request.
func Serve(nc *nats.Conn, g Gateway, cfg ServeConfig) (*Responder, error) {
	prefix := cmp.Or(cfg.Prefix, defaultPrefix)
	if !channel.Valid(prefix) {
		return nil, fmt.Errorf("%w: subject prefix %q", ErrInvalid, prefix)
	}
	r := &Responder{nc: nc, g: g, deny: cfg.Denylist, log: cfg.Logger}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	for _, subject := range []string{SubjectPresence, SubjectDisconnect, SubjectSubscribe, SubjectUnsubscribe, SubjectStats} {
		sub, err := nc.Subscribe(prefix+"."+subject, r.handler(subject))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("control: subscribe %s: %w", subject, err)
		}
		r.subs = append(r.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		r.Close()
		return nil, fmt.Errorf("control: confirm subscriptions: %w", err)
	}
	return r, nil
}

// handler returns the message handler of subject.
func (r *Responder) handler(subject string) nats.MsgHandler {
	return func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		data, err := json.Marshal(r.answer(subject, m.Data))
		if err == nil {
			err = m.Respond(data)
		}
		if err != nil {
			if ok, held := r.replyErrs.Allow(); ok {
				r.log.Warn("cannot answer control request", zap.String("subject", m.Subject),
					zap.Error(err), zap.Int("held", held))
			}
		}
	}
}

// answer decodes a request on subject, checks it, and returns the
// Gateway's answer, or one with Error set.
func (r *Responder) answer(subject string, body []byte) any {
	id := r.g.ID()
	switch subject {
	case SubjectPresence:
		var q PresenceQuery
		if bad := decode(body, &q, func() string { return q.check() }); bad != "" {
			return GatewayPresence{Gateway: id, Error: bad}
		}
		return r.g.Presence(q)
	case SubjectDisconnect:
		var d Disconnect
		if bad := decode(body, &d, func() string { return d.check() }); bad != "" {
			return GatewayCount{Gateway: id, Error: bad}
		}
		if d.Revocation != nil && r.deny != nil {
			r.deny.Add(*d.Revocation)
		}
		return r.g.Disconnect(d)
	case SubjectSubscribe, SubjectUnsubscribe:
		var s Subscription
		if bad := decode(body, &s, func() string { return s.check() }); bad != "" {
			return GatewayCount{Gateway: id, Error: bad}
		}
		if subject == SubjectSubscribe {
			return r.g.Subscribe(s)
		}
		return r.g.Unsubscribe(s)
	default:
		return r.g.Stats()
	}
}

// decode unmarshals body into v and checks it; it returns what is wrong as
// "invalid: …", or "".
func decode(body []byte, v any, check func() string) string {
	if err := json.Unmarshal(body, v); err != nil {
		return "invalid: " + err.Error()
	}
	if bad := check(); bad != "" {
		return "invalid: " + bad
	}
	return ""
}

// Close unsubscribes; requests under way are answered. Close is
// idempotent.
func (r *Responder) Close() error {
	r.mu.Lock()
	subs := r.subs
	r.subs = nil
	r.mu.Unlock()
	var errs []error
	for _, s := range subs {
		if err := s.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
