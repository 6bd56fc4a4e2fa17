package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/internal/channel"
)

// Stored is JetStream's answer to a durable publish.
type Stored struct {
	Stream   string // the stream that stored it, "NOTIFY" by default
	Subject  string // the durable subject, "durable.notify.user.42"
	Sequence uint64 // its sequence in Stream; for a duplicate, the first publish's

	// Duplicate is true when the message id was seen within the stream's
	// duplicate window: nothing was stored again or delivered again, and
	// Sequence is the first publish's.
	Duplicate bool
}

// DurableOption is a per-publish knob of a durable publish.
type DurableOption func(*durableOptions)

type durableOptions struct {
	id  string
	ttl time.Duration
}

// WithMsgID sets the message id (the Nats-Msg-Id header): a publish that
// repeats an id within the stream's duplicate window (2 minutes by
// default) is not stored again, and returns the first one's sequence with
// Stored.Duplicate set. Retry a failed publish with the same id.
func WithMsgID(id string) DurableOption {
	return func(o *durableOptions) { o.id = id }
}

// WithTTL sets how long the stream keeps this notification (the Nats-TTL
// header), at least one second; zero means the stream's own MaxAge.
func WithTTL(ttl time.Duration) DurableOption {
	return func(o *durableOptions) { o.ttl = ttl }
}

// DurableUser stores payload in JetStream for every socket of user id, on
// subject "durable.<prefix>.user.<id>", and waits, within ctx, for the
// stream's ack. Once stored, the stream republishes it on
// "<prefix>.user.<id>", so that connected sockets receive it as they do a
// volatile notification. id follows the rules of User.
func (p *Publisher) DurableUser(ctx context.Context, id string, payload []byte, opts ...DurableOption) (Stored, error) {
	if !channel.ValidUser(id) {
		return Stored{}, fmt.Errorf("%w: user id %q", ErrInvalidName, id)
	}
	return p.publishDurable(ctx, p.durable+"."+channel.User(id), payload, opts)
}

// DurableTopic stores payload for the subscribers of topic name, on
// subject "durable.<prefix>.topic.<name>"; see DurableUser.
func (p *Publisher) DurableTopic(ctx context.Context, name string, payload []byte, opts ...DurableOption) (Stored, error) {
	ch := channel.Topic(name)
	if !channel.Valid(ch) {
		return Stored{}, fmt.Errorf("%w: topic %q", ErrInvalidName, name)
	}
	return p.publishDurable(ctx, p.durable+"."+ch, payload, opts)
}

// DurableBroadcast stores payload for every socket, on subject
// "durable.<prefix>.broadcast"; see DurableUser.
func (p *Publisher) DurableBroadcast(ctx context.Context, payload []byte, opts ...DurableOption) (Stored, error) {
	return p.publishDurable(ctx, p.durable+"."+channel.Broadcast, payload, opts)
}

// publishDurable publishes payload on subject through JetStream and waits
// for the ack. A ctx without a deadline waits at most 5 seconds
// (nats.go's default for JetStream requests).
func (p *Publisher) publishDurable(ctx context.Context, subject string, payload []byte, opts []DurableOption) (Stored, error) {
	if err := cmp.Or(p.err, p.jsErr); err != nil {
		return Stored{}, err
	}
	var o durableOptions
	for _, opt := range opts {
		opt(&o)
	}
	var popts []jetstream.PublishOpt
	if o.id != "" {
		popts = append(popts, jetstream.WithMsgID(o.id))
	}
	if o.ttl < 0 || o.ttl > 0 && o.ttl < time.Second {
		return Stored{}, &opError{"durable publish to " + subject, fmt.Errorf("%w: TTL %v: at least 1s", ErrInvalidConfig, o.ttl)}
	}
	if o.ttl > 0 {
		popts = append(popts, jetstream.WithMsgTTL(o.ttl))
	}
	ack, err := p.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: payload}, popts...)
	if err != nil {
		return Stored{}, &opError{"durable publish to " + subject, p.durableCause(ctx, err)}
	}
	return Stored{Stream: ack.Stream, Subject: subject, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// durableCause says why a durable publish failed. JetStream answers a
// subject no stream captures with silence (no responders), and so does a
// server without JetStream: a request to the JetStream API tells the two
// apart, on the failure path only.
func (p *Publisher) durableCause(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		// NATS is down, or JetStream did not store it in time: the
		// message may or may not be stored; a retry with the same id
		// settles it.
		return fmt.Errorf("%w: no ack in time (%w)", ErrJetStreamUnavailable, err)
	}
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		return err
	}
	if ctx.Err() != nil {
		return ErrJetStreamUnavailable
	}
	if _, aerr := p.js.AccountInfo(ctx); aerr != nil {
		if jetStreamMissing(aerr) || errors.Is(aerr, context.DeadlineExceeded) {
			return ErrJetStreamUnavailable
		}
		return aerr
	}
	return ErrNoStream
}
