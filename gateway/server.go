package gateway

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/gopool"
	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/lograte"
	"github.com/wsgate/wsgate/netpoll"
)

// Bus is what the gateway needs from the message bus: interest in channels,
// counted per connection. Interest returns once messages of the channel
// published from then on will be delivered to Server.Deliver.
type Bus interface {
	Interest(channel string) error
	DropInterest(channel string)
	Connected() bool
}

// Server is a WebSocket notification gateway: it accepts connections,
// upgrades them, keeps them in the hub and the poller, and delivers bus
// notifications to them.
type Server struct {
	cfg     Config
	log     *zap.Logger
	bus     Bus
	origins []originRule
	pool    *gopool.Pool
	poller  *netpoll.Poller
	hub     *hub
	metrics *metrics

	start    time.Time
	nextID   atomic.Uint64
	idPrefix string

	upgraders   sync.Pool // *upgrader
	chunks      sync.Pool // *chunk
	jobs        sync.Pool // *fanoutJob
	tasks       sync.Pool // *task
	takeChunkFn func() *chunk
	backlog     backlog

	// history, resumer and acks serve the durable ops; nil without
	// Config.History.
	history History
	resumer *resumer
	acks    *acker
	replays replaySet

	// grantTable shares equal token patterns between connections.
	grantTable grantTable
	// upstreams holds the upstream state of the connections that sent
	// upstream ops (upstream.go).
	upstreams upstreamSet
	// historyFailure is set while History requests fail (health.go).
	historyFailure atomic.Pointer[historyFailure]

	// busErrs, acceptErrs and historyErrs keep repeated errors from
	// flooding the log.
	busErrs, acceptErrs, historyErrs lograte.Limiter

	// Admission limits (limit.go).
	ips                       *ipTable      // sockets per peer address; nil without MaxConnsPerIP
	admitted                  atomic.Int64  // connections holding a place under MaxConns
	acceptLimit               *rate.Limiter // nil without AcceptRate
	msgInterval, msgTolerance uint32        // MessageRate as ms per message and burst; 0 without
	upInterval, upTolerance   uint32        // UpstreamRate likewise

	bytesOut    atomic.Uint64 // bytes written to sockets
	queuedBytes atomic.Int64  // bytes waiting in write queues

	// saturatedSince is the unix nanosecond since which the sweeper has
	// seen the pool saturated, or 0 (health.go).
	saturatedSince atomic.Int64

	// draining: Shutdown has begun and /readyz says so; the server still
	// serves. stopping: listeners are closed and no upgrade completes any
	// more. closed: Close has begun.
	draining atomic.Bool
	stopping atomic.Bool
	closed   atomic.Bool
	phase    atomic.Int32 // drainPhase, for the log and wsgate_drain_phase

	mu        sync.Mutex                 // protects listeners
	listeners map[net.Listener]io.Closer // with the raw accepter's duplicate fd, or nil

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup // the sweeper and Serve loops
}

// New returns a Server for cfg. It subscribes the broadcast channel on the
// bus and starts the poller, the pool and the heartbeat sweeper; call Close
// to stop them.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if w := cfg.heartbeatWarning(); w != "" {
		cfg.Logger.Warn(w, zap.Duration("ping_interval", cfg.PingInterval), zap.Duration("idle_timeout", cfg.IdleTimeout))
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		bus:       cfg.Bus,
		origins:   parseOrigins(cfg.AllowedOrigins),
		hub:       newHub(),
		start:     time.Now(),
		idPrefix:  cmp.Or(cfg.ID, randomPrefix()),
		listeners: make(map[net.Listener]io.Closer),
		replays:   replaySet{m: make(map[*Conn][]*replay)},
		done:      make(chan struct{}),
	}
	s.upgraders.New = s.newUpgrader
	s.chunks.New = s.newChunk
	s.jobs.New = func() any { return &fanoutJob{} }
	s.tasks.New = func() any {
		t := &task{srv: s}
		t.run = t.do
		return t
	}
	s.takeChunkFn = s.takeChunk
	if cfg.MaxConnsPerIP > 0 {
		s.ips = newIPTable()
	}
	if cfg.AcceptRate > 0 {
		s.acceptLimit = rate.NewLimiter(rate.Limit(cfg.AcceptRate), cfg.AcceptBurst)
	}
	if cfg.MessageRate > 0 {
		s.msgInterval = uint32(max(math.Round(1000/cfg.MessageRate), 1))
		s.msgTolerance = uint32(cfg.MessageBurst) * s.msgInterval
	}
	if cfg.UpstreamRate > 0 {
		s.upInterval = uint32(max(math.Round(1000/cfg.UpstreamRate), 1))
		s.upTolerance = uint32(cfg.UpstreamBurst) * s.upInterval
	}

	s.pool, err = gopool.New(gopool.Config{
		Size:     cfg.PoolSize,
		Queue:    cfg.PoolQueue,
		Prespawn: cfg.PoolSize,
		OnPanic: func(v any) {
			s.log.Error("task panicked", zap.Any("panic", v), zap.Stack("stack"))
		},
	})
	if err != nil {
		return nil, err
	}
	s.poller, err = netpoll.New(netpoll.Config{OnError: func(err error) {
		s.log.Error("poller", zap.Error(err))
	}})
	if err != nil {
		s.pool.Close()
		return nil, err
	}
	s.metrics = newMetrics(s)
	if err := s.bus.Interest(channel.Broadcast); err != nil {
		s.poller.Close()
		s.pool.Close()
		return nil, err
	}
	s.backlog.wake = make(chan struct{}, 1)
	s.wg.Add(2)
	go s.sweep()
	go s.drainBacklog()
	if cfg.History != nil {
		s.history = cfg.History
		s.resumer = newResumer(s, cfg.History)
		s.acks = newAcker(s, cfg.History)
		s.resumer.start()
		s.wg.Add(1)
		go s.acks.run()
	}
	return s, nil
}

func randomPrefix() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// connID formats a connection id: a per-process prefix and a counter, so ids
// are unique across a fleet in practice.
func (s *Server) connID(id uint64) string {
	return s.idPrefix + "-" + strconv.FormatUint(id, 36)
}

// clock returns the server clock: milliseconds since New, plus one so that
// zero can mean "never". It wraps after 49 days; differences stay right.
func (s *Server) clock() uint32 {
	return uint32(time.Since(s.start)/time.Millisecond) + 1
}

// Serve accepts connections on ln until Shutdown or Close, and then returns
// ErrServerClosed. Accept errors (EMFILE and the like) back off from 5 ms
// doubling to 1 s; they never end Serve. Each accepted socket is handed to
// the pool, which registers it with the poller; its upgrade runs when its
// request arrives. When the pool stays busy for UpgradeScheduleTimeout the
// socket is refused with 503 and accepting pauses, so the backlog and the
// load balancer take the pressure. With AcceptRate the loop waits for a
// token before each accept.
func (s *Server) Serve(ln net.Listener) error {
	// On Linux a TCP listener's sockets are taken as bare fds: no net.Conn
	// is ever made for them (see fdSock). Other listeners give net.Conns.
	raw, isRaw := newRawAccepter(ln)
	var extra io.Closer
	if isRaw {
		extra = raw
	}
	if !s.track(ln, extra) {
		if isRaw {
			raw.Close()
		}
		return ErrServerClosed
	}
	defer s.untrack(ln)
	return s.acceptLoop(ln, raw)
}

func (s *Server) track(ln net.Listener, extra io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return false
	}
	s.listeners[ln] = extra
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	if extra := s.listeners[ln]; extra != nil {
		extra.Close()
	}
	delete(s.listeners, ln)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln, extra := range s.listeners {
		ln.Close()
		if extra != nil {
			extra.Close()
		}
	}
}

// Addr returns the address of one listener Serve is accepting on, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		return ln.Addr()
	}
	return nil
}

// Close closes the server at once: listeners, every connection (without a
// close handshake), the sweeper, the pool and the poller. It waits for every
// goroutine the server started. The bus is the caller's to close.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.draining.Store(true)
		s.stopping.Store(true)
		close(s.done)
		s.closeListeners()
		if s.resumer != nil {
			s.resumer.stop()
		}
		s.wg.Wait()
		s.pool.Close() // finishes queued upgrades and reads; they see closed
		var batch []*Conn
		for i := 0; i < shardCount; i++ {
			batch = s.hub.appendShard(i, batch[:0])
			for _, c := range batch {
				c.shut(ReasonShutdown, nil, closeDrop)
				c.finishClose()
			}
		}
		s.poller.Close()
		s.bus.DropInterest(channel.Broadcast)
	})
	return nil
}
