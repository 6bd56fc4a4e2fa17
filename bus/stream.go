package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsgate/wsgate/internal/channel"
)

// Defaults of StreamConfig, applied to its zero fields.
const (
	DefaultStreamName = "NOTIFY"

	// DefaultMaxMsgsPerChannel keeps the last 1,000 durable notifications
	// of each channel: a user who was away for a weekend still finds
	// everything a busy mailbox or order feed sends in that time, and at
	// about 0.3 KiB a stored notification (a 200-byte payload with a
	// message id) a user's channel holds at most about 0.3 MiB.
	DefaultMaxMsgsPerChannel = 1000

	// DefaultMaxAge drops durable notifications after 72 hours: longer
	// than a weekend offline, short enough that a notification is still
	// news when it is delivered.
	DefaultMaxAge = 72 * time.Hour

	// DefaultDuplicates is the window within which a retried publish with
	// the same message id is recognised and not stored twice: longer than
	// any publisher's retry loop, short enough that the server's table of
	// ids stays small.
	DefaultDuplicates = 2 * time.Minute

	// DefaultReplicas suits one NATS server, the embedded one included; a
	// cluster wants 3.
	DefaultReplicas = 1
)

// DurablePrefix returns the subject prefix of durable notifications for
// the volatile prefix prefix: "durable.<prefix>", so that durable.notify.user.42
// is stored and then republished as notify.user.42. It is not under prefix,
// so the stream never captures volatile traffic nor its own republished
// messages.
func DurablePrefix(prefix string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return "durable." + prefix
}

// StreamConfig describes the JetStream stream that stores durable
// notifications. The zero value of every field means its default; a
// negative limit means none.
type StreamConfig struct {
	// Name of the stream. Empty means "NOTIFY".
	Name string

	// Prefix is the gateway's volatile subject prefix (Config.Prefix). The
	// stream captures "durable.<Prefix>.>" and republishes each message it
	// stores on "<Prefix>.<channel>". Empty means "notify".
	Prefix string

	// MaxMsgsPerChannel is how many notifications the stream keeps per
	// channel (per subject); the oldest go first. Zero means 1,000;
	// negative, no limit.
	MaxMsgsPerChannel int64

	// MaxAge is how long a notification is kept. Zero means 72h; negative,
	// forever. A notification's own TTL (WithTTL) can only be shorter.
	MaxAge time.Duration

	// MaxBytes bounds the stream's storage, in bytes; beyond it the oldest
	// notifications of any channel go. Zero or negative means no limit of
	// its own (the server's JetStream limits still apply).
	MaxBytes int64

	// Duplicates is the window within which a publish that repeats a
	// message id is not stored again. Zero means 2m, or MaxAge when that
	// is shorter; JetStream refuses a window longer than MaxAge.
	Duplicates time.Duration

	// Replicas is the number of copies in a NATS cluster. Zero means 1.
	Replicas int

	// Memory keeps the stream in memory instead of files: faster, and
	// lost when the NATS server stops (in a cluster, when every replica
	// does). The zero value, file storage, survives restarts.
	Memory bool
}

// JetStream returns the stream configuration for cfg, with the defaults
// applied: file storage, discard old, direct gets allowed (for replay),
// per-message TTLs allowed, and the republish that delivers every stored
// notification live to the gateways.
func (cfg StreamConfig) JetStream() (jetstream.StreamConfig, error) {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !channel.Valid(prefix) {
		return jetstream.StreamConfig{}, fmt.Errorf("%w: prefix %q", ErrInvalidName, prefix)
	}
	name := cfg.Name
	if name == "" {
		name = DefaultStreamName
	}
	if !channel.ValidToken(name) {
		return jetstream.StreamConfig{}, fmt.Errorf("%w: stream name %q: one token of [A-Za-z0-9_-]", ErrInvalidConfig, name)
	}
	durable := DurablePrefix(prefix)
	sc := jetstream.StreamConfig{
		Name:              name,
		Description:       "wsgate durable notifications",
		Subjects:          []string{durable + ".>"},
		Storage:           storage(cfg.Memory),
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgs:           -1,
		MaxMsgsPerSubject: orDefault(cfg.MaxMsgsPerChannel, DefaultMaxMsgsPerChannel),
		MaxAge:            orDefault(cfg.MaxAge, DefaultMaxAge),
		MaxBytes:          -1,
		Duplicates:        cfg.Duplicates,
		Replicas:          cfg.Replicas,
		AllowDirect:       true,
		AllowMsgTTL:       true,
		RePublish:         &jetstream.RePublish{Source: durable + ".>", Destination: prefix + ".>"},
	}
	if sc.Duplicates == 0 {
		// JetStream refuses a window longer than MaxAge.
		sc.Duplicates = DefaultDuplicates
		if sc.MaxAge > 0 {
			sc.Duplicates = min(sc.Duplicates, sc.MaxAge)
		}
	}
	if sc.Replicas == 0 {
		sc.Replicas = DefaultReplicas
	}
	if cfg.MaxBytes > 0 {
		sc.MaxBytes = cfg.MaxBytes
	}
	if sc.MaxMsgsPerSubject < 0 {
		sc.MaxMsgsPerSubject = -1
	}
	if sc.MaxAge < 0 {
		sc.MaxAge = 0 // JetStream's "forever"
	}
	if sc.Duplicates < 0 || sc.Replicas < 0 {
		return jetstream.StreamConfig{}, fmt.Errorf("%w: Duplicates %v, Replicas %d: must not be negative",
			ErrInvalidConfig, cfg.Duplicates, cfg.Replicas)
	}
	return sc, nil
}

// orDefault returns v, or def when v is zero.
// storage returns the storage type of a stream or bucket.
func storage(memory bool) jetstream.StorageType {
	if memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

func orDefault[T int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// ApplyStream creates the stream of durable notifications on the NATS
// server nc is connected to, or updates it to cfg, and returns what the
// server then holds. It is idempotent. It fails with ErrJetStreamUnavailable
// when the server (or the account) has no JetStream, and with the server's
// error when it refuses the configuration, for instance a change of
// storage or a missing permission.
func ApplyStream(ctx context.Context, nc *nats.Conn, cfg StreamConfig) (*jetstream.StreamInfo, error) {
	sc, err := cfg.JetStream()
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, &opError{"stream " + sc.Name, err}
	}
	s, err := js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return nil, streamError(sc.Name, err)
	}
	return s.Info(ctx)
}

// StreamInfo returns the configuration and state of stream name ("" means
// "NOTIFY"); ErrNoStreamNamed when there is none.
func StreamInfo(ctx context.Context, nc *nats.Conn, name string) (*jetstream.StreamInfo, error) {
	if name == "" {
		name = DefaultStreamName
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, &opError{"stream " + name, err}
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, streamError(name, err)
	}
	return s.CachedInfo(), nil
}

// streamError names stream and says in the bus's words why JetStream
// refused a stream request.
func streamError(stream string, err error) error {
	switch {
	case jetStreamMissing(err):
		err = ErrJetStreamUnavailable
	case errors.Is(err, jetstream.ErrStreamNotFound):
		err = ErrNoStreamNamed
	}
	return &opError{"stream " + stream, err}
}

// jetStreamMissing reports whether err says the server or the account runs
// no JetStream.
func jetStreamMissing(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders)
}

// opError is the failure of one operation on a stream or a subject:
// "bus: <op>: <cause>", with the cause's own "bus: " said once.
type opError struct {
	op  string // "stream NOTIFY", "durable publish to durable.notify.user.42"
	err error
}

func (e *opError) Error() string {
	return "bus: " + e.op + ": " + strings.TrimPrefix(e.err.Error(), "bus: ")
}

func (e *opError) Unwrap() error { return e.err }
