package engine

import (
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/wsgate/wsgate/bench/internal/config"
	"github.com/wsgate/wsgate/bench/internal/hist"
	"github.com/wsgate/wsgate/netpoll"
)

// Spec is what one engine runs: the run's configuration and this worker's
// share of the connections. It travels to worker processes as JSON.
type Spec struct {
	Config     config.Config `json:"config"`
	JWTSecret  string        `json:"jwt_secret,omitempty"` // Config.JWTSecret, which Config never writes to JSON
	Index      int           `json:"index"`                // this worker: it holds connections Index, Index+Workers, …
	Workers    int           `json:"workers"`
	FloorAddrs []string      `json:"floor_addrs,omitempty"` // floor: the floor servers to connect to, round-robin
}

// connState is where a conn is in its life.
type connState uint8

const (
	stateIdle   connState = iota // no socket: not dialed yet, failed, or closed by churn
	stateOpen                    // welcomed and observed by the poller
	stateClosed                  // closed by the server or the network after its welcome
	stateDone                    // closed by finish
)

// conn is the harness state of one client connection (see
// ConnStructBytes for its size).
type conn struct {
	mu      sync.Mutex // held by a reader for one read task and by churn and finish to close
	tcp     *net.TCPConn
	rc      syscall.RawConn
	desc    *netpoll.Desc
	rem     *[]byte // bytes of an incomplete frame; nil when none
	seq     seqState
	state   connState
	deflate bool      // its 101 accepted permessage-deflate: RSV1 frames are allowed
	dur     *durState // resume: its position and what it applied; nil otherwise
}

// ConnStructBytes is the size of the per-connection state: what an open
// connection costs the engine besides its socket and its epoll
// registration.
const ConnStructBytes = int(unsafe.Sizeof(conn{}))

const (
	readBufSize = 64 << 10  // per reader goroutine
	readBudget  = 256 << 10 // bytes one read task takes before re-arming
)

// Engine is one worker's client side: dialer goroutines that ramp
// connections and hand them to a netpoll Poller, and one reader goroutine
// per CPU that the poller's callbacks feed with connection indices. After
// its handshake a connection has no goroutine: it is a conn in a slice
// and one one-shot registration in the epoll set.
type Engine struct {
	spec    Spec
	cfg     *config.Config
	targets []config.Target
	sources []net.IP
	tokens  []string // ?token= of each local slot, signed before the ramp; nil with ?user=
	poller  *netpoll.Poller
	conns   []conn
	// bseq is, by local slot, the broadcast channel's sequence accounting
	// in the scale scenario, whose connections get notifications on two
	// channels (their user's and the broadcast); nil in every other.
	bseq      []seqState
	ready     chan int32     // indices of readable conns; capacity 4 × conns
	spill     sync.WaitGroup // sends to ready that found it full
	readers   []*reader
	readersWG sync.WaitGroup
	dialq     chan dialJob
	dialWG    sync.WaitGroup
	rampWG    sync.WaitGroup // initial connects not resolved yet
	reconnWG  sync.WaitGroup // churn reconnects not resolved yet

	handshakes   *hist.Locked // dial start → welcome (and subscribed), initial ramp
	reconnHist   *hist.Locked // close → welcome, churn and resume
	recoveryHist *hist.Locked // resume: cut → every expected notification applied
	resumeHist   *hist.Locked // resume: resume op → every expected notification applied

	mu       sync.Mutex // protects the fields below
	failures map[string]int64
	retried  map[string]int64 // ramp dials that failed and were dialed again, by reason
	dropped  map[string]int64
	folded   SeqTotals // churn: connections folded when they closed

	open            atomic.Int64
	established     atomic.Int64
	deflated        atomic.Int64 // initial connects whose 101 accepted permessage-deflate
	failed          atomic.Int64
	reconnects      atomic.Int64
	reconnectFailed atomic.Int64
	misrouted       atomic.Int64
	unsequenced     atomic.Int64
	firstDial       atomic.Int64 // unix ns
	lastWelcome     atomic.Int64 // unix ns
	expectedOpen    atomic.Int64
	pollErrors      atomic.Int64

	// resume (resume.go)
	cutNS        atomic.Int64 // unix ns
	cutConns     atomic.Int64
	resumedN     atomic.Int64
	complete     atomic.Int64
	firstResume  atomic.Int64 // unix ns
	lastComplete atomic.Int64 // unix ns
	reconnFirst  atomic.Int64 // unix ns: the first reconnect's dial
	reconnLast   atomic.Int64 // unix ns: the last reconnect's welcome

	// control and upstream (upstream.go)
	serverCloses map[int]int64 // guarded by mu: control: global index → unix ns its close frame was read
	upSent       atomic.Int64
	upFailed     atomic.Int64
	upFirst      atomic.Int64 // unix ns
	upLast       atomic.Int64 // unix ns
}

type dialJob struct {
	k         int32
	reconnect bool
	since     time.Time // reconnect: when the old socket was closed
	attempt   int       // ramp: 0 for the first dial, n for the nth retry (--retries)
}

// New returns an engine for spec, with its poller and readers ready and no
// connection yet.
func New(spec Spec) (*Engine, error) {
	cfg := &spec.Config
	e := &Engine{
		spec:         spec,
		cfg:          cfg,
		handshakes:   hist.NewLocked(),
		reconnHist:   hist.NewLocked(),
		recoveryHist: hist.NewLocked(),
		resumeHist:   hist.NewLocked(),
		failures:     map[string]int64{},
		retried:      map[string]int64{},
		dropped:      map[string]int64{},
		dialq:        make(chan dialJob),
	}
	for _, u := range cfg.URLs {
		t, err := config.ParseTarget(u)
		if err != nil {
			return nil, err
		}
		e.targets = append(e.targets, t)
	}
	var err error
	if e.sources, err = config.ParseSources(cfg.SourceAddrs); err != nil {
		return nil, err
	}
	e.poller, err = netpoll.New(netpoll.Config{OnError: func(error) { e.pollErrors.Add(1) }})
	if err != nil {
		return nil, err
	}
	if cfg.Auth == "jwt" {
		if e.tokens, err = e.signTokens(); err != nil {
			return nil, err
		}
	}
	n := runtime.GOMAXPROCS(0)
	for range n {
		e.readers = append(e.readers, &reader{e: e, buf: make([]byte, 0, readBufSize), hist: hist.New()})
	}
	return e, nil
}

// count is how many connections this worker holds: global indices
// Index, Index+Workers, Index+2·Workers, … below Conns.
func (e *Engine) count() int {
	return (e.cfg.Conns - e.spec.Index + e.spec.Workers - 1) / e.spec.Workers
}

// global returns the run-wide index of local slot k.
func (e *Engine) global(k int32) int { return e.spec.Index + int(k)*e.spec.Workers }

// Start allocates the per-connection state and starts the readers and
// dialers. It is separate from New so that the heap it takes can be
// measured per connection.
func (e *Engine) Start() {
	n := e.count()
	e.conns = make([]conn, n)
	if e.cfg.Scenario == config.ScenarioScale {
		e.bseq = make([]seqState, n)
	}
	if e.cfg.Scenario == config.ScenarioResume {
		ds := make([]durState, n)
		for k := range e.conns {
			e.conns[k].dur = &ds[k]
		}
	}
	e.ready = make(chan int32, 4*n+64)
	for _, r := range e.readers {
		e.readersWG.Add(1)
		go r.run()
	}
	dialers := min(e.cfg.Dialers, n)
	for range dialers {
		e.dialWG.Add(1)
		go (&dialer{e: e, buf: make([]byte, 0, 16<<10)}).run()
	}
}

// Ramp dials every connection of this worker at its share of the rate and
// returns when each one is welcomed or has failed.
func (e *Engine) Ramp() {
	n := e.count()
	e.rampWG.Add(n)
	rate := e.cfg.Rate / float64(e.spec.Workers)
	start := time.Now()
	for k := range n {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		if d := time.Until(due); d > time.Millisecond {
			time.Sleep(d)
		}
		e.dialq <- dialJob{k: int32(k)}
	}
	e.rampWG.Wait()
}

// Churn closes share of the open connections every second for d and
// reconnects them; it returns when the last reconnect has resolved.
func (e *Engine) Churn(d time.Duration, share float64) {
	rng := rand.New(rand.NewPCG(uint64(e.cfg.Seed), uint64(e.spec.Index)))
	per := int(math.Round(share * float64(len(e.conns))))
	if per == 0 && share > 0 {
		per = 1
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for range per {
			k := int32(rng.IntN(len(e.conns)))
			if e.closeForChurn(k) {
				e.reconnWG.Add(1)
				e.dialq <- dialJob{k: k, reconnect: true, since: time.Now()}
			}
		}
		<-tick.C
	}
	e.reconnWG.Wait()
}

// closeForChurn closes conn k like a mobile client that loses its network
// politely (close frame 1001), folding its sequence accounting.
func (e *Engine) closeForChurn(k int32) bool {
	c := &e.conns[k]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen {
		return false
	}
	writeClose(c.rc, 1001)
	e.release(c, stateIdle)
	e.mu.Lock()
	e.folded.addGaps(&c.seq)
	e.mu.Unlock()
	c.seq = seqState{}
	return true
}

// release stops observing c and closes its socket. c.mu must be held.
func (e *Engine) release(c *conn, next connState) {
	_ = e.poller.CloseSocket(c.desc, c.tcp)
	c.state, c.desc, c.tcp, c.rc, c.rem, c.deflate = next, nil, nil, nil, nil, false
	e.open.Add(-1)
}

// drop closes c after the server or the network ended it. c.mu must be
// held.
func (e *Engine) drop(c *conn, reason string) {
	e.release(c, stateClosed)
	e.mu.Lock()
	e.dropped[reason]++
	if e.cfg.Scenario == config.ScenarioChurn {
		e.folded.addGaps(&c.seq)
		c.seq = seqState{}
	}
	e.mu.Unlock()
}

func (e *Engine) fail(job dialJob, reason string) {
	if !job.reconnect && job.attempt < e.cfg.Retries {
		// Dial again after a backoff, as a client would: 1 s, 2 s, 4 s, …
		// with up to half of it again as jitter. The ramp waits for it.
		e.mu.Lock()
		e.retried[reason]++
		e.mu.Unlock()
		d := time.Second << job.attempt
		d += time.Duration(rand.Int64N(int64(d / 2)))
		job.attempt++
		time.AfterFunc(d, func() { e.dialq <- job })
		return
	}
	e.mu.Lock()
	e.failures[reason]++
	e.mu.Unlock()
	if job.reconnect {
		e.reconnectFailed.Add(1)
		e.reconnWG.Done()
		return
	}
	e.failed.Add(1)
	e.rampWG.Done()
}

// enqueue hands conn k to the readers. It never blocks: the channel has
// room for four events per connection, and one-shot registrations give
// at most one pending event per socket; the spill goroutine is a safety
// net.
func (e *Engine) enqueue(k int32) {
	select {
	case e.ready <- k:
	default:
		e.spill.Add(1)
		go func() {
			defer e.spill.Done()
			e.ready <- k
		}()
	}
}

// SetExpect tells the engine what was published to each channel and
// returns how many deliveries its open connections should get.
func (e *Engine) SetExpect(x *Expectation) int64 {
	var n int64
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		if c.state == stateOpen {
			n += int64(x.of(e.cfg, e.global(int32(k))))
			if e.bseq != nil {
				n += int64(x.Broadcast)
			}
		}
		c.mu.Unlock()
	}
	e.expectedOpen.Store(n)
	return n
}

// Finish closes every connection, stops the engine and returns its totals.
// x gives the expected seqs per channel (nil: churn, count gaps). The
// engine cannot be used afterwards.
func (e *Engine) Finish(x *Expectation) Totals {
	seq := e.finish(x)
	t := e.totals(seq)
	t.Resume = e.resumeTotals()
	t.Upstream = e.upstreamTotals()
	return t
}

func (e *Engine) finish(x *Expectation) SeqTotals {
	close(e.dialq)
	e.dialWG.Wait()
	var t SeqTotals
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		counted := c.state == stateClosed ||
			c.state == stateIdle && c.dur != nil && c.dur.cut // cut by resume and not reconnected: what it had counts
		if c.state == stateOpen {
			writeClose(c.rc, 1000)
			e.release(c, stateDone)
			counted = true
		}
		if counted {
			if x == nil || e.cfg.Scenario == config.ScenarioChurn {
				t.addGaps(&c.seq)
			} else {
				t.addKnown(&c.seq, x.of(e.cfg, e.global(int32(k))))
				if e.bseq != nil {
					t.addKnown(&e.bseq[k], x.Broadcast)
				}
			}
			c.state = stateDone
		}
		c.mu.Unlock()
	}
	e.mu.Lock()
	t.Merge(e.folded)
	e.mu.Unlock()
	_ = e.poller.Close()
	e.spill.Wait()
	close(e.ready)
	e.readersWG.Wait()
	return t
}

// deliveries sums the readers' deliveries; p99 is over every delivery so
// far, in microseconds.
func (e *Engine) deliveries() (delivered, p99, last int64) {
	h := hist.New()
	for _, r := range e.readers {
		r.mu.Lock()
		h.Merge(r.hist)
		last = max(last, r.lastDelivery)
		r.mu.Unlock()
		delivered += r.delivered.Load()
	}
	if h.TotalCount() > 0 {
		p99 = h.ValueAtQuantile(99)
	}
	return delivered, p99, last
}

// wire sums the readers' wire bytes and compressed frames of delivered
// messages.
func (e *Engine) wire() (frameBytes, compressed int64) {
	for _, r := range e.readers {
		r.mu.Lock()
		frameBytes += r.frameBytes
		compressed += r.compressed
		r.mu.Unlock()
	}
	return frameBytes, compressed
}

func (e *Engine) deliveryHist() *hdrhistogram.Histogram {
	h := hist.New()
	for _, r := range e.readers {
		r.mu.Lock()
		h.Merge(r.hist)
		r.mu.Unlock()
	}
	return h
}

// channel appends the channel conn g listens on, as the gateway names it.
func (e *Engine) channel(dst []byte, g int) []byte {
	switch e.cfg.Scenario {
	case config.ScenarioTopic:
		return strconv.AppendInt(append(dst, "topic.t"...), int64(g%e.cfg.Topics), 10)
	case config.ScenarioUnicast, config.ScenarioResume, config.ScenarioScale:
		dst = append(append(dst, "user."...), e.cfg.UserPrefix...)
		return strconv.AppendInt(dst, int64(g), 10)
	}
	return append(dst, "broadcast"...)
}

func atomicMin(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if old != 0 && old <= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func atomicMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if old >= v || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// Progress is an engine's state during a run.
type Progress struct {
	Open        int64 `json:"open"`
	Established int64 `json:"established"`
	Failed      int64 `json:"failed"`
	Reconnects  int64 `json:"reconnects"`
	Delivered   int64 `json:"delivered"`
	P99US       int64 `json:"p99_us"`   // delivery latency p99 so far, µs
	Resumed     int64 `json:"resumed"`  // resume: resumed answers read
	Complete    int64 `json:"complete"` // resume: connections that applied every expected notification
}

// Progress returns the engine's state now.
func (e *Engine) Progress() Progress {
	delivered, p99, _ := e.deliveries()
	return Progress{
		Open:        e.open.Load(),
		Established: e.established.Load(),
		Failed:      e.failed.Load(),
		Reconnects:  e.reconnects.Load(),
		Delivered:   delivered,
		P99US:       p99,
		Resumed:     e.resumedN.Load(),
		Complete:    e.complete.Load(),
	}
}

// Totals are an engine's figures when it finished. The histograms are in
// the form of hist.Encode, ready for the worker pipe.
type Totals struct {
	Established     int64            `json:"established"`
	DeflateAccepted int64            `json:"deflate_accepted"`
	Failed          int64            `json:"failed"`
	Failures        map[string]int64 `json:"failures"` // handshake failures by reason
	Retried         map[string]int64 `json:"retried"`  // ramp dials that failed and were retried (--retries), by reason
	Dropped         map[string]int64 `json:"dropped"`  // connections closed after their welcome, by reason
	Reconnects      int64            `json:"reconnects"`
	ReconnectFailed int64            `json:"reconnect_failed"`
	Seq             SeqTotals        `json:"seq"`
	Delivered       int64            `json:"delivered"`
	FrameBytes      int64            `json:"frame_bytes"`
	Compressed      int64            `json:"compressed"`
	Misrouted       int64            `json:"misrouted"`
	Unsequenced     int64            `json:"unsequenced"`
	Handshakes      string           `json:"handshakes"` // encoded HDR histograms, µs
	Deliveries      string           `json:"deliveries"`
	Reconnect       string           `json:"reconnect"`
	FirstDialNS     int64            `json:"first_dial_ns"`
	LastWelcomeNS   int64            `json:"last_welcome_ns"`
	LastDeliveryNS  int64            `json:"last_delivery_ns"`
	PollErrors      int64            `json:"poll_errors"`
	Resume          *ResumeTotals    `json:"resume,omitempty"`
	// ServerCloses (control) is when each connection closed by the server
	// read its close frame: global index → unix ns.
	ServerCloses map[int]int64   `json:"server_closes,omitempty"`
	Upstream     *UpstreamTotals `json:"upstream,omitempty"`
}

func (e *Engine) totals(t SeqTotals) Totals {
	delivered, _, last := e.deliveries()
	frameBytes, compressed := e.wire()
	e.mu.Lock()
	defer e.mu.Unlock()
	return Totals{
		Established:     e.established.Load(),
		DeflateAccepted: e.deflated.Load(),
		Failed:          e.failed.Load(),
		Failures:        e.failures,
		Retried:         e.retried,
		Dropped:         e.dropped,
		Reconnects:      e.reconnects.Load(),
		ReconnectFailed: e.reconnectFailed.Load(),
		Seq:             t,
		Delivered:       delivered,
		FrameBytes:      frameBytes,
		Compressed:      compressed,
		Misrouted:       e.misrouted.Load(),
		Unsequenced:     e.unsequenced.Load(),
		Handshakes:      hist.Encode(e.handshakes.Snapshot()),
		Deliveries:      hist.Encode(e.deliveryHist()),
		Reconnect:       hist.Encode(e.reconnHist.Snapshot()),
		FirstDialNS:     e.firstDial.Load(),
		LastWelcomeNS:   e.lastWelcome.Load(),
		LastDeliveryNS:  last,
		PollErrors:      e.pollErrors.Load(),
		ServerCloses:    e.serverCloses,
	}
}
