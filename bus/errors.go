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
	// timeout, or an EmbeddedListen that is not host:port.
	ErrInvalidConfig = errors.New("bus: invalid config")

	// ErrSubscribeTimeout is returned by Interest when the NATS server did not
	// confirm the subscription within Config.SubscribeTimeout, typically
	// because the connection is down.
	ErrSubscribeTimeout = errors.New("bus: subscription not confirmed in time")

	// ErrEmbedded is returned by New when the embedded NATS server cannot
	// start, e.g. because EmbeddedListen is in use.
	ErrEmbedded = errors.New("bus: embedded nats server did not start")
)
