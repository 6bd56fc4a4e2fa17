package bus

import "errors"

var (
	// ErrClosed is returned by Interest once Close has been called.
	ErrClosed = errors.New("bus: closed")

	// ErrInvalidName is returned for a channel name, user id, topic name or
	// subject prefix that breaks the naming rules of internal/channel.
	ErrInvalidName = errors.New("bus: invalid channel name")

	// ErrNoHandler is returned by Start for a nil Handler.
	ErrNoHandler = errors.New("bus: no handler")

	// ErrStarted is returned by a second call to Start.
	ErrStarted = errors.New("bus: already started")

	// ErrInvalidConfig is returned by New for a negative count, length or
	// timeout, an EmbeddedListen that is not host:port, or ConnectOptions
	// that do not hold together or name a file that cannot be used (by
	// DialWith too).
	ErrInvalidConfig = errors.New("bus: invalid config")

	// ErrSubscribeTimeout is returned by Interest when the NATS server did not
	// confirm the subscription within Config.SubscribeTimeout, typically
	// because the connection is down.
	ErrSubscribeTimeout = errors.New("bus: subscription not confirmed in time")

	// ErrEmbedded is returned by New when the embedded NATS server cannot
	// start, e.g. because EmbeddedListen is in use.
	ErrEmbedded = errors.New("bus: embedded nats server did not start")

	// ErrJetStreamUnavailable is returned by durable publishes and stream
	// requests when the NATS server, or the account, runs no JetStream, or
	// it does not answer.
	ErrJetStreamUnavailable = errors.New("bus: jetstream unavailable")

	// ErrNoStream is returned by a durable publish when JetStream runs but
	// no stream stores the subject: the stream has not been created
	// (ApplyStream, `wsgate stream apply`) or was deleted.
	ErrNoStream = errors.New("bus: no stream stores this subject")

	// ErrNoStreamNamed is returned by StreamInfo for a stream that does not
	// exist.
	ErrNoStreamNamed = errors.New("bus: no such stream")
)
