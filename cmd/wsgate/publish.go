package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/channel"
)

// defaultPublishURL is where `wsgate publish` looks for NATS by default:
// the embedded server of a gateway started without --nats-url.
const defaultPublishURL = "nats://127.0.0.1:4222"

func publish(args []string) error {
	fs := flag.NewFlagSet("wsgate publish [--durable [--id ID] [--ttl D]] (--user ID | --topic NAME | --broadcast) PAYLOAD", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs, defaultPublishURL, "NATS server URL(s), comma-separated: the gateway's --nats-url, or its embedded server")
	prefix := fs.String("subject-prefix", bus.DefaultPrefix, "NATS subject prefix: the gateway's --subject-prefix")
	user := fs.String("user", "", "publish to this user's channel (the id alone: 42, not user.42)")
	topic := fs.String("topic", "", "publish to this topic (the name alone: sports, not topic.sports)")
	broadcast := fs.Bool("broadcast", false, "publish to every connection")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the server to take the message (with --durable, for JetStream's ack)")
	durable := fs.Bool("durable", false, "store the notification in JetStream before it is delivered, and print its sequence; fails if JetStream or the stream is missing")
	ttl := fs.Duration("ttl", 0, "with --durable: how long the stream keeps this notification (Nats-TTL, at least 1s); 0 means the stream's max age")
	id := fs.String("id", "", "with --durable: message id (Nats-Msg-Id); a publish repeating it within the stream's duplicate window is not stored again")
	if err := parse(fs, args, 1, "timeout"); err != nil {
		return err
	}
	if !*durable && (*ttl != 0 || *id != "") {
		return usagef("--ttl and --id need --durable")
	}
	targets := 0
	for _, set := range []bool{*user != "", *topic != "", *broadcast} {
		if set {
			targets++
		}
	}
	if targets != 1 || fs.NArg() != 1 {
		fs.Usage()
		return usagef("publish needs exactly one of --user, --topic, --broadcast and one PAYLOAD (- reads stdin)")
	}
	// The channel's kind is in the flag's name; given again in the value it
	// would name another channel ("notify.topic.topic.sports").
	for _, f := range []struct{ flag, what, kind, value string }{
		{"user", "user id", channel.UserKind, *user},
		{"topic", "topic name", channel.TopicKind, *topic},
	} {
		if name, ok := strings.CutPrefix(f.value, f.kind+"."); ok {
			return usagef("--%s takes the %s without %q: --%s %s", f.flag, f.what, f.kind+".", f.flag, name)
		}
	}
	payload := []byte(fs.Arg(0))
	if fs.Arg(0) == "-" {
		var err error
		if payload, err = io.ReadAll(os.Stdin); err != nil {
			return err
		}
	}
	nc, err := nf.dial("publish")
	if err != nil {
		return err
	}
	defer nc.Close()
	if *prefix == "" {
		*prefix = bus.DefaultPrefix
	}
	p := bus.NewPublisher(nc, *prefix)
	if *durable {
		return publishDurable(p, *user, *topic, payload, *timeout, *id, *ttl)
	}
	var ch string
	switch {
	case *user != "":
		ch, err = channel.User(*user), p.User(*user, payload)
	case *topic != "":
		ch, err = channel.Topic(*topic), p.Topic(*topic, payload)
	default:
		ch, err = channel.Broadcast, p.Broadcast(payload)
	}
	if errors.Is(err, bus.ErrInvalidName) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if err := p.Flush(*timeout); err != nil {
		return err
	}
	fmt.Printf("published %d bytes to %s.%s\n", len(payload), *prefix, ch)
	return nil
}

// publishDurable stores payload for the one target given (a user, a topic,
// or everyone when both are empty) and prints where the stream stored it.
func publishDurable(p *bus.Publisher, user, topic string, payload []byte, timeout time.Duration, id string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	opts := []bus.DurableOption{bus.WithMsgID(id), bus.WithTTL(ttl)}
	var st bus.Stored
	var err error
	switch {
	case user != "":
		st, err = p.DurableUser(ctx, user, payload, opts...)
	case topic != "":
		st, err = p.DurableTopic(ctx, topic, payload, opts...)
	default:
		st, err = p.DurableBroadcast(ctx, payload, opts...)
	}
	if errors.Is(err, bus.ErrInvalidName) || errors.Is(err, bus.ErrInvalidConfig) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if st.Duplicate {
		fmt.Printf("duplicate of seq %d on %s: not stored again\n", st.Sequence, st.Subject)
		return nil
	}
	fmt.Printf("stored %d bytes as %s seq %d\n", len(payload), st.Subject, st.Sequence)
	return nil
}
