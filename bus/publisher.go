package bus

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/internal/channel"
)

// DefaultFlushTimeout is what Publisher.Flush waits when given zero.
const DefaultFlushTimeout = 10 * time.Second

// Publisher publishes notifications the way storage and app services do:
// the message body is the payload, the subject is "<prefix>.<channel>". It
// checks every name, so a publisher can never send to a wildcard. A
// Publisher is safe for concurrent use; it does not own nc.
//
// User, Topic and Broadcast are volatile: a notification reaches, at most
// once, the connections subscribed to its channel at the instant the NATS
// server routes it; nothing stores, retries or acknowledges it. A nil error from
// User, Topic or Broadcast means only that the message is in nc's buffer;
// a nil error from Flush means the server has processed it, not that
// anyone received it. See Dial for what happens during a NATS outage.
//
// DurableUser, DurableTopic and DurableBroadcast store the notification in
// JetStream first and return once the stream has acknowledged it.
type Publisher struct {
	nc        *nats.Conn
	js        jetstream.JetStream // for the durable publishes
	jsErr     error               // from jetstream.New; returned by every durable publish
	prefix    string
	durable   string // DurablePrefix(prefix)
	broadcast string // "<prefix>.broadcast", built once
	err       error  // non-nil when prefix is invalid; returned by every publish
}

// NewPublisher returns a Publisher on nc. An empty prefix means "notify".
// An invalid prefix is not reported here but by every publish, as
// ErrInvalidName.
func NewPublisher(nc *nats.Conn, prefix string) *Publisher {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	p := &Publisher{nc: nc, prefix: prefix, durable: DurablePrefix(prefix), broadcast: prefix + "." + channel.Broadcast}
	if !channel.Valid(prefix) {
		p.err = fmt.Errorf("%w: prefix %q", ErrInvalidName, prefix)
	}
	// jetstream.New sends nothing and fails only on options, of which
	// none are given; jsErr keeps it from failing the volatile publishes.
	if p.js, p.jsErr = jetstream.New(nc); p.jsErr != nil {
		p.jsErr = fmt.Errorf("bus: jetstream: %w", p.jsErr)
	}
	return p
}

// User publishes payload to every socket of user id, on subject
// "<prefix>.user.<id>". id must be a single token of [A-Za-z0-9_-] and
// "user.<id>" at most 128 bytes, else the error is ErrInvalidName.
func (p *Publisher) User(id string, payload []byte) error {
	if !channel.ValidUser(id) {
		return fmt.Errorf("%w: user id %q", ErrInvalidName, id)
	}
	return p.publish(p.prefix+"."+channel.User(id), payload)
}

// Topic publishes payload to the subscribers of topic name, on subject
// "<prefix>.topic.<name>". name is one or more dot-separated tokens of
// [A-Za-z0-9_-] and "topic.<name>" at most 128 bytes, else the error is
// ErrInvalidName.
func (p *Publisher) Topic(name string, payload []byte) error {
	ch := channel.Topic(name)
	if !channel.Valid(ch) {
		return fmt.Errorf("%w: topic %q", ErrInvalidName, name)
	}
	return p.publish(p.prefix+"."+ch, payload)
}

// Broadcast publishes payload to every socket of every gateway, on subject
// "<prefix>.broadcast".
func (p *Publisher) Broadcast(payload []byte) error {
	return p.publish(p.broadcast, payload)
}

// Flush waits until the server has processed everything published so far,
// or timeout passes. Zero means DefaultFlushTimeout. Core NATS publishes are
// fire-and-forget: a short-lived publisher (a CLI) must Flush before it
// exits.
func (p *Publisher) Flush(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultFlushTimeout
	}
	if err := p.nc.FlushTimeout(timeout); err != nil {
		return fmt.Errorf("bus: flush: %w", err)
	}
	return nil
}

func (p *Publisher) publish(subject string, payload []byte) error {
	if p.err != nil {
		return p.err
	}
	if err := p.nc.Publish(subject, payload); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return nil
}

// Dial connects a publisher-only client, for the `wsgate publish` CLI and Go
// services. An empty url means nats.DefaultURL (nats://127.0.0.1:4222, where
// a zero-config gateway's embedded server listens); several URLs are
// comma-separated. An empty name means "wsgate-publisher". Unlike the
// gateway's connection, Dial fails at once if no server answers, so that a
// mistyped URL is reported. The caller closes the connection.
//
// Once connected, the client reconnects forever, and nothing published
// during an outage is promised. While it reconnects, a publish still
// returns nil: the message waits in nats.go's reconnect buffer, which Dial
// leaves at nats.go's default size (nats.DefaultReconnectBufSize, 8 MiB),
// and is sent after the reconnect to whoever is subscribed then. Once the
// buffer is full, publishes fail with nats.ErrReconnectBufExceeded. The
// buffer is lost if the process exits or closes the connection before the
// reconnect, and a message written just before the client noticed the
// broken connection is lost without an error. Publisher.Flush during an
// outage fails after its timeout: flush and check the error to know that
// the server has what was published.
func Dial(url, name string) (*nats.Conn, error) {
	return DialWith(url, name, ConnectOptions{})
}

// DialWith is Dial with credentials, TLS files and a reconnect pause, for
// a secured NATS server:
//
//	nc, err := bus.DialWith("tls://nats-1:4222,tls://nats-2:4222", "mail-storage", bus.ConnectOptions{
//		CredsFile: "/run/secrets/mail-storage.creds",
//		TLSCA:     "/etc/nats/ca.pem",
//	})
//
// An invalid opts fails with ErrInvalidConfig before anything is dialed;
// a server that refuses the credentials or the certificate fails it too.
// The error shows url redacted (RedactURL) and never a secret.
func DialWith(url, name string, opts ConnectOptions) (*nats.Conn, error) {
	if url == "" {
		url = nats.DefaultURL
	}
	if name == "" {
		name = "wsgate-publisher"
	}
	connOpts, err := opts.natsOptions()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, connOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: dial %s: %w", RedactURL(url), newRedactor(url, opts).error(err))
	}
	return nc, nil
}
