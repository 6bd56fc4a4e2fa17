package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
)

// runConfig is what `crosscheck run` is asked to do.
type runConfig struct {
	Label         string
	URL           string        // the server's WebSocket endpoint; ?user= is added
	NATS          string        // where the broadcasts are published
	SubjectPrefix string        // the servers' subject prefix: <prefix>.broadcast
	Conns         int           // connections, each a user of its own
	Dialers       int           // connections dialing (dial + handshake + welcome) at once
	UserPrefix    string        // connection i is user <UserPrefix><i>
	Messages      int           // broadcasts; 0 skips the broadcast phase
	MsgRate       float64       // broadcasts per second
	PayloadSize   int           // bytes of each broadcast's payload
	ServerPID     int           // the process whose CPU and RSS are sampled; 0 samples nothing
	Settle        time.Duration // idle time between the last welcome and the RSS sample
	Timeout       time.Duration // how long after the last publish to wait for deliveries
	DialTimeout   time.Duration // for the handshake, and again for the welcome
	Log           io.Writer     // the first failure of each kind; nil discards
}

// result is what `crosscheck run --json` writes. Server figures are zero
// when no --server-pid was given.
type result struct {
	Label     string    `json:"label"`
	URL       string    `json:"url"`
	StartedAt time.Time `json:"started_at"`

	ConnsAsked       int            `json:"conns_asked"`
	ConnsEstablished int            `json:"conns_established"`
	ConnsFailed      int            `json:"conns_failed"`
	FailReasons      map[string]int `json:"fail_reasons,omitempty"`
	Dialers          int            `json:"dialers"`

	// The ramp: first dial → last welcome.
	ConnectSeconds        float64 `json:"connect_seconds"`
	ConnectRatePerS       float64 `json:"connect_rate_per_s"`
	ServerCPUUSPerConnect float64 `json:"server_cpu_us_per_connect"`
	ServerRSSBefore       int64   `json:"server_rss_before_bytes"`
	ServerRSSIdle         int64   `json:"server_rss_idle_bytes"` // Settle after the last welcome
	RSSBytesPerIdleConn   float64 `json:"rss_bytes_per_idle_conn"`

	// The broadcast phase: first publish → last delivery, or Timeout after
	// the last publish.
	Messages            int            `json:"messages"`
	MsgRate             float64        `json:"msg_rate"`
	PayloadBytes        int            `json:"payload_bytes"`
	DeliveriesExpected  int64          `json:"deliveries_expected"` // messages × established
	Delivered           int64          `json:"deliveries_delivered"`
	Lost                int64          `json:"deliveries_lost"`
	Duplicated          int64          `json:"deliveries_dup"`
	Reordered           int64          `json:"deliveries_reordered"` // a seq below one the connection already had
	OtherFrames         int64          `json:"other_frames"`         // frames without a payload of this run
	ClosedEarly         map[string]int `json:"closed_early,omitempty"`
	LatencyMS           latency        `json:"latency_ms"` // receive − publish, per delivery
	BroadcastSeconds    float64        `json:"broadcast_seconds"`
	ServerCPUBroadcastS float64        `json:"server_cpu_broadcast_s"`
	ServerCPUSPerM      float64        `json:"server_cpu_s_per_million"`

	ClientCPURampS      float64 `json:"client_cpu_ramp_s"`
	ClientCPUBroadcastS float64 `json:"client_cpu_broadcast_s"`
}

type latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// runner is one `crosscheck run`. Each connection has one goroutine, which
// dials and then blocks in ReadMessage until the client closes it.
type runner struct {
	cfg    runConfig
	log    io.Writer
	dialer websocket.Dialer
	dials  chan struct{} // a token per dial under way, Dialers at most

	ramp    sync.WaitGroup // one per connection until welcomed or failed
	readers sync.WaitGroup // one per connection goroutine

	lastWelcome atomic.Int64 // unix ns
	remaining   atomic.Int64 // welcomed connections with neither every broadcast nor an end
	ending      atomic.Bool  // set before the client closes its connections

	mu       sync.Mutex // protects conns and failures
	conns    []*conn
	failures map[string]int
}

// conn is one connection's delivery accounting, written by its goroutine
// only and read after it has ended.
type conn struct {
	ws        *websocket.Conn
	seen      []bool  // by seq, 1…Messages
	lat       []int64 // µs, per first delivery
	maxSeq    uint32
	dup       int64
	reordered int64
	other     int64
	closed    string // why the connection ended before the client closed it; "" if it did not
}

// run connects, measures the ramp and the idle connections, broadcasts,
// and returns the result. Failed connections are counted, not errors; an
// error means there was nothing to measure.
func run(ctx context.Context, cfg runConfig) (*result, error) {
	r := &runner{
		cfg: cfg,
		log: cmp.Or[io.Writer](cfg.Log, io.Discard),
		dialer: websocket.Dialer{
			HandshakeTimeout: cfg.DialTimeout,
			ReadBufferSize:   1024, // a broadcast frame is a few hundred bytes
			WriteBufferPool:  &sync.Pool{},
		},
		dials:    make(chan struct{}, max(1, cfg.Dialers)),
		failures: make(map[string]int),
	}
	res := &result{Label: cfg.Label, URL: cfg.URL, StartedAt: time.Now().UTC(), ConnsAsked: cfg.Conns, Dialers: cfg.Dialers,
		Messages: cfg.Messages, MsgRate: cfg.MsgRate, PayloadBytes: cfg.PayloadSize}
	var nc *nats.Conn
	if cfg.Messages > 0 {
		var err error
		if nc, err = nats.Connect(cfg.NATS, nats.Name("crosscheck")); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		defer nc.Close()
	}
	srv := &probe{pid: cfg.ServerPID}

	res.ServerRSSBefore = srv.rss()
	r.connect(ctx, res, srv)
	defer r.close()
	if res.ConnsEstablished == 0 {
		return res, errors.New("no connection was established")
	}
	if err := sleep(ctx, cfg.Settle); err != nil {
		return res, err
	}
	res.ServerRSSIdle = srv.rss()
	res.RSSBytesPerIdleConn = float64(res.ServerRSSIdle-res.ServerRSSBefore) / float64(res.ConnsEstablished)
	if cfg.Messages > 0 {
		if err := r.broadcast(ctx, nc, res, srv); err != nil {
			return res, err
		}
	}
	r.close()
	r.account(res)
	return res, srv.err
}

// connect dials every connection, Dialers at a time, and returns when each
// is established or has failed.
func (r *runner) connect(ctx context.Context, res *result, srv *probe) {
	cpu0, self0 := srv.cpu(), selfCPU()
	start := time.Now()
	for i := range r.cfg.Conns {
		r.ramp.Add(1)
		r.readers.Add(1)
		go r.connection(ctx, i)
	}
	r.ramp.Wait()
	cpu1, self1 := srv.cpu(), selfCPU()
	est := len(r.conns) // each goroutine appends before its ramp.Done
	res.ConnsEstablished, res.ConnsFailed, res.FailReasons = est, r.cfg.Conns-est, r.failures
	res.ClientCPURampS = self1 - self0
	if est > 0 {
		res.ConnectSeconds = time.Unix(0, r.lastWelcome.Load()).Sub(start).Seconds()
		res.ConnectRatePerS = float64(est) / res.ConnectSeconds
		res.ServerCPUUSPerConnect = (cpu1 - cpu0) * 1e6 / float64(est)
	}
}

// broadcast publishes the broadcasts and waits for their deliveries,
// measuring the server's CPU and the client's from the first publish.
func (r *runner) broadcast(ctx context.Context, nc *nats.Conn, res *result, srv *probe) error {
	cpu0, self0 := srv.cpu(), selfCPU()
	first := time.Now()
	if err := r.publish(ctx, nc, first); err != nil {
		return err
	}
	r.await(ctx, time.Now().Add(r.cfg.Timeout))
	res.BroadcastSeconds = time.Since(first).Seconds()
	res.ServerCPUBroadcastS = srv.cpu() - cpu0
	res.ClientCPUBroadcastS = selfCPU() - self0
	return nil
}

// connection dials connection i, waits for its first frame and then reads
// until the connection ends.
func (r *runner) connection(ctx context.Context, i int) {
	defer r.readers.Done()
	r.dials <- struct{}{}
	ws, reason, err := r.dial(ctx, i)
	<-r.dials
	if ws == nil {
		r.mu.Lock()
		if r.failures[reason] == 0 {
			fmt.Fprintf(r.log, "%s: first %s failure: %v\n", r.cfg.Label, reason, err)
		}
		r.failures[reason]++
		r.mu.Unlock()
		r.ramp.Done()
		return
	}
	c := &conn{ws: ws, seen: make([]bool, r.cfg.Messages+1), lat: make([]int64, 0, r.cfg.Messages)}
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
	if r.cfg.Messages > 0 {
		r.remaining.Add(1)
	}
	storeMax(&r.lastWelcome, time.Now().UnixNano())
	r.ramp.Done()
	c.read(r)
}

// dial opens connection i and reads its first frame, the welcome (wsgate,
// the baseline and the floor server all send one first), which makes it
// established. It returns the reason of a failure.
func (r *runner) dial(ctx context.Context, i int) (*websocket.Conn, string, error) {
	u, err := url.Parse(r.cfg.URL)
	if err != nil {
		return nil, "url", err
	}
	q := u.Query()
	q.Set("user", r.cfg.UserPrefix+strconv.Itoa(i))
	u.RawQuery = q.Encode()
	ws, resp, err := r.dialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			return nil, "http_" + strconv.Itoa(resp.StatusCode), err
		}
		return nil, "dial_" + errReason(err), err
	}
	_ = ws.SetReadDeadline(time.Now().Add(r.cfg.DialTimeout))
	_, msg, err := ws.ReadMessage()
	if err == nil && !bytes.Contains(msg, []byte(`"type":"welcome"`)) {
		err = fmt.Errorf("first frame is not a welcome: %.80s", msg)
	}
	if err != nil {
		ws.Close()
		return nil, "welcome_" + errReason(err), err
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, "", nil
}

// read reads frames until the connection ends, recording each broadcast.
// gorilla answers the server's pings inside ReadMessage.
func (c *conn) read(r *runner) {
	m := r.cfg.Messages
	done := m == 0
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			if !r.ending.Load() {
				c.closed = errReason(err)
			}
			if !done {
				r.remaining.Add(-1)
			}
			return
		}
		now := time.Now().UnixNano()
		seq, ts, ok := parseDelivery(msg)
		switch {
		case !ok || seq == 0 || int(seq) > m:
			c.other++
		case c.seen[seq]:
			c.dup++
		default:
			c.seen[seq] = true
			c.lat = append(c.lat, (now-ts)/1e3)
			if seq < c.maxSeq {
				c.reordered++
			}
			c.maxSeq = max(c.maxSeq, seq)
			if len(c.lat) == m {
				done = true
				r.remaining.Add(-1)
			}
		}
	}
}

// publish publishes the broadcasts at MsgRate from first, each stamped with
// its publish time just before it leaves.
func (r *runner) publish(ctx context.Context, nc *nats.Conn, first time.Time) error {
	subject := r.cfg.SubjectPrefix + ".broadcast"
	buf := make([]byte, 0, r.cfg.PayloadSize+48)
	for seq := 1; seq <= r.cfg.Messages; seq++ {
		due := first.Add(time.Duration(float64(seq-1) / r.cfg.MsgRate * float64(time.Second)))
		if err := sleep(ctx, time.Until(due)); err != nil {
			return err
		}
		buf = appendPayload(buf[:0], uint32(seq), time.Now().UnixNano(), r.cfg.PayloadSize)
		if err := nc.Publish(subject, buf); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		// Out now rather than when nats.go's flusher gets to it; the round
		// trip also tells us that NATS has taken it.
		if err := nc.Flush(); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nil
}

// await returns when every connection has every broadcast or has ended, or
// at deadline.
func (r *runner) await(ctx context.Context, deadline time.Time) {
	for r.remaining.Load() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
}

// close closes every connection from the client side and waits for their
// goroutines. It may be called more than once.
func (r *runner) close() {
	r.ending.Store(true)
	r.mu.Lock()
	for _, c := range r.conns {
		c.ws.Close()
	}
	r.mu.Unlock()
	r.readers.Wait()
}

// account adds up the connections' deliveries into res; the goroutines
// have ended.
func (r *runner) account(res *result) {
	h := hdrhistogram.New(1, 60_000_000, 3) // µs, 1 µs to 60 s, 0.1%
	for _, c := range r.conns {
		for _, us := range c.lat {
			_ = h.RecordValue(min(max(us, 0), 60_000_000)) // publisher and receiver share a clock; clamp anyway
		}
		res.Delivered += int64(len(c.lat))
		res.Duplicated += c.dup
		res.Reordered += c.reordered
		res.OtherFrames += c.other
		if c.closed != "" {
			if res.ClosedEarly == nil {
				res.ClosedEarly = make(map[string]int)
			}
			res.ClosedEarly[c.closed]++
		}
	}
	res.DeliveriesExpected = int64(r.cfg.Messages) * int64(len(r.conns))
	res.Lost = res.DeliveriesExpected - res.Delivered
	if res.Delivered > 0 {
		res.ServerCPUSPerM = res.ServerCPUBroadcastS * 1e6 / float64(res.Delivered)
	}
	if h.TotalCount() > 0 {
		ms := func(us int64) float64 { return float64(us) / 1e3 }
		res.LatencyMS = latency{P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
			P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())}
	}
}

// errReason names the kind of a connection error, for counting.
func errReason(err error) string {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return "close_" + strconv.Itoa(ce.Code)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no_local_port"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, websocket.ErrBadHandshake):
		return "bad_handshake"
	}
	return "other"
}

// storeMax raises v to n.
func storeMax(v *atomic.Int64, n int64) {
	for old := v.Load(); n > old && !v.CompareAndSwap(old, n); old = v.Load() {
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probe samples the server process; with pid 0 every sample is zero. It
// keeps the first error.
type probe struct {
	pid int
	err error
}

func (p *probe) cpu() float64 {
	if p.pid == 0 {
		return 0
	}
	v, err := serverCPU(p.pid)
	if p.err == nil {
		p.err = err
	}
	return v
}

func (p *probe) rss() int64 {
	if p.pid == 0 {
		return 0
	}
	v, err := serverRSS(p.pid)
	if p.err == nil {
		p.err = err
	}
	return v
}
