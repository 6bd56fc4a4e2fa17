package bus

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/lograte"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/channel"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultPrefix           = "notify"
	DefaultName             = "wsgate"
	DefaultEmbeddedListen   = "127.0.0.1:4222"
	DefaultDispatchers      = 2
	DefaultQueueLen         = 65536
	DefaultSubscribeTimeout = 5 * time.Second
)

// Connection tuning shared by the gateway's connection and Dial.
const (
	// reconnectWait, plus a random jitter of up to as much again, is the
	// default pause between two rounds of reconnect attempts: 1–2 s, so that
	// a fleet of gateways does not hit a restarted NATS server in one wave.
	// ConnectOptions.ReconnectWait changes it.
	reconnectWait = time.Second

	// pingInterval and maxPingsOut notice a dead server (half-open TCP) in
	// about a minute instead of nats.go's default of 4–6 minutes; readiness
	// depends on it.
	pingInterval = 20 * time.Second
	maxPingsOut  = 3
)

// Handler receives the messages of the subscribed channels: channel is the
// subject without "<Prefix>." (e.g. "user.42"); payload is the message body
// and is valid only until the Handler returns; pos is the position of a
// durable notification, read from the headers its stream republished it
// with, and zero for a volatile one. gateway.Server.Deliver is one.
type Handler func(channel string, payload []byte, pos Position)

// Config configures a Bus. The zero value of every field means its default.
type Config struct {
	// URL of the NATS server(s), comma-separated. Empty means: start an
	// embedded NATS server in this process, listening on EmbeddedListen, and
	// connect to it.
	URL string

	// EmbeddedListen is the host:port of the embedded server, used only when
	// URL is empty. Empty means "127.0.0.1:4222". Port 0 picks a free port
	// (for tests); ClientURL reports the real one. An empty host listens on
	// every interface.
	EmbeddedListen string

	// StoreDir, when set, enables JetStream in the embedded server, which
	// keeps its streams in files under this directory (created if
	// missing): durable notifications then survive a restart. Empty keeps
	// JetStream off. Used only when URL is empty; an external server's
	// JetStream is configured on that server. Two processes must not share
	// a StoreDir.
	StoreDir string

	// Prefix is the first part of every subject: channel X is subject
	// "<Prefix>.X". Empty means "notify". It must be a valid channel name
	// (one or more dot-separated tokens of [A-Za-z0-9_-]).
	Prefix string

	// Name is the NATS connection name, shown by the server's monitoring.
	// Empty means "wsgate".
	Name string

	// Connect holds the connection's credentials, TLS files and reconnect
	// pause; the zero value connects without authentication or TLS, as to
	// the embedded server. Its authentication and TLS fields need URL: New
	// refuses them with the embedded server, which is for development and
	// accepts any client on its listen address.
	Connect ConnectOptions

	// Dispatchers is the number of goroutines that call the Handler given to
	// Start. Zero means
	// 2: the reference host runs with GOMAXPROCS=2, Handler only looks up
	// local connections and encodes a frame once (large fan-outs go to the
	// worker pool), so more dispatchers than cores buy nothing and fewer
	// would leave a core idle while a burst is queued.
	Dispatchers int

	// QueueLen is the capacity of the dispatch queues, in messages, split
	// evenly among the dispatchers. Zero means 65536 (512 KiB of pointers).
	// When a queue is full, further messages for it are dropped (a
	// client-side slow consumer); Dropped counts them.
	QueueLen int

	// SubscribeTimeout bounds how long Interest waits for the server to
	// confirm a new subscription. Zero means 5s.
	SubscribeTimeout time.Duration

	// Logger receives connection state changes (connected, disconnected,
	// reconnected, closed) and asynchronous errors; repeated errors are
	// rate-limited. Nil means zap.NewNop(). The bus does not name it: pass
	// logger.Named("bus").
	Logger *zap.Logger
}

// Bus is the gateway's link to NATS: it holds two NATS connections, one
// (nats.go's) for publishing, JetStream and requests and one of its own
// (subconn.go) for the subscription of every channel some caller has an
// interest in, and the goroutines that hand messages to Config.Handler.
// All methods are safe for concurrent use.
type Bus struct {
	nc      *nats.Conn
	sc      *subConn
	srv     *server.Server // the embedded server; nil when Config.URL is set
	url     string         // what ClientURL reports
	redact  redactor       // secrets of Config.URL and Config.Connect, kept out of errors and logs
	prefix  string
	handler Handler // set once by Start, before the dispatchers start
	timeout time.Duration
	log     *zap.Logger

	// queues are shared by the subscriptions, one per dispatcher: the
	// number of goroutines does not grow with the number of subscriptions.
	// A channel always uses the queue its name hashes to, so its messages
	// keep their order through dispatch.
	queues []chan *message
	seed   maphash.Seed

	shards [numShards]shard

	// Confirmation rounds, see confirm and runFlusher.
	fmu     sync.Mutex
	next    *round        // guarded by fmu: the round the next flush confirms; nil when nobody waits
	kick    chan struct{} // capacity 1: wakes the flusher when a round is opened
	flushes atomic.Uint64 // PING/PONG round trips made to confirm subscriptions; read by tests

	subs         atomic.Int64  // live NATS subscriptions (map entries)
	sids         atomic.Uint64 // the last subscription id handed out
	dropped      atomic.Uint64 // messages dropped because their dispatch queue was full
	reconnects   atomic.Uint64
	badPositions atomic.Uint64 // messages whose stream headers made no position

	epochs epochs // the epoch of the stream durable notifications come from (position.go)

	asyncErrs, reconnectErrs, badHeaders lograte.Limiter

	startMu   sync.Mutex    // orders Start against Close, so no dispatcher starts after Close waits
	started   bool          // guarded by startMu
	closed    atomic.Bool   // set first thing in Close; checked under a shard lock by acquire
	done      chan struct{} // closed by Close after the connection: stops dispatchers, flusher and waiters
	closeOnce sync.Once
	wg        sync.WaitGroup // dispatchers and flusher
}

// New applies the defaults, starts the embedded server when cfg.URL is empty,
// and connects. Messages are handed to a Handler once Start has been called;
// until then they wait in the dispatch queues.
//
// The connection reconnects forever (1–2 s between rounds of attempts by
// default) and New does not fail when the NATS server is not reachable
// yet: the bus connects in the background, so a gateway can start before
// NATS. Interest calls made meanwhile wait up to SubscribeTimeout. New does
// fail when a server answers but refuses the connection: an authorization
// error (wrong credentials) or a TLS certificate that does not verify,
// which no retry would mend. Once connected, the bus keeps reconnecting
// through authorization errors too, so that credentials rotated on the
// server and in the gateway's files in either order are picked up.
func New(cfg Config) (*Bus, error) {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !channel.Valid(prefix) {
		return nil, fmt.Errorf("%w: prefix %q", ErrInvalidName, prefix)
	}
	name := cfg.Name
	if name == "" {
		name = DefaultName
	}
	dispatchers := cfg.Dispatchers
	if dispatchers == 0 {
		dispatchers = DefaultDispatchers
	}
	queueLen := cfg.QueueLen
	if queueLen == 0 {
		queueLen = DefaultQueueLen
	}
	timeout := cfg.SubscribeTimeout
	if timeout == 0 {
		timeout = DefaultSubscribeTimeout
	}
	if dispatchers < 0 || queueLen < 0 || timeout < 0 {
		return nil, fmt.Errorf("%w: Dispatchers %d, QueueLen %d, SubscribeTimeout %v: must not be negative",
			ErrInvalidConfig, cfg.Dispatchers, cfg.QueueLen, cfg.SubscribeTimeout)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.URL == "" && cfg.Connect.secured() {
		return nil, fmt.Errorf("%w: Connect: credentials and TLS need URL: the embedded NATS server is for development and takes neither", ErrInvalidConfig)
	}
	connOpts, err := cfg.Connect.natsOptions()
	if err != nil {
		return nil, err
	}

	b := &Bus{
		url:     cfg.URL,
		redact:  newRedactor(cfg.URL, cfg.Connect),
		prefix:  prefix,
		timeout: timeout,
		log:     log,
		seed:    maphash.MakeSeed(),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	for i := range b.shards {
		b.shards[i].m = make(map[string]entry)
	}

	if b.url == "" {
		listen := cfg.EmbeddedListen
		if listen == "" {
			listen = DefaultEmbeddedListen
		}
		srv, url, err := startEmbedded(listen, cfg.StoreDir, log)
		if err != nil {
			return nil, err
		}
		b.srv, b.url = srv, url
		log.Info("embedded nats server listening", zap.String("url", url))
	}

	// A first attempt that fails at once when a server refuses what the
	// client presented; only a server that is not reachable makes the bus
	// connect in the background.
	opts := append(b.options(name), connOpts...)
	nc, err := nats.Connect(b.url, append(opts, nats.RetryOnFailedConnect(false))...)
	if err != nil && !refused(err) {
		nc, err = nats.Connect(b.url, append(opts, nats.RetryOnFailedConnect(true))...)
	}
	if err != nil {
		b.stopEmbedded()
		return nil, fmt.Errorf("bus: connect %s: %w", RedactURL(b.url), b.redact.error(err))
	}
	b.nc = nc
	if !nc.IsConnected() {
		log.Warn("nats not reachable yet, connecting in the background", zap.String("url", RedactURL(b.url)))
	}
	resolved := nats.GetDefaultOptions()
	for _, o := range append(connOpts, nats.Name(name+subConnSuffix)) {
		if err := o(&resolved); err != nil {
			nc.Close()
			b.stopEmbedded()
			return nil, fmt.Errorf("bus: %w", b.redact.error(err))
		}
	}
	if b.sc, err = newSubConn(b, b.url, &resolved); err != nil {
		nc.Close()
		b.stopEmbedded()
		return nil, err
	}

	b.queues = make([]chan *message, max(dispatchers, 1))
	for i := range b.queues {
		b.queues[i] = make(chan *message, max(queueLen/len(b.queues), 1))
	}
	b.wg.Add(2)
	go b.runFlusher()
	go b.sc.run()
	if nc.IsConnected() {
		// The server answered: return with the subscription connection up
		// too, as a caller of Connected expects. Should it take longer, it
		// goes on in the background, as after a first failed connect.
		t := time.NewTimer(dialTimeout + handshakeTimeout)
		select {
		case <-b.sc.firstSync:
		case <-t.C:
			log.Warn("nats subscription connection not up yet, connecting in the background", zap.String("url", RedactURL(b.url)))
		}
		t.Stop()
	}
	return b, nil
}

// Start hands every message of every subscribed channel to h from now on,
// from Config.Dispatchers goroutines. It is the second step of the wiring,
// once the receiver exists:
//
//	b, err := bus.New(cfg)
//	s, err := gateway.New(gateway.Config{Bus: b, ...})
//	b.Start(s.Deliver)
//
// h is called concurrently for different channels; the messages of one
// channel are always handed over by the same dispatcher, one at a time, in
// the order NATS delivered them. It may still be called for a channel
// shortly after its last DropInterest (messages already queued). It should not
// block: while every dispatcher is busy, messages queue up to QueueLen and
// are then dropped. Start fails with ErrNoHandler for a nil h, ErrStarted
// when called again, and ErrClosed after Close.
func (b *Bus) Start(h Handler) error {
	if h == nil {
		return ErrNoHandler
	}
	b.startMu.Lock()
	defer b.startMu.Unlock()
	if b.closed.Load() {
		return ErrClosed
	}
	if b.started {
		return ErrStarted
	}
	b.started = true
	b.handler = h
	b.wg.Add(len(b.queues))
	for _, q := range b.queues {
		go b.dispatch(q)
	}
	return nil
}

// options returns the connection options of the gateway's connection: named,
// reconnecting forever, and logging its state changes with URLs and errors
// redacted. Config.Connect adds the credentials, TLS and reconnect pause.
func (b *Bus) options(name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		// Credentials rotated on the server before the gateway's file, or a
		// user JWT that expired before its successor was written: keep
		// trying, where nats.go would give up for good after the second
		// identical authorization error. New has already refused
		// credentials that never worked.
		nats.IgnoreAuthErrorAbort(),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		// Close logs by itself; the callback would run on nats.go's
		// callback goroutine after Close has returned.
		nats.NoCallbacksAfterClientClose(),
		nats.ConnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats connected", zap.String("url", RedactURL(nc.ConnectedUrl())))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("nats disconnected", zap.Error(b.redact.error(err)))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", zap.String("url", RedactURL(nc.ConnectedUrl())))
			b.reconnected() // the stream may have been recreated meanwhile
			// Counted after the epoch is forgotten: once Reconnects has
			// grown, Epoch reports the stream as looked up again.
			b.reconnects.Add(1)
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if ok, held := b.reconnectErrs.Allow(); ok {
				b.log.Warn("nats reconnect attempt failed", zap.Error(b.redact.error(err)), zap.Int("suppressed", held))
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			// Only when nats.go gives up by itself; never with MaxReconnects(-1)
			// and IgnoreAuthErrorAbort.
			b.log.Error("nats connection closed")
		}),
		nats.LameDuckModeHandler(func(*nats.Conn) {
			b.log.Info("nats server entering lame duck mode")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if ok, held := b.asyncErrs.Allow(); ok {
				fields := []zap.Field{zap.Error(b.redact.error(err)), zap.Int("suppressed", held)}
				if sub != nil {
					fields = append(fields, zap.String("subject", sub.Subject))
				}
				b.log.Warn("nats async error", fields...)
			}
		}),
	}
}

// queue returns the dispatch queue of channel ch.
func (b *Bus) queue(ch string) chan *message {
	return b.queues[maphash.String(b.seed, ch)%uint64(len(b.queues))]
}

// dispatch hands the messages of queue q to the Handler until Close.
func (b *Bus) dispatch(q chan *message) {
	defer b.wg.Done()
	for {
		select {
		case m := <-q:
			b.deliver(m)
		case <-b.done:
			return
		}
	}
}

// deliver calls the Handler with the channel of m, its subject without the
// prefix, as a substring (no allocation), and its position. Only a message
// with headers can have one: the subscription connection parses headers
// only for messages that have some, so a volatile message costs one length
// check.
func (b *Bus) deliver(m *message) {
	var pos Position
	if len(m.header) > 0 {
		pos = b.position(m.subject, m.header)
	}
	b.handler(m.subject[len(b.prefix)+1:], m.data, pos)
}

// Connected reports whether both NATS connections are up and the
// subscription connection has confirmed every subscription the bus holds.
func (b *Bus) Connected() bool { return b.nc.IsConnected() && b.sc.synced.Load() }

// Subscriptions returns how many NATS subscriptions the bus holds now: one
// per channel with at least one interest.
func (b *Bus) Subscriptions() int { return int(b.subs.Load()) }

// Dropped returns how many messages were dropped because the dispatch
// queue of their channel was full.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Reconnects returns how many times a connection to NATS was
// re-established after it was lost; each of the two counts, so a NATS
// server that restarts counts 2. nats.go's is counted from its callback
// goroutine, a moment after it is up again.
func (b *Bus) Reconnects() uint64 { return b.reconnects.Load() }

// ClientURL returns the URL publishers should use: the embedded server's
// when Config.URL was empty, Config.URL otherwise. It holds whatever
// secret Config.URL holds: log RedactURL(ClientURL()).
func (b *Bus) ClientURL() string { return b.url }

// Conn returns the nats.go connection, e.g. for a Publisher in the same
// process. The Bus owns it: do not close it, and do not Subscribe on it
// per channel (Interest does that on a connection of its own).
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Close forgets every interest, closes the connection without draining
// (messages still queued are discarded), waits for the dispatchers, and
// shuts the embedded server down and waits for it. Interest fails with
// ErrClosed afterwards. Close is idempotent and always returns nil.
//
// Close does not send an UNSUB per subscription: closing the connection
// removes all of them on the server at once.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		b.startMu.Lock()
		b.closed.Store(true)
		b.startMu.Unlock()
		for i := range b.shards {
			s := &b.shards[i]
			s.mu.Lock()
			clear(s.m)
			s.mu.Unlock()
		}
		b.subs.Store(0)
		b.nc.Close()
		close(b.done)
		b.sc.close()
		b.wg.Wait()
		b.stopEmbedded()
		b.log.Info("bus closed")
	})
	return nil
}
