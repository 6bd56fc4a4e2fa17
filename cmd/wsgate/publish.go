package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wsgate/wsgate/bus"
)

func publish(args []string) error {
	fs := flag.NewFlagSet("wsgate publish (--user ID | --topic NAME | --broadcast) PAYLOAD", flag.ContinueOnError)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL")
	prefix := fs.String("subject-prefix", "notify", "NATS subject prefix")
	user := fs.String("user", "", "publish to this user's channel")
	topic := fs.String("topic", "", "publish to this topic")
	broadcast := fs.Bool("broadcast", false, "publish to every connection")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the server to take the message")
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	targets := 0
	for _, set := range []bool{*user != "", *topic != "", *broadcast} {
		if set {
			targets++
		}
	}
	if targets != 1 || fs.NArg() != 1 {
		fs.Usage()
		return errors.New("publish needs exactly one of --user, --topic, --broadcast and one PAYLOAD (- reads stdin)")
	}
	payload := []byte(fs.Arg(0))
	if fs.Arg(0) == "-" {
		var err error
		if payload, err = io.ReadAll(os.Stdin); err != nil {
			return err
		}
	}
	nc, err := bus.Dial(*natsURL, "wsgate-publish")
	if err != nil {
		return fmt.Errorf("connect %s: %w", *natsURL, err)
	}
	defer nc.Close()
	p := bus.NewPublisher(nc, *prefix)
	switch {
	case *user != "":
		err = p.User(*user, payload)
	case *topic != "":
		err = p.Topic(*topic, payload)
	default:
		err = p.Broadcast(payload)
	}
	if err != nil {
		return err
	}
	return p.Flush(*timeout)
}
