package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/wsgate/wsgate/gopool"
	"github.com/wsgate/wsgate/internal/channel"
	"github.com/wsgate/wsgate/internal/lograte"
	"github.com/wsgate/wsgate/internal/rawio"
	"github.com/wsgate/wsgate/netpoll"
)

// Bus is what the gateway needs from the message bus: interest in channels,
// counted per connection. Interest returns once messages of the channel
// published from then on will be delivered to Server.Deliver.
type Bus interface {
	Interest(channel string) error
	Release(channel string)
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

	handshakes  sync.Pool // *handshake
	chunks      sync.Pool // *chunk
	jobs        sync.Pool // *fanoutJob
	tasks       sync.Pool // *task
	takeChunkFn func() *chunk
	backlog     backlog

	// busErrs and acceptErrs keep repeated errors from flooding the log.
	busErrs, acceptErrs lograte.Limiter

	// Admission limits (limit.go).
	ips                       *ipTable      // sockets per peer address; nil without MaxConnsPerIP
	admitted                  atomic.Int64  // connections holding a place under MaxConns
	acceptLimit               *rate.Limiter // nil without AcceptRate
	msgInterval, msgTolerance uint32        // MessageRate as ms per message and burst; 0 without

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
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		bus:       cfg.Bus,
		origins:   parseOrigins(cfg.AllowedOrigins),
		hub:       newHub(),
		start:     time.Now(),
		idPrefix:  randomPrefix(),
		listeners: make(map[net.Listener]io.Closer),
		done:      make(chan struct{}),
	}
	s.handshakes.New = s.newHandshake
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
	var backoff time.Duration
	for {
		if !s.acceptToken() {
			return ErrServerClosed
		}
		var (
			a   accepted
			err error
		)
		if isRaw {
			var lerr error
			a.fd, a.sa, err, lerr = raw.accept()
			if lerr != nil {
				return ErrServerClosed // the listener is closed
			}
		} else {
			a.fd = -1
			a.nc, err = ln.Accept()
		}
		if err != nil {
			if s.stopping.Load() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.metrics.acceptErrors.Inc()
			if ok, held := s.acceptErrs.Allow(); ok {
				s.log.Warn("accept failed; backing off", zap.Error(err), zap.Duration("backoff", backoff), zap.Int("suppressed", held))
			}
			if !s.pause(backoff) {
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		err = s.pool.ScheduleTimeout(s.cfg.UpgradeScheduleTimeout, func() { s.open(a) })
		if err != nil {
			s.metrics.upgrades[resultBusy].Inc()
			a.refuseBusy()
			if !s.pause(5 * time.Millisecond) {
				return ErrServerClosed
			}
		}
	}
}

// accepted is a socket from the accept loop: a bare fd and its peer
// address, or a net.Conn when the listener gives only those.
type accepted struct {
	fd int
	sa unix.Sockaddr
	nc net.Conn
}

// rawConn returns the socket's syscall.RawConn and its closer; for a bare
// fd both are c.sock.
func (a accepted) rawConn(c *Conn) (syscall.RawConn, io.Closer, error) {
	if a.nc == nil {
		c.sock.fd = int32(a.fd)
		return &c.sock, &c.sock, nil
	}
	sc, ok := a.nc.(syscall.Conn)
	if !ok {
		return nil, nil, errors.New("gateway: the listener's connections expose no file descriptor")
	}
	rc, err := sc.SyscallConn()
	return rc, a.nc, err
}

func (a accepted) close() {
	if a.nc != nil {
		a.nc.Close()
		return
	}
	unix.Close(a.fd)
}

var busyResponse = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")

// refuseBusy answers 503 with one non-blocking write, so the accept loop
// never waits on a client, and closes the socket.
func (a accepted) refuseBusy() {
	if a.nc == nil {
		unix.Write(a.fd, busyResponse)
	} else if sc, ok := a.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rawio.Write(rc, busyResponse)
		}
	}
	a.close()
}

// acceptToken waits for a token of the AcceptRate bucket, if there is one.
// It reports false on Close.
func (s *Server) acceptToken() bool {
	if s.acceptLimit == nil {
		return true
	}
	d := s.acceptLimit.Reserve().Delay() // never infinite: the burst is at least 1
	if d == 0 {
		return true
	}
	s.metrics.acceptThrottled.Inc()
	return s.pause(d)
}

// pause waits for d or until Close; it reports false on Close.
func (s *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
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

// open runs on the pool for every accepted socket: it registers the socket
// with the poller, whose first readable event starts the handshake. A
// socket that sends nothing costs no worker; the sweeper drops it after
// HandshakeTimeout.
func (s *Server) open(a accepted) {
	if s.closed.Load() {
		a.close()
		return
	}
	c := &Conn{srv: s, id: s.nextID.Add(1)}
	rc, closer, err := a.rawConn(c)
	if err != nil {
		s.metrics.upgrades[resultError].Inc()
		a.close()
		return
	}
	c.rc, c.closer = rc, closer
	c.since.Store(s.clock())
	s.countPeer(c, a)
	// The poller may call back (and the handshake task start) before
	// Observe returns; c.desc is set under c.wmu, which the read side
	// takes before it uses c.desc.
	c.wmu.Lock()
	desc, err := s.poller.Observe(rc, c.onEvent)
	if err != nil {
		c.wmu.Unlock()
		s.unadmit(c)
		s.metrics.upgrades[resultError].Inc()
		s.log.Error("observe connection", zap.Error(err))
		closer.Close()
		return
	}
	c.desc = desc
	s.hub.addConn(c)
	c.wmu.Unlock()
}

// welcome turns an upgraded connection into an open one: it makes the
// user's channel live on the bus, joins it, and sends the 101 answer resp
// and the welcome frame in one write. The join and the welcome happen
// under c.wmu, so no notification can overtake the welcome, and anything
// published after the client has it is delivered. It reports whether the
// read side should go on.
func (s *Server) welcome(c *Conn, id Identity, resp []byte) bool {
	userCh := channel.User(id.User)
	if s.cfg.MaxUserConns > 0 && s.cfg.UserConnsPolicy == RejectNew && s.hub.members(userCh) >= s.cfg.MaxUserConns {
		// Refused before the NATS round trip; joinUser checks again under
		// the lock for sockets of the user that arrive together.
		s.refuseUserLimit(c, resp)
		return false
	}
	if err := s.bus.Interest(userCh); err != nil {
		if ok, held := s.busErrs.Allow(); ok {
			s.log.Warn("subscribe user channel", zap.String("user", id.User), zap.Error(err), zap.Int("suppressed", held))
		}
		rawio.Write(c.rc, append(resp, ReasonBusError.frame()...))
		s.refuse(c, resultUnavailable, err, nil)
		return false
	}
	now := s.clock()
	c.wmu.Lock()
	if c.state.Load() != stateHandshake { // dropped meanwhile: handshake timeout or Close
		c.wmu.Unlock()
		s.bus.Release(userCh)
		return false
	}
	oldest, ok := s.hub.joinUser(c, userCh, s.cfg.MaxUserConns, s.cfg.UserConnsPolicy)
	if !ok {
		c.wmu.Unlock()
		s.bus.Release(userCh)
		s.refuseUserLimit(c, resp)
		return false
	}
	c.user, c.channels = id.User, id.Channels
	if exp := id.Expires.Unix(); !id.Expires.IsZero() && exp > 0 && exp <= math.MaxUint32 {
		c.expires = uint32(exp) // beyond 2106 it is never, not a wrapped past
	}
	c.lastRead.Store(now)
	c.lastPing.Store(now)
	c.msgTAT = now
	c.since.Store(0)
	c.state.Store(stateOpen)
	s.metrics.connections.Inc()
	s.metrics.opened.Inc()
	if !s.cfg.ConformanceEcho { // a test client expects only its echoes
		resp = append(resp, welcomeFrame(c.ID(), c.user, int64(max(s.cfg.PingInterval, 0)/time.Second))...)
	}
	err := c.writeLocked(resp, false)
	c.wmu.Unlock()
	s.metrics.upgrades[resultOK].Inc()
	c.closeOnWriteError(err)
	if oldest != nil {
		oldest.close(ReasonReplaced)
	}
	// Shutdown may have walked the hub between this upgrade's availability
	// check and the join above; such a connection closes itself.
	if s.stopping.Load() {
		c.close(ReasonShutdown)
	}
	return c.state.Load() != stateClosed
}

// refuseUserLimit answers an upgrade beyond MaxUserConns under RejectNew
// with the 101 and a 4002 close frame: a browser sees the code, where an
// HTTP status would reach its script as a bare 1006.
func (s *Server) refuseUserLimit(c *Conn, resp []byte) {
	rawio.Write(c.rc, append(resp, closeFrame(StatusTooManyConns, "too many connections")...))
	s.refuse(c, resultUserLimit, errUserLimit, nil)
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

// Connections returns the number of connections the server holds, those
// still in their handshake included.
func (s *Server) Connections() int { return s.hub.count() }

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
		s.bus.Release(channel.Broadcast)
	})
	return nil
}
