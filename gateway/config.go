package gateway

import (
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
)

// The defaults New applies to zero Config fields; each field's comment
// names its own.
const (
	DefaultPath                   = "/ws"
	DefaultPingInterval           = 25 * time.Second
	DefaultIdleTimeout            = 60 * time.Second
	DefaultWriteTimeout           = 10 * time.Second
	DefaultWriteQueueLimit        = 256 << 10 // bytes
	DefaultMaxMessageSize         = 4096      // bytes
	DefaultHandshakeTimeout       = 5 * time.Second
	DefaultMaxHandshakeSize       = 16 << 10 // bytes
	DefaultCloseTimeout           = 3 * time.Second
	DefaultMaxSubscriptions       = 100
	DefaultPoolSize               = 256
	DefaultUpgradeScheduleTimeout = 10 * time.Millisecond
	DefaultFanoutChunk            = 512
	DefaultReadyConnsRatio        = 0.9
	DefaultMessageRate            = 20 // messages per second
	DefaultDrainDelay             = 5 * time.Second
	DefaultDrainTimeout           = 30 * time.Second
	DefaultSoftMemoryRatio        = 0.9 // of GOMEMLIMIT
	DefaultSaturationTimeout      = 2 * time.Second
	DefaultStallTimeout           = 10 * time.Second
	DefaultCompressThreshold      = 256 // bytes
	DefaultReplayLimit            = 1000
	DefaultReplayBatch            = 100
	DefaultReplayReaders          = 4
	DefaultAckInterval            = 2 * time.Second
	DefaultUpstreamRate           = 10 // messages per second
	DefaultUpstreamBurst          = 20
	DefaultUpstreamTimeout        = 5 * time.Second
	DefaultMaxUpstreamRequests    = 16
)

// Config configures a Server. The zero value of every field means its
// default, named in its comment; a negative value turns off what can be
// turned off (the comment says so) and is refused elsewhere. New fills in
// the defaults and validates the rest.
//
// The timers (PingInterval, IdleTimeout, WriteTimeout, HandshakeTimeout,
// CloseTimeout, and a token's expiry) are kept by one sweeper, not a timer
// per connection. It ticks every quarter of the shortest of WriteTimeout,
// CloseTimeout, HandshakeTimeout and, when enabled, PingInterval and
// IdleTimeout, within [10ms, 1s] (750ms with the defaults), and a timer
// fires at the first tick after it is due.
type Config struct {
	// Path is the WebSocket endpoint. Empty means DefaultPath ("/ws").
	// Other paths get 404.
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

	// History is the stream of durable notifications and the store of
	// acked watermarks, for the resume and ack ops (resume.go). Nil turns
	// them off: they are answered not_durable, and durable frames are
	// still delivered live.
	History History

	// Logger receives the gateway's logs. Nil means zap.NewNop().
	Logger *zap.Logger

	// ID names this gateway in the control plane's answers and starts
	// every connection id it gives ("<ID>-<n>"), so that a connection id
	// says which gateway holds it. It is a token of [A-Za-z0-9_-] of at
	// most 32 bytes. Empty means 6 random hex digits.
	ID string

	// Version is reported by Stats. Empty leaves it out.
	Version string

	// Revocations is the denylist checked at upgrade, after the token is
	// verified: a revoked token is refused with 401. Nil checks nothing.
	Revocations Revocations

	// Upstream carries what clients send up (the publish and request ops)
	// to services. Nil turns the ops off: they are answered
	// upstream_disabled.
	Upstream Upstream

	// UpstreamRate is how many publish and request ops per second a
	// connection may send on average, with UpstreamBurst above that; one
	// more is refused with rate_limited and the connection stays open. It
	// counts within MessageRate, which closes a connection that goes
	// beyond it. Zero means DefaultUpstreamRate (10); negative disables
	// it. At most 1000.
	UpstreamRate float64

	// UpstreamBurst is how many upstream ops a connection may send at once
	// beyond UpstreamRate. Zero means DefaultUpstreamBurst (20).
	UpstreamBurst int

	// UpstreamTimeout is the longest a request op waits for its reply; a
	// client may ask for less. Zero means DefaultUpstreamTimeout (5s).
	UpstreamTimeout time.Duration

	// MaxUpstreamRequests is how many request ops one connection may have
	// waiting for their reply; one more is refused with too_many_requests.
	// Zero means DefaultMaxUpstreamRequests (16). At most 1024.
	MaxUpstreamRequests int

	// PingInterval is how long a connection may stay silent before the
	// server sends it an RFC 6455 ping. Zero means DefaultPingInterval
	// (25s); negative disables pings.
	PingInterval time.Duration

	// IdleTimeout closes a connection from which nothing (not even a pong)
	// was read for this long, with code 4001. Zero means
	// DefaultIdleTimeout (60s); negative disables it. It should be well
	// above PingInterval.
	IdleTimeout time.Duration

	// WriteTimeout closes a connection as a slow consumer when its write
	// queue has not drained at all for this long. Zero means
	// DefaultWriteTimeout (10s).
	WriteTimeout time.Duration

	// WriteQueueLimit is how many bytes may wait for a connection whose
	// socket buffer is full; beyond it the connection is closed as a slow
	// consumer. Zero means DefaultWriteQueueLimit (256 KiB).
	WriteQueueLimit int

	// MaxMessageSize is the largest client message in bytes, fragments
	// joined; a bigger one closes the connection with 1009. Zero means
	// DefaultMaxMessageSize (4096).
	MaxMessageSize int

	// HandshakeTimeout is how long an accepted socket may take to send its
	// whole upgrade request (slowloris); the sweeper drops it at its first
	// tick after that. Zero means DefaultHandshakeTimeout (5s).
	HandshakeTimeout time.Duration

	// MaxHandshakeSize bounds the bytes of the upgrade request (request
	// line and headers); a bigger request is answered 431. Zero means
	// DefaultMaxHandshakeSize (16 KiB); at least 512.
	MaxHandshakeSize int

	// CloseTimeout is how long the server waits for the client's close
	// frame after sending its own before it drops the socket. Zero means
	// DefaultCloseTimeout (3s).
	CloseTimeout time.Duration

	// MaxSubscriptions is how many topics one connection may subscribe to.
	// Zero means DefaultMaxSubscriptions (100).
	MaxSubscriptions int

	// PoolSize is the number of workers that upgrade, read and fan out.
	// Zero means DefaultPoolSize (256).
	PoolSize int

	// PoolQueue is how many tasks may wait for a worker. Zero means
	// PoolSize; negative means none.
	PoolQueue int

	// UpgradeScheduleTimeout is how long the accept loop waits for a worker
	// to register a new socket before refusing it with 503 and cooling down.
	// Zero means DefaultUpgradeScheduleTimeout (10ms).
	UpgradeScheduleTimeout time.Duration

	// FanoutChunk is how many recipients one pool task writes to; a bigger
	// fan-out is split into chunks that run in parallel. Zero means
	// DefaultFanoutChunk (512).
	FanoutChunk int

	// MaxConns is how many open connections the server holds at most; an
	// upgrade beyond it is answered 503. Zero means no limit (cmd/wsgate
	// sets it from the open-file limit).
	MaxConns int

	// ReadyConnsRatio is the fraction of MaxConns at which /readyz turns
	// 503, so a load balancer sends new clients elsewhere before upgrades
	// are refused. Zero means DefaultReadyConnsRatio (0.9). It applies only
	// with MaxConns.
	ReadyConnsRatio float64

	// MaxConnsPerIP is how many sockets one peer address may hold, counted
	// from accept (those still in their handshake included); an upgrade
	// beyond it is answered 429. Zero means no limit. Behind a load
	// balancer every peer is the balancer: leave it at zero there.
	MaxConnsPerIP int

	// AcceptRate is how many sockets per second the accept loop takes at
	// most, a token bucket of AcceptBurst tokens. Beyond it the loop waits
	// and the kernel's listen backlog holds the clients. Zero means no limit.
	AcceptRate float64

	// AcceptBurst is the size of the accept token bucket. Zero means
	// AcceptRate/10, at least 1.
	AcceptBurst int

	// MessageRate is how many messages per second (data messages and
	// pings) a client may send on average, with MessageBurst above that; a
	// client that goes over is closed with 1008. Zero means
	// DefaultMessageRate (20); negative disables the limit. At most 1000.
	MessageRate float64

	// MessageBurst is how many messages a client may send at once beyond
	// its rate: MessageBurst+1 back to back, then one per 1/MessageRate.
	// Zero means 2×MaxSubscriptions + 10, so that a client may subscribe to
	// all its topics at connect.
	MessageBurst int

	// MaxUserConns is how many sockets one user may hold on this gateway;
	// UserConnsPolicy says what happens to one more. Zero means no limit.
	MaxUserConns int

	// UserConnsPolicy is what a connection beyond MaxUserConns does:
	// RejectNew (the default) or CloseOldest.
	UserConnsPolicy UserConnsPolicy

	// DrainDelay is how long Shutdown keeps serving with /readyz at 503
	// before it stops accepting, so load balancers notice first. Zero
	// means DefaultDrainDelay (5s); negative means none.
	DrainDelay time.Duration

	// DrainTimeout is the window over which Shutdown spreads the 1001
	// closes, evenly with jitter, so clients reconnect elsewhere in a
	// trickle. Zero means DefaultDrainTimeout (30s); negative closes every
	// connection at once.
	DrainTimeout time.Duration

	// SoftMemoryLimit is the Go runtime memory (as GOMEMLIMIT counts it)
	// above which /readyz turns 503. Zero means DefaultSoftMemoryRatio (90%)
	// of the runtime's memory limit (GOMEMLIMIT) when one is set, and none
	// otherwise; negative disables it.
	SoftMemoryLimit int64

	// SaturationTimeout is how long the pool may stay saturated (every
	// worker busy and tasks waiting) before /readyz turns 503. Zero means
	// DefaultSaturationTimeout (2s).
	SaturationTimeout time.Duration

	// StallTimeout is how long the poller may go without running, or the
	// pool stay saturated, before /healthz turns 503: the process is wedged
	// and should be restarted. Zero means DefaultStallTimeout (10s).
	StallTimeout time.Duration

	// EnablePprof serves /debug/pprof/ on the admin handler.
	EnablePprof bool

	// DisableCompression turns permessage-deflate off: it is negotiated
	// (without context takeover) whenever a client offers it otherwise.
	DisableCompression bool

	// CompressThreshold is the smallest message, in bytes, that is sent
	// compressed to a client that negotiated permessage-deflate; smaller
	// ones gain little and cost CPU. Zero means DefaultCompressThreshold
	// (256); negative compresses every message.
	CompressThreshold int

	// ReplayLimit is the most durable notifications one resume replays;
	// a client that missed more gets these, oldest first, and
	// recovered:false. Zero means DefaultReplayLimit (1000).
	ReplayLimit int

	// ReplayBatch is how many stored notifications one read of the stream
	// fetches for a replay. Zero means DefaultReplayBatch (100).
	ReplayBatch int

	// ReplayReaders is how many reads of the stream run at once for
	// replays; a replay waiting for its client to read holds none. Zero
	// means DefaultReplayReaders (4).
	ReplayReaders int

	// AckInterval is how often acked watermarks are written to the
	// History: acks in between are merged, so a user acking every
	// notification costs one write per channel per interval. Zero means
	// DefaultAckInterval (2s).
	AckInterval time.Duration

	// ConformanceEcho makes the server echo every data message back (text
	// and binary) instead of reading the JSON protocol, and skip the
	// welcome frame, so that WebSocket test clients (the Autobahn fuzzing
	// client and the like) exercise the production engine: the poller, the
	// pool, the frame reader and writer, and close handling. For testing
	// only; cmd/wsgate allows it only with --auth=none.
	ConformanceEcho bool
}

// UserConnsPolicy says what a connection beyond Config.MaxUserConns does.
type UserConnsPolicy uint8

const (
	// RejectNew closes the new connection right after the upgrade with
	// close code 4002 (too many connections); the others stay.
	RejectNew UserConnsPolicy = iota
	// CloseOldest welcomes the new connection and closes the user's oldest
	// one with close code 4003 (replaced by a newer connection).
	CloseOldest
)

// ParseUserConnsPolicy parses "reject-new" or "close-oldest".
func ParseUserConnsPolicy(s string) (UserConnsPolicy, error) {
	switch s {
	case "reject-new":
		return RejectNew, nil
	case "close-oldest":
		return CloseOldest, nil
	}
	return 0, fmt.Errorf("gateway: user connection policy must be reject-new or close-oldest, not %q", s)
}

// String returns the policy's flag value.
func (p UserConnsPolicy) String() string {
	if p == CloseOldest {
		return "close-oldest"
	}
	return "reject-new"
}

func (c Config) withDefaults() (Config, error) {
	if c.Bus == nil {
		return c, ErrNoBus
	}
	if c.Auth == nil {
		return c, ErrNoAuth
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if !strings.HasPrefix(c.Path, "/") {
		return c, fmt.Errorf("gateway: path %q must start with /", c.Path)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	setDefault(&c.PingInterval, DefaultPingInterval)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.CloseTimeout, DefaultCloseTimeout)
	setDefault(&c.UpgradeScheduleTimeout, DefaultUpgradeScheduleTimeout)
	setDefault(&c.WriteQueueLimit, DefaultWriteQueueLimit)
	setDefault(&c.MaxMessageSize, DefaultMaxMessageSize)
	setDefault(&c.MaxHandshakeSize, DefaultMaxHandshakeSize)
	setDefault(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	setDefault(&c.PoolSize, DefaultPoolSize)
	setDefault(&c.PoolQueue, c.PoolSize)
	setDefault(&c.FanoutChunk, DefaultFanoutChunk)
	setDefault(&c.CompressThreshold, DefaultCompressThreshold)
	setDefault(&c.ReplayLimit, DefaultReplayLimit)
	setDefault(&c.ReplayBatch, DefaultReplayBatch)
	setDefault(&c.ReplayReaders, DefaultReplayReaders)
	setDefault(&c.AckInterval, DefaultAckInterval)
	setDefault(&c.UpstreamRate, DefaultUpstreamRate)
	setDefault(&c.UpstreamBurst, DefaultUpstreamBurst)
	setDefault(&c.UpstreamTimeout, DefaultUpstreamTimeout)
	setDefault(&c.MaxUpstreamRequests, DefaultMaxUpstreamRequests)
	setDefault(&c.DrainDelay, DefaultDrainDelay)
	setDefault(&c.DrainTimeout, DefaultDrainTimeout)
	setDefault(&c.SaturationTimeout, DefaultSaturationTimeout)
	setDefault(&c.StallTimeout, DefaultStallTimeout)
	setDefault(&c.ReadyConnsRatio, DefaultReadyConnsRatio)
	setDefault(&c.MessageRate, DefaultMessageRate)
	setDefault(&c.MessageBurst, 2*c.MaxSubscriptions+10)
	setDefault(&c.AcceptBurst, max(int(c.AcceptRate/10), 1))
	if c.SoftMemoryLimit == 0 {
		if limit := debug.SetMemoryLimit(-1); limit < math.MaxInt64 {
			c.SoftMemoryLimit = int64(math.Round(float64(limit) * DefaultSoftMemoryRatio))
		}
	}
	if c.WriteTimeout < 0 || c.HandshakeTimeout < 0 || c.CloseTimeout < 0 || c.UpgradeScheduleTimeout < 0 ||
		c.SaturationTimeout < 0 || c.StallTimeout < 0 || c.AckInterval < 0 || c.UpstreamTimeout < 0 {
		return c, fmt.Errorf("gateway: negative timeout")
	}
	if c.WriteQueueLimit < 0 || c.MaxMessageSize < 0 || c.MaxHandshakeSize < 0 || c.PoolSize < 0 || c.FanoutChunk < 0 {
		return c, fmt.Errorf("gateway: negative size")
	}
	if c.ReplayLimit < 0 || c.ReplayBatch < 0 || c.ReplayReaders < 0 {
		return c, fmt.Errorf("gateway: negative replay limit")
	}
	if c.MaxHandshakeSize < 512 {
		return c, fmt.Errorf("gateway: MaxHandshakeSize %d is below 512 bytes", c.MaxHandshakeSize)
	}
	if c.MaxConns < 0 || c.MaxConnsPerIP < 0 || c.MaxUserConns < 0 || c.MaxSubscriptions < 0 ||
		c.AcceptRate < 0 || c.AcceptBurst < 0 || c.MessageBurst < 0 || c.UpstreamBurst < 0 || c.MaxUpstreamRequests < 0 {
		return c, fmt.Errorf("gateway: negative limit")
	}
	if c.ReadyConnsRatio <= 0 || c.ReadyConnsRatio > 1 {
		return c, fmt.Errorf("gateway: ReadyConnsRatio %v is not in (0, 1]", c.ReadyConnsRatio)
	}
	if c.MessageRate > 1000 {
		return c, fmt.Errorf("gateway: MessageRate %v is above 1000 per second", c.MessageRate)
	}
	// The limiter keeps time in 32-bit milliseconds: the burst window
	// must stay under 2^31 ms (24 days).
	if c.MessageRate > 0 && float64(c.MessageBurst+1)*math.Round(1000/c.MessageRate) >= math.MaxInt32 {
		return c, fmt.Errorf("gateway: MessageRate %v per second with MessageBurst %d spans more than 24 days", c.MessageRate, c.MessageBurst)
	}
	if c.UpstreamRate > 1000 {
		return c, fmt.Errorf("gateway: UpstreamRate %v is above 1000 per second", c.UpstreamRate)
	}
	if c.UpstreamRate > 0 && float64(c.UpstreamBurst+1)*math.Round(1000/c.UpstreamRate) >= math.MaxInt32 {
		return c, fmt.Errorf("gateway: UpstreamRate %v per second with UpstreamBurst %d spans more than 24 days", c.UpstreamRate, c.UpstreamBurst)
	}
	if c.MaxUpstreamRequests > maxUpstreamRequests {
		return c, fmt.Errorf("gateway: MaxUpstreamRequests %d is above %d", c.MaxUpstreamRequests, maxUpstreamRequests)
	}
	if c.ID != "" && (len(c.ID) > 32 || !channel.ValidUser(c.ID)) {
		return c, fmt.Errorf("gateway: ID %q is not a token of [A-Za-z0-9_-] of at most 32 bytes", c.ID)
	}
	if c.UserConnsPolicy > CloseOldest {
		return c, fmt.Errorf("gateway: unknown UserConnsPolicy %d", c.UserConnsPolicy)
	}
	for _, o := range c.AllowedOrigins {
		if o == "" {
			return c, fmt.Errorf("gateway: empty allowed origin")
		}
	}
	return c, nil
}

// heartbeatWarning says what is wrong with a PingInterval and IdleTimeout
// that are both valid but close clients that did nothing wrong, or "" when
// they work together. Browsers never send anything on their own, so with
// server pings off an idle timeout closes every quiet browser tab unless
// the client pings by itself; and a ping no earlier than the idle timeout
// comes too late for its pong to count.
func (c Config) heartbeatWarning() string {
	switch {
	case c.IdleTimeout <= 0:
		return ""
	case c.PingInterval <= 0:
		return "server pings are off but the idle timeout is on: clients that do not ping on their own (browsers) are closed after every quiet IdleTimeout"
	case c.PingInterval >= c.IdleTimeout:
		return "the ping interval is not shorter than the idle timeout: quiet clients are closed before their pong can arrive"
	}
	return ""
}

// setDefault sets a zero *v to def.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}
