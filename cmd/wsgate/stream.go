package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/bus"
)

// streamFlags are the flags that describe the stream of durable
// notifications, shared by the gateway (which applies the stream at start
// unless --durable-manage-stream=false) and `wsgate stream apply`.
type streamFlags struct {
	name              string
	maxMsgsPerChannel int
	maxAge            time.Duration
	maxBytes          int
	duplicates        time.Duration
	replicas          int
	storage           string
	ackBucket         string
}

// streamZeroRefused are the stream flags for which 0 ("none") makes no
// sense.
var streamZeroRefused = []string{"durable-duplicates", "durable-replicas"}

func (f *streamFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "durable-stream", bus.DefaultStreamName, "name of the JetStream stream that stores durable notifications")
	fs.IntVar(&f.maxMsgsPerChannel, "durable-max-msgs-per-channel", bus.DefaultMaxMsgsPerChannel, "durable notifications kept per channel (user, topic, broadcast), the oldest dropped first; 0 means no limit")
	fs.DurationVar(&f.maxAge, "durable-max-age", bus.DefaultMaxAge, "how long a durable notification is kept; 0 means forever")
	fs.IntVar(&f.maxBytes, "durable-max-bytes", 0, "bytes the stream may hold, the oldest notifications dropped beyond; 0 means no limit of its own")
	fs.DurationVar(&f.duplicates, "durable-duplicates", bus.DefaultDuplicates, "window in which a publish repeating a message id (Nats-Msg-Id) is not stored again")
	fs.IntVar(&f.replicas, "durable-replicas", bus.DefaultReplicas, "copies of the stream, and of the ack bucket, in a NATS cluster (3 in a cluster of 3 or more)")
	fs.StringVar(&f.storage, "durable-storage", "file", "where the stream and the ack bucket keep notifications: file (survives restarts) or memory (faster; lost when the NATS server stops, or every replica of it)")
	fs.StringVar(&f.ackBucket, "durable-ack-bucket", bus.DefaultAckBucket, "name of the JetStream KV bucket of acked watermarks, one per user and channel; kept as long as --durable-max-age")
}

// ackBucket is the bus.AckBucketConfig of the flags: its marks live as long
// as the notifications they could skip.
func (f *streamFlags) ackBucketConfig() bus.AckBucketConfig {
	return bus.AckBucketConfig{Name: f.ackBucket, MaxAge: orNegative(f.maxAge), Replicas: f.replicas, Memory: f.storage == "memory"}
}

// history is the bus.HistoryConfig of the flags, for subject prefix prefix.
func (f *streamFlags) history(prefix string) bus.HistoryConfig {
	return bus.HistoryConfig{Prefix: prefix, Stream: f.name, AckBucket: f.ackBucket}
}

// apply creates or updates the stream and the ack bucket.
func (f *streamFlags) apply(ctx context.Context, nc *nats.Conn, prefix string) (*jetstream.StreamInfo, error) {
	info, err := bus.ApplyStream(ctx, nc, f.config(prefix))
	if err != nil {
		return nil, err
	}
	if _, err := bus.ApplyAckBucket(ctx, nc, f.ackBucketConfig()); err != nil {
		return nil, err
	}
	return info, nil
}

// config is the bus.StreamConfig of the flags, for subject prefix prefix.
// A flag's 0 (none) is the config's negative. The default duplicate window
// is left to the bus, which shortens it to a --durable-max-age below 2m
// (JetStream refuses a longer window).
func (f *streamFlags) config(prefix string) bus.StreamConfig {
	dup := f.duplicates
	if dup == bus.DefaultDuplicates {
		dup = 0
	}
	return bus.StreamConfig{
		Name:              f.name,
		Prefix:            prefix,
		MaxMsgsPerChannel: int64(orNegative(f.maxMsgsPerChannel)),
		MaxAge:            orNegative(f.maxAge),
		MaxBytes:          int64(f.maxBytes),
		Duplicates:        dup,
		Replicas:          f.replicas,
		Memory:            f.storage == "memory",
	}
}

// checkStorage refuses a --durable-storage other than file or memory.
func (f *streamFlags) checkStorage() error {
	if f.storage != "file" && f.storage != "memory" {
		return usagef("--durable-storage must be file or memory, not %q", f.storage)
	}
	return nil
}

// stream runs `wsgate stream apply|info [flags]`: for operators who do not
// let services create streams, it creates or updates the stream with the
// gateway's flags, or shows it.
func stream(args []string) error {
	var action string
	if len(args) > 0 && (args[0] == "apply" || args[0] == "info") {
		action, args = args[0], args[1:]
	}
	var sf streamFlags
	fs := flag.NewFlagSet("wsgate stream (apply | info) [flags]", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs, defaultPublishURL, "NATS server URL(s), comma-separated: the gateway's --nats-url, or its embedded server")
	prefix := fs.String("subject-prefix", bus.DefaultPrefix, "NATS subject prefix: the gateway's --subject-prefix")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for JetStream's answer")
	sf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\n"+
			"  apply  create the stream of durable notifications and the KV bucket of acked watermarks,\n"+
			"         or update them to the flags, and show the stream\n"+
			"  info   show the stream: its configuration and what it holds\n\n", fs.Name())
		printFlags(fs)
	}
	if err := parse(fs, args, 0, append(streamZeroRefused, "timeout")...); err != nil {
		return err
	}
	if action == "" {
		fs.Usage()
		return usagef("stream needs an action: apply or info")
	}
	if err := sf.checkStorage(); err != nil {
		return err
	}
	nc, err := nf.dial("stream")
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var info *jetstream.StreamInfo
	if action == "apply" {
		info, err = sf.apply(ctx, nc, *prefix)
	} else {
		info, err = bus.StreamInfo(ctx, nc, sf.name)
	}
	if errors.Is(err, bus.ErrInvalidName) || errors.Is(err, bus.ErrInvalidConfig) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	printStream(os.Stdout, info)
	return nil
}

// printStream writes the configuration and state of a stream.
func printStream(w io.Writer, info *jetstream.StreamInfo) {
	c, s := info.Config, info.State
	fmt.Fprintf(w, "stream %s, created %s\n", c.Name, info.Created.UTC().Format(time.RFC3339))
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-18s %s\n", name, fmt.Sprintf(format, args...))
	}
	row("subjects", "%s", strings.Join(c.Subjects, ", "))
	if c.RePublish != nil {
		row("republish", "%s as %s", c.RePublish.Source, c.RePublish.Destination)
	} else {
		row("republish", "none: connected sockets receive nothing live")
	}
	row("storage", "%s, %d replica(s), discard %s", strings.ToLower(c.Storage.String()), c.Replicas,
		strings.ToLower(strings.TrimPrefix(c.Discard.String(), "Discard")))
	row("per channel", "%s", limit(c.MaxMsgsPerSubject, "messages"))
	if c.MaxAge == 0 {
		row("max age", "none")
	} else {
		row("max age", "%v", c.MaxAge)
	}
	row("max bytes", "%s", limit(c.MaxBytes, "bytes"))
	row("duplicate window", "%v", c.Duplicates)
	row("per-message TTL", "%s", allowed(c.AllowMsgTTL))
	row("direct get", "%s", allowed(c.AllowDirect))
	row("messages", "%d, %d bytes, seq %d to %d, %d channel(s)", s.Msgs, s.Bytes, s.FirstSeq, s.LastSeq, s.NumSubjects)
}

func allowed(yes bool) string {
	if yes {
		return "allowed"
	}
	return "refused"
}

// limit prints a JetStream limit, where -1 means none.
func limit(n int64, unit string) string {
	if n < 0 {
		return "none"
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// defaultStoreDir is where the embedded NATS server keeps its streams when
// --nats-store-dir is empty: the user's state directory of the XDG base
// directory specification, $XDG_STATE_HOME/wsgate/nats or
// ~/.local/state/wsgate/nats. It survives restarts and reboots (unlike
// /tmp), needs no privileges, and is outside any checkout, so `make run`
// keeps its durable notifications and leaves git status clean.
func defaultStoreDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "wsgate", "nats"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("--nats-store-dir is empty and there is no home directory for its default: %w", err)
	}
	return filepath.Join(home, ".local", "state", "wsgate", "nats"), nil
}
