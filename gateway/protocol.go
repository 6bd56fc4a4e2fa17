package gateway

import (
	"encoding/json"
	"slices"

	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
)

// clientOp is a client → server message:
// {"op":"subscribe"|"unsubscribe"|"ping","channel":"topic.x","ref":1}, or
// {"op":"resume"|"ack","channel":"user.42","seq":17,"epoch":1764650000000,"ref":2}
// for durable notifications (resume.go, ack.go).
type clientOp struct {
	Op      string `json:"op"`
	Channel string `json:"channel"`
	Ref     int64  `json:"ref"`
	Seq     uint64 `json:"seq"`
	Epoch   uint64 `json:"epoch"`
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
	msgInvalid // not JSON, or an unknown op

	numClientMsgs = iota
)

var clientMsgLabels = [numClientMsgs]string{
	msgPing:        "ping",
	msgSubscribe:   "subscribe",
	msgUnsubscribe: "unsubscribe",
	msgResume:      "resume",
	msgAck:         "ack",
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
)

// handleOp handles one client text message.
func (c *Conn) handleOp(msg []byte) {
	count := &c.srv.metrics.clientMessages
	var op clientOp
	if err := json.Unmarshal(msg, &op); err != nil {
		count[msgInvalid].Inc()
		c.write(errorFrame(0, codeBadRequest, "a message is a JSON object with op, channel and ref (and seq and epoch, non-negative integers)"))
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
	default:
		count[msgInvalid].Inc()
		c.write(errorFrame(op.Ref, codeUnknownOp, "op must be subscribe, unsubscribe, ping, resume or ack"))
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
	id := Identity{Channels: c.channels}
	if !id.mayJoin(name) {
		c.write(errorFrame(ref, codeForbidden, "the token does not allow this channel"))
		return
	}
	c.wmu.Lock()
	n, joined := len(c.topics), slices.Contains(c.topics, name)
	c.wmu.Unlock()
	if joined {
		c.write(replyFrame("subscribed", name, ref))
		return
	}
	if n >= c.srv.cfg.MaxSubscriptions {
		c.write(errorFrame(ref, codeTooMany, "too many subscriptions on this connection"))
		return
	}
	// Interest returns once the bus has the subscription, so the client may
	// rely on everything published after "subscribed". It waits on a pool
	// worker for a NATS round trip, so with the bus down it is not tried.
	if !c.srv.bus.Connected() {
		c.write(errorFrame(ref, codeUnavailable, "the message bus is unavailable; try again"))
		return
	}
	if err := c.srv.bus.Interest(name); err != nil {
		if ok, held := c.srv.busErrs.Allow(); ok {
			c.srv.log.Warn("subscribe topic", zap.String("channel", name), zap.Error(err), zap.Int("suppressed", held))
		}
		c.write(errorFrame(ref, codeUnavailable, "the message bus is unavailable; try again"))
		return
	}
	// The reply is written under wmu with the join, so that no message of
	// the channel reaches the client before "subscribed".
	c.wmu.Lock()
	var err error
	keep := c.state.Load() == stateOpen && !slices.Contains(c.topics, name) && c.srv.hub.join(c, name)
	if keep {
		c.topics = append(c.topics, name)
	}
	if c.state.Load() == stateOpen {
		err = c.writeLocked(replyFrame("subscribed", name, ref), false)
	}
	c.wmu.Unlock()
	if !keep {
		c.srv.bus.DropInterest(name)
	}
	c.closeOnWriteError(err)
}

func (c *Conn) unsubscribe(name string, ref int64) {
	if code, msg := c.checkTopic(name); code != "" {
		c.write(errorFrame(ref, code, msg))
		return
	}
	c.wmu.Lock()
	left := false
	if i := slices.Index(c.topics, name); i >= 0 {
		c.topics = slices.Delete(c.topics, i, i+1)
		left = c.srv.hub.leave(c, name)
		c.cancelReplay(name)
	}
	c.wmu.Unlock()
	if left {
		c.srv.bus.DropInterest(name)
	}
	c.write(replyFrame("unsubscribed", name, ref))
}
