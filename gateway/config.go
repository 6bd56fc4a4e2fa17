package gateway

import (
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Config configures a Server. Zero fields mean the default given in their
// comment; New fills them in and validates the rest.
type Config struct {
	// Path is the WebSocket endpoint. Zero means "/ws". Other paths get 404.
	Path string

	// Auth checks credentials at upgrade. Required: use NewJWTAuth, or
	// InsecureAuth for development.
	Auth Authenticator

	// AllowedOrigins lists the browser origins allowed to connect, such as
	// "https://app.example.com", "https://*.example.com" (any subdomain) or
	// "*" (any). Requests without an Origin header (non-browser clients) are
	// always allowed; Origin is a browser protection. Empty means any origin.
	AllowedOrigins []string

	// Bus subscribes channels on the message bus. Required.
	Bus Bus

	// Logger receives the gateway's logs. Nil means zap.NewNop().
	Logger *zap.Logger

	// PingInterval is how long a connection may stay silent before the
	// server sends it an RFC 6455 ping. Zero means 25s; negative disables
	// pings.
	PingInterval time.Duration

	// IdleTimeout closes a connection from which nothing (not even a pong)
	// was read for this long, with code 4001. Zero means 60s; negative
	// disables it. It should be well above PingInterval.
	IdleTimeout time.Duration

	// WriteTimeout closes a connection as a slow consumer when its write
	// queue has not drained at all for this long. Zero means 10s.
	WriteTimeout time.Duration

	// WriteQueueLimit is how many bytes may wait for a connection whose
	// socket buffer is full; beyond it the connection is closed as a slow
	// consumer. Zero means 256 KiB.
	WriteQueueLimit int

	// MaxMessageSize is the largest client message in bytes, fragments
	// joined; a bigger one closes the connection with 1009. Zero means 4096.
	MaxMessageSize int

	// HandshakeTimeout is how long an accepted socket may take to send its
	// whole upgrade request (slowloris); it is then dropped. Zero means 5s.
	HandshakeTimeout time.Duration

	// MaxHandshakeSize bounds the bytes of the upgrade request (request
	// line and headers); a bigger request is answered 431. Zero means 16 KiB.
	MaxHandshakeSize int

	// CloseTimeout is how long the server waits for the client's close
	// frame after sending its own before it drops the socket. Zero means 3s.
	CloseTimeout time.Duration

	// MaxSubscriptions is how many topics one connection may subscribe to.
	// Zero means 100.
	MaxSubscriptions int

	// PoolSize is the number of workers that upgrade, read and fan out.
	// Zero means 256.
	PoolSize int

	// PoolQueue is how many tasks may wait for a worker. Zero means
	// PoolSize; negative means none.
	PoolQueue int

	// UpgradeScheduleTimeout is how long the accept loop waits for a worker
	// to register a new socket before refusing it with 503 and cooling down.
	// Zero means 10ms.
	UpgradeScheduleTimeout time.Duration

	// FanoutChunk is how many recipients one pool task writes to; a bigger
	// fan-out is split into chunks that run in parallel. Zero means 512.
	FanoutChunk int

	// EnablePprof serves /debug/pprof/ on the admin handler.
	EnablePprof bool
}

func (c Config) withDefaults() (Config, error) {
	if c.Bus == nil {
		return c, ErrNoBus
	}
	if c.Auth == nil {
		return c, ErrNoAuth
	}
	if c.Path == "" {
		c.Path = "/ws"
	}
	if !strings.HasPrefix(c.Path, "/") {
		return c, fmt.Errorf("gateway: path %q must start with /", c.Path)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	setDuration(&c.PingInterval, 25*time.Second)
	setDuration(&c.IdleTimeout, 60*time.Second)
	setDuration(&c.WriteTimeout, 10*time.Second)
	setDuration(&c.HandshakeTimeout, 5*time.Second)
	setDuration(&c.CloseTimeout, 3*time.Second)
	setDuration(&c.UpgradeScheduleTimeout, 10*time.Millisecond)
	setInt(&c.WriteQueueLimit, 256<<10)
	setInt(&c.MaxMessageSize, 4096)
	setInt(&c.MaxHandshakeSize, 16<<10)
	setInt(&c.MaxSubscriptions, 100)
	setInt(&c.PoolSize, 256)
	setInt(&c.PoolQueue, c.PoolSize)
	setInt(&c.FanoutChunk, 512)
	if c.WriteTimeout < 0 || c.HandshakeTimeout < 0 || c.CloseTimeout < 0 {
		return c, fmt.Errorf("gateway: negative timeout")
	}
	if c.WriteQueueLimit < 0 || c.MaxMessageSize < 0 || c.MaxHandshakeSize < 0 || c.PoolSize < 0 || c.FanoutChunk < 0 {
		return c, fmt.Errorf("gateway: negative size")
	}
	if c.MaxHandshakeSize < 512 {
		return c, fmt.Errorf("gateway: MaxHandshakeSize %d is below 512 bytes", c.MaxHandshakeSize)
	}
	for _, o := range c.AllowedOrigins {
		if o == "" {
			return c, fmt.Errorf("gateway: empty allowed origin")
		}
	}
	return c, nil
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}
