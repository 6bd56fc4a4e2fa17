package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/channel"
)

// publishResponse answers a volatile publish.
type publishResponse struct {
	Channel string `json:"channel"`
	Durable bool   `json:"durable"`
}

// durableResponse answers a durable publish: where the stream stored it.
type durableResponse struct {
	Channel   string `json:"channel"`
	Durable   bool   `json:"durable"`
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// publish publishes the body's data on its channel. A volatile publish is
// flushed before the answer, at the cost of one round trip to NATS, so
// that a 200 means the NATS server has the notification (not that anyone
// received it), and a NATS outage is a 503 rather than a message lost in
// the client's reconnect buffer. A durable publish answers once JetStream
// has stored it.
func (h *handler) publish(ctx context.Context, _ *http.Request, body []byte) (any, error) {
	p, err := decodePublish(body)
	if err != nil {
		return nil, err
	}
	kind, name, err := splitChannel(p.Channel)
	if err != nil {
		return nil, err
	}
	if !p.Durable {
		switch kind {
		case channel.UserKind:
			err = h.pub.User(name, p.Data)
		case channel.TopicKind:
			err = h.pub.Topic(name, p.Data)
		default:
			err = h.pub.Broadcast(p.Data)
		}
		if err != nil {
			return nil, err
		}
		if err := h.flush(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			return nil, &apiError{http.StatusServiceUnavailable, codeNATSUnavailable,
				"NATS did not confirm the publish: it may still be delivered once NATS is reachable", err}
		}
		return publishResponse{Channel: p.Channel}, nil
	}
	var opts []bus.DurableOption
	if p.ID != "" {
		opts = append(opts, bus.WithMsgID(p.ID))
	}
	if p.ttl > 0 {
		opts = append(opts, bus.WithTTL(p.ttl))
	}
	var st bus.Stored
	switch kind {
	case channel.UserKind:
		st, err = h.pub.DurableUser(ctx, name, p.Data, opts...)
	case channel.TopicKind:
		st, err = h.pub.DurableTopic(ctx, name, p.Data, opts...)
	default:
		st, err = h.pub.DurableBroadcast(ctx, p.Data, opts...)
	}
	if err != nil {
		return nil, err
	}
	return durableResponse{Channel: p.Channel, Durable: true, Stream: st.Stream, Seq: st.Sequence, Duplicate: st.Duplicate}, nil
}

// flushTimeout bounds the flush of a volatile publish: a round trip to
// NATS takes milliseconds, so a flush that takes seconds means NATS is
// unreachable, and the caller learns it before its own timeout.
const flushTimeout = 2 * time.Second

// flush waits until NATS has processed the publishes so far, at most
// flushTimeout and within ctx.
func (h *handler) flush(ctx context.Context) error {
	timeout := flushTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return context.DeadlineExceeded
	}
	return h.pub.Flush(timeout)
}

// presenceResponse is control.PresenceResult with the number of gateways
// that answered.
type presenceResponse struct {
	control.PresenceResult
	Answered int `json:"answered"`
}

func (h *handler) presence(ctx context.Context, r *http.Request, _ []byte) (any, error) {
	q, err := decodePresence(r.URL.Query())
	if err != nil {
		return nil, err
	}
	res, err := h.ctl.Presence(ctx, q)
	if err != nil {
		return nil, err
	}
	res.Gateways = orEmpty(res.Gateways)
	return presenceResponse{res, len(res.Gateways)}, nil
}

// countResponse is control.CountResult with the number of gateways that
// answered and, for a disconnect whose revocation could not be stored
// fleet-wide, a warning.
type countResponse struct {
	control.CountResult
	Answered int    `json:"answered"`
	Warning  string `json:"warning,omitempty"`
}

// disconnect closes the sockets the body names. When the revocation of a
// "revoked" disconnect could not be stored in the denylist
// (control.ErrNoDenylist: no JetStream, no bucket) but the gateways closed
// the sockets, the answer is 200 with the error as a warning: the
// revocation then holds only in the memory of the gateways that answered,
// until they restart, and retrying would close nothing more.
func (h *handler) disconnect(ctx context.Context, _ *http.Request, body []byte) (any, error) {
	d, err := decodeDisconnect(body)
	if err != nil {
		return nil, err
	}
	res, err := h.ctl.Disconnect(ctx, control.Disconnect{User: d.User, Conn: d.Conn, Reason: d.Reason})
	var warning string
	if err != nil {
		// The client returns the gateways' answers only when the
		// request to the fleet itself succeeded.
		if !errors.Is(err, control.ErrNoDenylist) || len(res.Gateways) == 0 {
			return nil, err
		}
		warning = "the sockets are closed, but the revocation is not stored in the denylist: it holds only until the gateways restart (" + err.Error() + ")"
	}
	res.Gateways = orEmpty(res.Gateways)
	return countResponse{res, len(res.Gateways), warning}, nil
}

func (h *handler) subscribe(ctx context.Context, _ *http.Request, body []byte) (any, error) {
	return h.subscription(ctx, body, h.ctl.Subscribe)
}

func (h *handler) unsubscribe(ctx context.Context, _ *http.Request, body []byte) (any, error) {
	return h.subscription(ctx, body, h.ctl.Unsubscribe)
}

func (h *handler) subscription(ctx context.Context, body []byte, call func(context.Context, control.Subscription) (control.CountResult, error)) (any, error) {
	s, err := decodeSubscription(body)
	if err != nil {
		return nil, err
	}
	res, err := call(ctx, control.Subscription{User: s.User, Topic: s.Topic})
	if err != nil {
		return nil, err
	}
	res.Gateways = orEmpty(res.Gateways)
	return countResponse{CountResult: res, Answered: len(res.Gateways)}, nil
}

// statsResponse is control.StatsResult with the number of gateways that
// answered.
type statsResponse struct {
	control.StatsResult
	Answered int `json:"answered"`
}

func (h *handler) stats(ctx context.Context, _ *http.Request, _ []byte) (any, error) {
	res, err := h.ctl.Stats(ctx)
	if err != nil {
		return nil, err
	}
	res.Gateways = orEmpty(res.Gateways)
	return statsResponse{res, len(res.Gateways)}, nil
}

// orEmpty returns s, or an empty slice for nil, so that an answer says
// "gateways":[] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
