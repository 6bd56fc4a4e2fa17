package gateway

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/wsgate/wsgate/control"
	"github.com/wsgate/wsgate/internal/channel"
)

// Upstream carries what clients send up to services: control.Upstream is
// one. Publish and Request must not block on the network; Request calls
// done exactly once, from another goroutine, with the service's reply or
// an error (control.ErrTimeout, control.ErrNoResponders, a
// *control.ReplyError). The user and conn arguments are the gateway's own
// record of the connection, never the client's word.
type Upstream interface {
	Publish(channel, user, conn string, data []byte) error
	Request(channel, user, conn string, data []byte, timeout time.Duration, done func(reply []byte, err error))
}

// maxUpstreamRequests bounds Config.MaxUpstreamRequests.
const maxUpstreamRequests = 1024

// upstreamSet holds the upstream state of the connections that sent
// upstream ops, outside Conn: most connections never send any, and each
// would pay for the state.
type upstreamSet struct {
	mu sync.Mutex // protects m and every Conn.upstreaming
	m  map[*Conn]*upState
}

// upState is one connection's upstream state.
type upState struct {
	tat      uint32 // UpstreamRate's cell rate state (allowCell)
	requests int    // request ops waiting for their reply
}

// admit applies UpstreamRate to one more upstream op of c at server clock
// now and, for a request, MaxUpstreamRequests; it reports the result that
// refuses the op, or upOK.
func (u *upstreamSet) admit(c *Conn, now uint32, request bool) upstreamResult {
	s := c.srv
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.m[c]
	if st == nil {
		if c.state.Load() != stateOpen {
			return upUnavailable
		}
		if u.m == nil {
			u.m = make(map[*Conn]*upState)
		}
		st = &upState{tat: now}
		u.m[c] = st
		c.upstreaming = true
	}
	if !allowCell(&st.tat, now, s.upInterval, s.upTolerance) {
		return upRateLimited
	}
	if request {
		if st.requests >= s.cfg.MaxUpstreamRequests {
			return upTooMany
		}
		st.requests++
	}
	return upOK
}

// done counts a request of c as answered.
func (u *upstreamSet) done(c *Conn) {
	u.mu.Lock()
	if st := u.m[c]; st != nil {
		st.requests--
	}
	u.mu.Unlock()
}

// forget drops the state of a closed connection.
func (u *upstreamSet) forget(c *Conn) {
	u.mu.Lock()
	if c.upstreaming {
		delete(u.m, c)
		c.upstreaming = false
	}
	u.mu.Unlock()
}

// len returns how many connections have upstream state.
func (u *upstreamSet) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}

// upstreamResult is how an upstream op ended: the result label of
// wsgate_upstream_total.
type upstreamResult uint8

const (
	upOK           upstreamResult = iota
	upRefused                     // disabled, invalid, forbidden, bad request
	upRateLimited                 // over UpstreamRate
	upTooMany                     // over MaxUpstreamRequests
	upUnavailable                 // the bus is down or the publish failed
	upTimeout                     // no reply in time
	upNoResponders                // no service listens
	upRejected                    // the service refused (or replied with no JSON)

	numUpstreamResults = iota
)

var upstreamResultLabels = [numUpstreamResults]string{
	upOK:           "ok",
	upRefused:      "refused",
	upRateLimited:  "rate_limited",
	upTooMany:      "too_many_requests",
	upUnavailable:  "unavailable",
	upTimeout:      "timeout",
	upNoResponders: "no_responders",
	upRejected:     "rejected",
}

// String returns the result's metric label.
func (r upstreamResult) String() string { return upstreamResultLabels[r] }

// upstream handles a publish op, or a request op when request is set: it
// checks the op against the token and the limits, then hands it to the
// Upstream with the connection's user and id.
func (c *Conn) upstream(op clientOp, request bool) {
	s := c.srv
	kind := 0
	if request {
		kind = 1
	}
	count := &s.metrics.upstream[kind]
	refuse := func(r upstreamResult, code, msg string) {
		count[r].Inc()
		c.write(errorFrame(op.Ref, code, msg))
	}
	switch {
	case s.cfg.Upstream == nil:
		refuse(upRefused, codeUpstreamDisabled, "this gateway does not forward client messages")
		return
	case !channel.Valid(op.Channel):
		refuse(upRefused, codeInvalidChannel, "a channel is dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes, without wildcards")
		return
	case !matchAny(c.grants.upstream, op.Channel):
		refuse(upRefused, codeForbidden, "the token does not allow sending on this channel")
		return
	case len(op.Data) == 0:
		refuse(upRefused, codeBadRequest, "data is required: any JSON value")
		return
	case request && op.Ref <= 0:
		refuse(upRefused, codeBadRequest, "a request needs a ref above 0, which its reply carries")
		return
	case op.Timeout < 0:
		refuse(upRefused, codeBadRequest, "timeout is in milliseconds, not negative")
		return
	case !s.bus.Connected():
		refuse(upUnavailable, codeUnavailable, "the message bus is unavailable; try again")
		return
	}
	switch s.upstreams.admit(c, s.clock(), request) {
	case upRateLimited:
		refuse(upRateLimited, codeRateLimited, "too many messages sent upstream; slow down")
		return
	case upTooMany:
		refuse(upTooMany, codeTooManyRequests, "too many requests wait for their reply on this connection")
		return
	case upUnavailable:
		return // closed meanwhile
	}
	conn := s.connID(c.id)
	if !request {
		if err := s.cfg.Upstream.Publish(op.Channel, c.user, conn, op.Data); err != nil {
			refuse(upUnavailable, codeUnavailable, "the message bus is unavailable; try again")
			return
		}
		count[upOK].Inc()
		if op.Ref > 0 {
			c.write(replyFrame("published", op.Channel, op.Ref))
		}
		return
	}
	timeout := s.cfg.UpstreamTimeout
	if op.Timeout > 0 && op.Timeout < timeout.Milliseconds() {
		timeout = time.Duration(op.Timeout) * time.Millisecond
	}
	ch, ref, start := op.Channel, op.Ref, time.Now()
	s.cfg.Upstream.Request(ch, c.user, conn, op.Data, timeout, func(reply []byte, err error) {
		s.upstreams.done(c)
		r, frame := replyResult(ch, ref, reply, err)
		count[r].Inc()
		if r == upOK {
			s.metrics.upstreamSeconds.Observe(time.Since(start).Seconds())
		}
		c.write(frame)
	})
}

// replyResult turns the outcome of a request into its result and the
// frame the client gets: {"type":"reply","channel":…,"ref":…,"data":…},
// or an error frame.
func replyResult(ch string, ref int64, reply []byte, err error) (upstreamResult, []byte) {
	var rejected *control.ReplyError
	switch {
	case errors.As(err, &rejected):
		return upRejected, errorFrame(ref, codeRejected, rejected.Message)
	case errors.Is(err, control.ErrTimeout):
		return upTimeout, errorFrame(ref, codeTimeout, "no reply in time")
	case errors.Is(err, control.ErrNoResponders):
		return upNoResponders, errorFrame(ref, codeNoResponders, "no service listens on this channel")
	case err != nil:
		return upUnavailable, errorFrame(ref, codeUnavailable, "the message bus is unavailable; try again")
	case !json.Valid(reply):
		return upRejected, errorFrame(ref, codeBadReply, "the service's reply is not JSON")
	}
	return upOK, dataFrame("reply", ch, ref, reply)
}
