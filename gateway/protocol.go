package gateway

import (
	"encoding/json"
	"slices"

	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
)

// clientOp is a client → server message:
// {"op":"subscribe"|"unsubscribe"|"ping","channel":"topic.x","ref":1},
// {"op":"resume"|"ack","channel":"user.42","seq":17,"epoch":1764650000000,"ref":2}
// for durable notifications (resume.go, ack.go), or
// {"op":"publish"|"request","channel":"chat.room-7","data":{…},"ref":3,"timeout":3000}
// for services (upstream.go).
type clientOp struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	Ref     int64           `json:"ref"`
	Seq     uint64          `json:"seq"`
	Epoch   uint64          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
	Timeout int64           `json:"timeout"` // ms
}

// clientMsg is the kind of a client message: the op label of
// wsgate_client_messages_total.
type clientMsg uint8

const (
	msgPing clientMsg = iota
	msgSubscribe
	msgUnsubscribe
	msgResume
	msgAck
	msgPublish
	msgRequest
	msgInvalid // not JSON, or an unknown op

	numClientMsgs = iota
)

var clientMsgLabels = [numClientMsgs]string{
	msgPing:        "ping",
	msgSubscribe:   "subscribe",
	msgUnsubscribe: "unsubscribe",
	msgResume:      "resume",
	msgAck:         "ack",
	msgPublish:     "publish",
	msgRequest:     "request",
	msgInvalid:     "invalid",
}

// String returns the kind's metric label, e.g. "subscribe".
func (k clientMsg) String() string { return clientMsgLabels[k] }

// Error codes of the "error" frame; docs/protocol.md lists them.
const (
	codeBadRequest     = "bad_request"
	codeUnknownOp      = "unknown_op"
	codeInvalidChannel = "invalid_channel"
	codeForbidden      = "forbidden"
	codeTooMany        = "too_many_subscriptions"
	codeUnavailable    = "unavailable"
	codeNotDurable     = "not_durable"
	codeResumePending  = "resume_pending"
	codeStaleEpoch     = "stale_epoch"
	// Upstream (upstream.go).
	codeUpstreamDisabled = "upstream_disabled"
	codeRateLimited      = "rate_limited"
	codeTooManyRequests  = "too_many_requests"
	codeTimeout          = "timeout"
	codeNoResponders     = "no_responders"
	codeRejected         = "rejected"
	codeBadReply         = "bad_reply"
)

// handleOp handles one client text message.
func (c *Conn) handleOp(msg []byte) {
	count := &c.srv.metrics.clientMessages
	var op clientOp
	if err := json.Unmarshal(msg, &op); err != nil {
		count[msgInvalid].Inc()
		c.write(errorFrame(0, codeBadRequest, "a message is a JSON object with op, channel and ref (seq and epoch non-negative integers, data any JSON value, timeout an integer)"))
		return
	}
	switch op.Op {
	case "ping":
		count[msgPing].Inc()
		c.write(replyFrame("pong", "", op.Ref))
	case "subscribe":
		count[msgSubscribe].Inc()
		c.subscribe(op.Channel, op.Ref)
	case "unsubscribe":
		count[msgUnsubscribe].Inc()
		c.unsubscribe(op.Channel, op.Ref)
	case "resume":
		count[msgResume].Inc()
		c.requestResume(op)
	case "ack":
		count[msgAck].Inc()
		c.requestAck(op)
	case "publish":
		count[msgPublish].Inc()
		c.upstream(op, false)
	case "request":
		count[msgRequest].Inc()
		c.upstream(op, true)
	default:
		count[msgInvalid].Inc()
		c.write(errorFrame(op.Ref, codeUnknownOp, "op must be subscribe, unsubscribe, ping, resume, ack, publish or request"))
	}
}

// checkTopic returns the error code and message that refuse name, or "".
func (c *Conn) checkTopic(name string) (code, msg string) {
	switch {
	case !channel.Valid(name):
		return codeInvalidChannel, "a channel is dot-separated tokens of [A-Za-z0-9_-], at most 128 bytes, without wildcards"
	case !channel.IsTopic(name):
		return codeForbidden, "only topic.<name> channels can be subscribed"
	}
	return "", ""
}

func (c *Conn) subscribe(name string, ref int64) {
	if code, msg := c.checkTopic(name); code != "" {
		c.write(errorFrame(ref, code, msg))
		return
	}
	if !matchAny(c.grants.channels, name) {
		c.write(errorFrame(ref, codeForbidden, "the token does not allow this channel"))
		return
	}
	if code, msg := c.join(name, replyFrame("subscribed", name, ref)); code != "" {
		c.write(errorFrame(ref, code, msg))
	}
}

// join adds topic name to c's channels and writes reply, or returns the
// error code and message that refuse it. A connection already in name gets
// reply again. Both the client's subscribe and a service's (control.go)
// come here; the caller has checked what the token allows.
func (c *Conn) join(name string, reply []byte) (code, msg string) {
	c.wmu.Lock()
	n, joined := len(c.topics), slices.Contains(c.topics, name)
	c.wmu.Unlock()
	if joined {
		c.write(reply)
		return "", ""
	}
	if n >= c.srv.cfg.MaxSubscriptions {
		return codeTooMany, "too many subscriptions on this connection"
	}
	// Interest returns once the bus has the subscription, so the client may
	// rely on everything published after the reply. It waits for a NATS
	// round trip, so with the bus down it is not tried.
	if !c.srv.bus.Connected() {
		return codeUnavailable, "the message bus is unavailable; try again"
	}
	if err := c.srv.bus.Interest(name); err != nil {
		if ok, held := c.srv.busErrs.Allow(); ok {
			c.srv.log.Warn("subscribe topic", zap.String("channel", name), zap.Error(err), zap.Int("suppressed", held))
		}
		return codeUnavailable, "the message bus is unavailable; try again"
	}
	// The reply is written under wmu with the join, so that no message of
	// the channel reaches the client before it.
	c.wmu.Lock()
	var err error
	keep := c.state.Load() == stateOpen && !slices.Contains(c.topics, name) && c.srv.hub.join(c, name)
	if keep {
		c.topics = append(c.topics, name)
	}
	if c.state.Load() == stateOpen {
		err = c.writeLocked(reply, false)
	}
	c.wmu.Unlock()
	if !keep {
		c.srv.bus.DropInterest(name)
	}
	c.closeOnWriteError(err)
	return "", ""
}

func (c *Conn) unsubscribe(name string, ref int64) {
	if code, msg := c.checkTopic(name); code != "" {
		c.write(errorFrame(ref, code, msg))
		return
	}
	c.leave(name, nil)
	c.write(replyFrame("unsubscribed", name, ref))
}

// leave removes topic name from c's channels and reports whether c was in
// it; only then does it write reply, when not nil, under wmu with the
// leave.
func (c *Conn) leave(name string, reply []byte) bool {
	c.wmu.Lock()
	left := false
	if i := slices.Index(c.topics, name); i >= 0 {
		c.topics = slices.Delete(c.topics, i, i+1)
		left = c.srv.hub.leave(c, name)
		c.cancelReplay(name)
	}
	var err error
	if left && reply != nil && c.state.Load() == stateOpen {
		err = c.writeLocked(reply, false)
	}
	c.wmu.Unlock()
	if left {
		c.srv.bus.DropInterest(name)
	}
	c.closeOnWriteError(err)
	return left
}
