package bench

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/rawio"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/netpoll"
)

// The engine is one worker's client side: dialer goroutines that ramp
// connections and hand them to a netpoll Poller, and one reader goroutine
// per CPU that the poller's callbacks feed with connection indices. After
// its handshake a connection has no goroutine: it is a conn in a slice
// and one one-shot registration in the epoll set.

// connState is where a conn is in its life.
type connState uint8

const (
	stateIdle   connState = iota // no socket: not dialed yet, failed, or closed by churn
	stateOpen                    // welcomed and observed by the poller
	stateClosed                  // closed by the server or the network after its welcome
	stateDone                    // closed by finish
)

// conn is the harness state of one client connection (see
// Result.Client.ConnStructBytes for its size).
type conn struct {
	mu      sync.Mutex // held by a reader for one read task and by churn and finish to close
	tcp     *net.TCPConn
	rc      syscall.RawConn
	desc    *netpoll.Desc
	rem     *[]byte // bytes of an incomplete frame; nil when none
	seq     seqState
	state   connState
	deflate bool // its 101 accepted permessage-deflate: RSV1 frames are allowed
}

const (
	readBufSize = 64 << 10  // per reader goroutine
	readBudget  = 256 << 10 // bytes one read task takes before re-arming
)

type engine struct {
	spec      workerSpec
	cfg       *Config
	targets   []target
	sources   []net.IP
	secret    []byte
	poller    *netpoll.Poller
	conns     []conn
	ready     chan int32     // indices of readable conns; capacity 4 × conns
	spill     sync.WaitGroup // sends to ready that found it full
	readers   []*reader
	readersWG sync.WaitGroup
	dialq     chan dialJob
	dialWG    sync.WaitGroup
	rampWG    sync.WaitGroup // initial connects not resolved yet
	reconnWG  sync.WaitGroup // churn reconnects not resolved yet

	handshakes *lockedHist // dial start → welcome (and subscribed), initial ramp
	reconnHist *lockedHist // close → welcome, churn

	mu       sync.Mutex // protects the fields below
	failures map[string]int64
	dropped  map[string]int64
	folded   seqTotals // churn: connections folded when they closed

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
}

type dialJob struct {
	k         int32
	reconnect bool
	since     time.Time // reconnect: when the old socket was closed
}

func newEngine(spec workerSpec) (*engine, error) {
	cfg := &spec.Config
	e := &engine{
		spec:       spec,
		cfg:        cfg,
		secret:     []byte(spec.JWTSecret),
		handshakes: newLockedHist(),
		reconnHist: newLockedHist(),
		failures:   map[string]int64{},
		dropped:    map[string]int64{},
		dialq:      make(chan dialJob),
	}
	for _, u := range cfg.URLs {
		t, err := parseTarget(u)
		if err != nil {
			return nil, err
		}
		e.targets = append(e.targets, t)
	}
	var err error
	if e.sources, err = parseSources(cfg.SourceAddrs); err != nil {
		return nil, err
	}
	e.poller, err = netpoll.New(netpoll.Config{OnError: func(error) { e.pollErrors.Add(1) }})
	if err != nil {
		return nil, err
	}
	n := runtime.GOMAXPROCS(0)
	for range n {
		e.readers = append(e.readers, &reader{e: e, buf: make([]byte, 0, readBufSize), hist: newHist()})
	}
	return e, nil
}

// count is how many connections this worker holds: global indices
// Index, Index+Workers, Index+2·Workers, … below Conns.
func (e *engine) count() int {
	return (e.cfg.Conns - e.spec.Index + e.spec.Workers - 1) / e.spec.Workers
}

// global returns the run-wide index of local slot k.
func (e *engine) global(k int32) int { return e.spec.Index + int(k)*e.spec.Workers }

// allocConns allocates the per-connection state and starts the readers and
// dialers. It is separate from newEngine so that the heap it takes can be
// measured per connection.
func (e *engine) allocConns() {
	n := e.count()
	e.conns = make([]conn, n)
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

// ramp dials every connection of this worker at its share of the rate and
// returns when each one is welcomed or has failed.
func (e *engine) ramp() {
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

// churn closes share of the open connections every second for d and
// reconnects them; it returns when the last reconnect has resolved.
func (e *engine) churn(d time.Duration, share float64) {
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
func (e *engine) closeForChurn(k int32) bool {
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
func (e *engine) release(c *conn, next connState) {
	_ = e.poller.Release(c.desc, c.tcp)
	c.state, c.desc, c.tcp, c.rc, c.rem, c.deflate = next, nil, nil, nil, nil, false
	e.open.Add(-1)
}

// drop closes c after the server or the network ended it. c.mu must be
// held.
func (e *engine) drop(c *conn, reason string) {
	e.release(c, stateClosed)
	e.mu.Lock()
	e.dropped[reason]++
	if e.cfg.Scenario == ScenarioChurn {
		e.folded.addGaps(&c.seq)
		c.seq = seqState{}
	}
	e.mu.Unlock()
}

func (e *engine) fail(job dialJob, reason string) {
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
func (e *engine) enqueue(k int32) {
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

// setExpect computes how many deliveries the open connections should get.
func (e *engine) setExpect(x *expectation) int64 {
	var n int64
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		if c.state == stateOpen {
			n += int64(x.of(e.cfg, e.global(int32(k))))
		}
		c.mu.Unlock()
	}
	e.expectedOpen.Store(n)
	return n
}

// finish closes every connection, stops the engine and returns the
// accounting. x gives the expected seqs per channel (nil: churn, count
// gaps).
func (e *engine) finish(x *expectation) seqTotals {
	close(e.dialq)
	e.dialWG.Wait()
	var t seqTotals
	for k := range e.conns {
		c := &e.conns[k]
		c.mu.Lock()
		switch c.state {
		case stateOpen:
			writeClose(c.rc, 1000)
			e.release(c, stateDone)
			fallthrough
		case stateClosed:
			if x == nil || e.cfg.Scenario == ScenarioChurn {
				t.addGaps(&c.seq)
			} else {
				t.addKnown(&c.seq, x.of(e.cfg, e.global(int32(k))))
			}
			c.state = stateDone
		}
		c.mu.Unlock()
	}
	e.mu.Lock()
	t.merge(e.folded)
	e.mu.Unlock()
	_ = e.poller.Close()
	e.spill.Wait()
	close(e.ready)
	e.readersWG.Wait()
	return t
}

// delivered sums the readers' deliveries; p99 is over every delivery so
// far, in microseconds.
func (e *engine) deliveries() (delivered, p99, last int64) {
	h := newHist()
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
func (e *engine) wire() (frameBytes, compressed int64) {
	for _, r := range e.readers {
		r.mu.Lock()
		frameBytes += r.frameBytes
		compressed += r.compressed
		r.mu.Unlock()
	}
	return frameBytes, compressed
}

func (e *engine) deliveryHist() *hdrhistogram.Histogram {
	h := newHist()
	for _, r := range e.readers {
		r.mu.Lock()
		h.Merge(r.hist)
		r.mu.Unlock()
	}
	return h
}

// channel appends the channel conn g listens on, as the gateway names it.
func (e *engine) channel(dst []byte, g int) []byte {
	switch e.cfg.Scenario {
	case ScenarioTopic:
		return strconv.AppendInt(append(dst, "topic.t"...), int64(g%e.cfg.Topics), 10)
	case ScenarioUnicast:
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

// reader is one reader goroutine with its own buffer and histogram.
type reader struct {
	e     *engine
	buf   []byte
	out   []byte // scratch for pongs and close frames
	chbuf []byte // scratch for the expected channel name
	// With Config.InflateOnce: the last compressed payload inflated and
	// what it inflated to. Without context takeover equal bytes inflate
	// to equal messages, so a repeat is served from here.
	zlast, zout []byte

	mu           sync.Mutex // protects hist, lastDelivery, frameBytes and compressed; held for one read task
	hist         *hdrhistogram.Histogram
	lastDelivery int64 // unix ns
	frameBytes   int64 // wire bytes (header and payload as read) of the delivered message frames
	compressed   int64 // delivered message frames that came compressed
	delivered    atomic.Int64
}

func (r *reader) run() {
	defer r.e.readersWG.Done()
	for k := range r.e.ready {
		r.serve(k)
	}
}

// serve is one read task: read what the kernel holds without blocking,
// handle every complete frame, keep an incomplete one, re-arm.
func (r *reader) serve(k int32) {
	e := r.e
	c := &e.conns[k]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen {
		return // a stale event, or an enqueue racing a close
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	buf := r.buf[:0]
	if c.rem != nil { // an incomplete frame, or bytes that came with the welcome
		buf = append(buf, *c.rem...)
		c.rem = nil
		used, reason := r.consume(c, k, buf, time.Now().UnixNano())
		if reason != "" {
			e.drop(c, reason)
			return
		}
		buf = buf[:copy(buf, buf[used:])]
	}
	for total := 0; total < readBudget; {
		if len(buf) == cap(buf) { // a frame bigger than the buffer
			nb := make([]byte, len(buf), 2*cap(buf))
			copy(nb, buf)
			buf = nb
		}
		room := cap(buf) - len(buf)
		n, err := rawio.Read(c.rc, buf[len(buf):cap(buf)])
		if n == 0 {
			if err != nil {
				e.drop(c, readReason(err))
				return
			}
			break // EAGAIN
		}
		now := time.Now().UnixNano()
		buf = buf[:len(buf)+n]
		total += n
		used, reason := r.consume(c, k, buf, now)
		if reason != "" {
			e.drop(c, reason)
			return
		}
		buf = buf[:copy(buf, buf[used:])]
		if n < room {
			// The kernel had less than we asked for: re-arm instead of a
			// read that would only say EAGAIN. The registration is
			// level-triggered, so bytes that arrived meanwhile fire at once.
			break
		}
	}
	if cap(buf) <= 4*readBufSize {
		r.buf = buf[:0] // keep a grown buffer unless it is huge
	}
	if len(buf) > 0 {
		rem := append([]byte(nil), buf...)
		c.rem = &rem
	}
	if err := e.poller.Resume(c.desc); err != nil {
		e.drop(c, "poller")
	}
}

// consume handles the complete frames at the start of buf and returns how
// many bytes they took, or the reason to drop the connection.
func (r *reader) consume(c *conn, k int32, buf []byte, now int64) (int, string) {
	used := 0
	for {
		f, n, err := parseFrame(buf[used:], maxFramePayload, c.deflate)
		if err != nil {
			return used, "protocol"
		}
		if n == 0 {
			return used, ""
		}
		used += n
		switch f.op {
		case opText:
			if !f.compressed {
				r.onText(c, k, f.payload, n, false, now)
				break
			}
			if !r.inflateText(c, k, f.payload, n, now) {
				return used, "inflate"
			}
		case opPing:
			r.out = appendClientFrame(r.out[:0], opPong, f.payload)
			_, _ = rawio.Write(c.rc, r.out)
		case opClose:
			code := closeCode(f.payload)
			writeClose(c.rc, code)
			return used, "server_close_" + strconv.Itoa(code)
		}
	}
}

// inflateText inflates the compressed text message z, which came in a
// frame of wire bytes, and handles it. It reports false when z does not
// inflate.
func (r *reader) inflateText(c *conn, k int32, z []byte, wire int, now int64) bool {
	if r.e.cfg.InflateOnce && r.zlast != nil && bytes.Equal(z, r.zlast) {
		r.onText(c, k, r.zout, wire, true, now)
		return true
	}
	fl := getInflater()
	defer fl.put()
	p, err := fl.inflate(z, maxFramePayload)
	if err != nil {
		return false
	}
	if r.e.cfg.InflateOnce {
		r.zlast = append(r.zlast[:0], z...)
		r.zout = append(r.zout[:0], p...)
	}
	r.onText(c, k, p, wire, true, now)
	return true
}

// onText handles the text message p, which came in a frame of wire bytes,
// compressed or not.
func (r *reader) onText(c *conn, k int32, p []byte, wire int, compressed bool, now int64) {
	m := parseMessage(p)
	if m.kind != kindMessage {
		return
	}
	e := r.e
	if m.seq == 0 || m.ts == 0 {
		e.unsequenced.Add(1)
		return
	}
	r.chbuf = e.channel(r.chbuf[:0], e.global(k))
	if string(m.channel) != string(r.chbuf) {
		e.misrouted.Add(1)
		return
	}
	c.seq.add(m.seq)
	recordUS(r.hist, (now-m.ts)/1000)
	r.lastDelivery = now
	r.frameBytes += int64(wire)
	if compressed {
		r.compressed++
	}
	r.delivered.Add(1)
}

func readReason(err error) string {
	switch {
	case errors.Is(err, rawio.ErrEOF):
		return "eof"
	case errors.Is(err, unix.ECONNRESET):
		return "reset"
	}
	return "read_error"
}

// writeClose sends a masked close frame with code, best effort: the socket
// is non-blocking and a close frame always fits an empty send buffer.
func writeClose(rc syscall.RawConn, code int) {
	if rc == nil {
		return
	}
	if code == 1005 || code == 1006 || code == 1015 {
		code = 1000
	}
	p := [2]byte{byte(code >> 8), byte(code)}
	b := appendClientFrame(make([]byte, 0, 8), opClose, p[:])
	_, _ = rawio.Write(rc, b)
}
