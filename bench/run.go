package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bus"
)

// Run runs cfg's scenario and returns its result. It writes a progress
// line to progress once a second (nil: none); when progress is a terminal
// the line is rewritten in place. It returns an error only when the run
// could not be carried out; failures of connections and deliveries are in
// the Result.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	r := &runner{
		cfg:    cfg,
		prog:   progress,
		tty:    isTerminal(progress),
		probe:  newServerProbe(cfg.ServerPIDs, cfg.ServerMetrics),
		events: make(chan workerEvent, 32*cfg.Workers),
	}
	r.phase.Store("start")
	return r.run(ctx)
}

type runner struct {
	cfg     Config
	prog    io.Writer
	tty     bool
	probe   *serverProbe
	workers []*workerHandle
	events  chan workerEvent
	floors  []*floorHandle
	nc      *nats.Conn
	pub     *bus.Publisher
	start   time.Time
	phase   atomic.Value // string
	buf     []byte       // payload scratch of the publishing goroutine
	cpu0    float64      // this process's CPU seconds when Run started

	mu       sync.Mutex // protects timeline and warnings
	timeline []Sample
	warnings []string
}

func (r *runner) warn(format string, a ...any) {
	r.mu.Lock()
	r.warnings = append(r.warnings, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	cfg := &r.cfg
	r.start = time.Now()
	r.cpu0, _ = selfUsage()
	res := &Result{
		Label:     cfg.Label,
		Scenario:  cfg.Scenario,
		StartedAt: r.start.UTC(),
		Config:    *cfg,
		Machine:   machine(),
	}
	if cfg.Scenario == ScenarioFloor {
		if err := r.startFloors(); err != nil {
			r.stopFloors()
			return nil, err
		}
		defer r.stopFloors()
	} else if cfg.Scenario != ScenarioConnect {
		nc, err := bus.Dial(cfg.NATS, "wsbench")
		if err != nil {
			return nil, err
		}
		defer nc.Close()
		r.nc, r.pub = nc, bus.NewPublisher(nc, cfg.SubjectPrefix)
	}

	var floorAddrs []string
	for _, f := range r.floors {
		floorAddrs = append(floorAddrs, f.addr)
	}
	workers, err := startWorkers(cfg.Workers, func(i int) workerSpec {
		return workerSpec{Config: *cfg, JWTSecret: cfg.JWTSecret, Index: i, Workers: cfg.Workers, FloorAddrs: floorAddrs}
	}, r.events)
	r.workers = workers
	defer func() {
		for _, w := range r.workers {
			w.stop()
		}
	}()
	if err != nil {
		return nil, err
	}

	monCtx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		r.monitor(monCtx)
	}()
	defer func() {
		stopMon()
		<-monDone
	}()

	before, err := r.probe.sample(ctx)
	if err != nil {
		return nil, fmt.Errorf("sample the server: %w", err)
	}

	// Ramp.
	r.phase.Store("ramp")
	if _, err := r.all(ctx, workerCmd{Cmd: "connect"}, "connected"); err != nil {
		return nil, err
	}
	r.phase.Store("settle")
	if err := sleep(ctx, cfg.Settle.D()); err != nil {
		return nil, err
	}
	after, err := r.probe.sample(ctx)
	if err != nil {
		return nil, fmt.Errorf("sample the server: %w", err)
	}

	// The scenario proper. The measured window runs from the sample before
	// the first publish to the sample after the drain.
	var (
		x          *expectation
		published  int64
		pubStart   time.Time
		cpu0       = after.CPU
		written0   = after.Written
		clientCPU0 = -1.0
		floorDone  floorReport
	)
	switch cfg.Scenario {
	case ScenarioConnect:
		r.phase.Store("hold")
		if err := sleep(ctx, cfg.Hold.D()); err != nil {
			return nil, err
		}
	case ScenarioBroadcast, ScenarioTopic, ScenarioUnicast:
		r.phase.Store("publish")
		if s, err := r.probe.sample(ctx); err == nil {
			cpu0, written0 = s.CPU, s.Written
		}
		clientCPU0 = r.clientCPU()
		pubStart = time.Now()
		x, published, err = r.publish(ctx)
		if err != nil {
			return nil, err
		}
		if err := r.drain(ctx, x); err != nil {
			return nil, err
		}
	case ScenarioChurn:
		r.phase.Store("churn")
		if s, err := r.probe.sample(ctx); err == nil {
			cpu0, written0 = s.CPU, s.Written
		}
		clientCPU0 = r.clientCPU()
		pubStart = time.Now()
		var pubErr error
		var pubWG sync.WaitGroup
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			_, published, pubErr = r.publish(ctx)
		}()
		_, err := r.all(ctx, workerCmd{Cmd: "churn", Churn: cfg.Hold}, "churned")
		pubWG.Wait()
		if err != nil {
			return nil, err
		}
		if pubErr != nil {
			return nil, pubErr
		}
		r.phase.Store("drain")
		if err := r.settleDeliveries(ctx); err != nil {
			return nil, err
		}
	case ScenarioFloor:
		r.phase.Store("publish")
		clientCPU0 = r.clientCPU()
		pubStart = time.Now()
		floorDone, err = r.runFloors(ctx)
		if err != nil {
			return nil, err
		}
		published = int64(cfg.Messages)
		x = &expectation{Broadcast: uint32(cfg.Messages)}
		if err := r.drain(ctx, x); err != nil {
			return nil, err
		}
	}
	end, _ := r.probe.sample(ctx)
	clientCPU1 := r.clientCPU()

	// Finish: every worker closes its connections and reports.
	r.phase.Store("finish")
	results, err := r.all(ctx, workerCmd{Cmd: "finish", Expect: x}, "result")
	if err != nil {
		return nil, err
	}
	stopMon()
	<-monDone
	r.merge(res, results, pubStart)
	res.Delivery.Published = published

	// Server figures.
	s := &res.Server
	*s = Server{RSSBefore: before.RSS, RSSAfter: after.RSS, RSSPerConn: -1,
		GoroutinesBefore: before.Goroutines, GoroutinesAfter: after.Goroutines, GoroutinesPerConn: -1,
		CPUSeconds: -1, CPUPerMillionDeliv: -1, RampCPUSeconds: -1, CPUPerConnectUs: -1,
		WrittenBytes: -1, WrittenPerDeliv: -1}
	if before.CPU >= 0 && after.CPU >= 0 && cfg.Scenario != ScenarioFloor {
		s.RampCPUSeconds = after.CPU - before.CPU
		if n := float64(res.Conns.Established); n > 0 {
			s.CPUPerConnectUs = s.RampCPUSeconds / n * 1e6
		}
	}
	if n := float64(res.Conns.Established); n > 0 {
		if before.RSS >= 0 {
			s.RSSPerConn = float64(after.RSS-before.RSS) / n
		}
		if before.Goroutines >= 0 {
			s.GoroutinesPerConn = float64(after.Goroutines-before.Goroutines) / n
		}
	}
	if cfg.Scenario != ScenarioConnect && end.CPU >= 0 {
		s.CPUSeconds = end.CPU - cpu0
	}
	if cfg.Scenario == ScenarioFloor {
		s.CPUSeconds = floorDone.CPUSeconds
		f := &Floor{Writes: floorDone.Writes, ShortWrites: floorDone.ShortWrites, CPUSeconds: floorDone.CPUSeconds,
			FrameBytes: floorDone.FrameBytes, ServerRSSPerConnByte: s.RSSPerConn}
		if f.Writes > 0 {
			f.CPUPerMillionWrites = f.CPUSeconds / float64(f.Writes) * 1e6
		}
		res.Floor = f
	}
	delivered := float64(res.Delivery.Delivered)
	if s.CPUSeconds >= 0 && delivered > 0 {
		s.CPUPerMillionDeliv = s.CPUSeconds / delivered * 1e6
	}
	if cfg.Scenario != ScenarioConnect && cfg.Scenario != ScenarioFloor && written0 >= 0 && end.Written >= 0 {
		s.WrittenBytes = end.Written - written0
		if delivered > 0 {
			s.WrittenPerDeliv = float64(s.WrittenBytes) / delivered
		}
	}
	cl := &res.Client
	cl.MeasuredCPUSeconds, cl.CPUPerMillionDeliv = -1, -1
	if clientCPU0 >= 0 {
		cl.MeasuredCPUSeconds = clientCPU1 - clientCPU0
		if delivered > 0 {
			cl.CPUPerMillionDeliv = cl.MeasuredCPUSeconds / delivered * 1e6
		}
	}
	res.DurationS = time.Since(r.start).Seconds()
	r.mu.Lock()
	res.Timeline = r.timeline
	r.checks(res)
	res.Warnings = r.warnings
	r.mu.Unlock()
	return res, nil
}

// all sends c to every worker and waits for event from each. An exit or
// an error event from any worker fails the run.
func (r *runner) all(ctx context.Context, c workerCmd, event string) ([]workerMsg, error) {
	for _, w := range r.workers {
		if err := w.send(c); err != nil {
			return nil, err
		}
	}
	got := make([]workerMsg, len(r.workers))
	done := make([]bool, len(r.workers))
	seen := 0
	for seen < len(r.workers) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case ev := <-r.events:
			switch ev.msg.Event {
			case event:
				got[ev.idx], done[ev.idx] = ev.msg, true
				seen++
			case "exit", "error":
				if done[ev.idx] && event == "result" {
					continue // a worker ends after its result
				}
				why := ev.msg.Error
				if why == "" {
					why = "it exited (see its messages above)"
				}
				return nil, fmt.Errorf("worker %d failed: %s", ev.idx, why)
			}
		}
	}
	return got, nil
}

// publish sends the scenario's messages at --msg-rate and returns what
// each channel got.
func (r *runner) publish(ctx context.Context) (*expectation, int64, error) {
	cfg := &r.cfg
	n := cfg.Messages
	x := &expectation{}
	var send func(i int) error
	switch cfg.Scenario {
	case ScenarioTopic:
		n = cfg.Messages * cfg.Topics
		x.Topics = make([]uint32, cfg.Topics)
		send = func(i int) error {
			t := i % cfg.Topics
			x.Topics[t]++
			return r.send(x.Topics[t], func(p []byte) error { return r.pub.Topic("t"+strconv.Itoa(t), p) })
		}
	case ScenarioUnicast:
		x.Users = make([]uint32, cfg.Conns)
		rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x756e69))
		send = func(int) error {
			u := rng.IntN(cfg.Conns)
			x.Users[u]++
			return r.send(x.Users[u], func(p []byte) error { return r.pub.User(cfg.UserPrefix+strconv.Itoa(u), p) })
		}
	default: // broadcast, churn
		if cfg.Scenario == ScenarioChurn {
			n = max(1, int(math.Ceil(cfg.Hold.D().Seconds()*cfg.MsgRate)))
		}
		send = func(int) error {
			x.Broadcast++
			return r.send(x.Broadcast, r.pub.Broadcast)
		}
	}
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / cfg.MsgRate * float64(time.Second)))
		if err := sleep(ctx, time.Until(due)); err != nil {
			return nil, int64(i), err
		}
		if err := send(i); err != nil {
			return nil, int64(i), err
		}
	}
	if err := r.pub.Flush(0); err != nil {
		return nil, int64(n), err
	}
	return x, int64(n), nil
}

// send publishes one payload with seq, stamped now.
func (r *runner) send(seq uint32, publish func([]byte) error) error {
	if r.cfg.template != nil {
		r.buf = appendTemplatePayload(r.buf[:0], seq, time.Now().UnixNano(), r.cfg.template)
	} else {
		r.buf = appendPayload(r.buf[:0], seq, time.Now().UnixNano(), r.cfg.PayloadSize)
	}
	return publish(r.buf)
}

// drain waits until the open connections got what x says, or --timeout.
func (r *runner) drain(ctx context.Context, x *expectation) error {
	r.phase.Store("drain")
	replies, err := r.all(ctx, workerCmd{Cmd: "expect", Expect: x}, "expected")
	if err != nil {
		return err
	}
	var want int64
	for _, m := range replies {
		want += m.N
	}
	deadline := time.Now().Add(r.cfg.Timeout.D())
	for r.delivered() < want {
		if time.Now().After(deadline) {
			r.warn("deliveries incomplete after --timeout %s: %d of %d", r.cfg.Timeout, r.delivered(), want)
			return nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// settleDeliveries waits until deliveries stop for a second (churn, where
// the expected count is not known in advance), or --timeout.
func (r *runner) settleDeliveries(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.Timeout.D())
	last, since := r.delivered(), time.Now()
	for time.Since(since) < time.Second && time.Now().Before(deadline) {
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		if d := r.delivered(); d != last {
			last, since = d, time.Now()
		}
	}
	return nil
}

// clientCPU is wsbench's CPU seconds so far: this process's, plus each
// worker process's as of its last progress report (at most
// progressInterval old).
func (r *runner) clientCPU() float64 {
	cpu, _ := selfUsage()
	if r.cfg.Workers > 1 {
		for _, w := range r.workers {
			cpu += w.progress().CPUSeconds
		}
	}
	return cpu
}

func (r *runner) delivered() int64 {
	var n int64
	for _, w := range r.workers {
		n += w.progress().Delivered
	}
	return n
}

// monitor samples the timeline and writes the progress line once a second.
func (r *runner) monitor(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastDelivered int64
	lastPrint := time.Time{}
	for {
		select {
		case <-ctx.Done():
			if r.prog != nil && r.tty {
				fmt.Fprintln(r.prog)
			}
			return
		case now := <-t.C:
			var agg progressSnap
			for _, w := range r.workers {
				p := w.progress()
				agg.Open += p.Open
				agg.Established += p.Established
				agg.Failed += p.Failed
				agg.Delivered += p.Delivered
				agg.P99US = max(agg.P99US, p.P99US)
				agg.RSSBytes += p.RSSBytes
			}
			srv, _ := r.probe.sample(ctx)
			phase := r.phase.Load().(string)
			r.mu.Lock()
			r.timeline = append(r.timeline, Sample{
				T: now.Sub(r.start).Seconds(), Phase: phase, Connections: agg.Open, Delivered: agg.Delivered,
				ServerRSS: srv.RSS, ClientRSS: agg.RSSBytes, P99US: agg.P99US,
			})
			r.mu.Unlock()
			rate := agg.Delivered - lastDelivered
			lastDelivered = agg.Delivered
			if r.prog == nil || !r.tty && now.Sub(lastPrint) < 5*time.Second {
				continue
			}
			lastPrint = now
			line := fmt.Sprintf("[%5.0fs] %-9s %-7s conns %d/%d  failed %d  delivered %d (%s/s)  p99 %s",
				now.Sub(r.start).Seconds(), r.cfg.Scenario, phase, agg.Open, r.cfg.Conns, agg.Failed,
				agg.Delivered, num(float64(rate)), p99String(agg.P99US))
			if srv.RSS >= 0 {
				line += "  server " + bytesStr(srv.RSS)
			}
			if r.tty {
				fmt.Fprintf(r.prog, "\r%-110s", line)
			} else {
				fmt.Fprintln(r.prog, line)
			}
		}
	}
}

func p99String(v int64) string {
	if v == 0 {
		return "-"
	}
	return us(v)
}

// merge folds the workers' results into res.
func (r *runner) merge(res *Result, msgs []workerMsg, pubStart time.Time) {
	cfg := &r.cfg
	hs, dl, rc := newHist(), newHist(), newHist()
	c := Connections{Target: cfg.Conns, FailedByReason: map[string]int64{}, DroppedByReason: map[string]int64{}}
	var (
		seq                     seqTotals
		delivered, misrouted    int64
		frameBytes, compressed  int64
		reconnects, reconnFail  int64
		firstDial, lastWelcome  int64
		lastDelivery, heapBytes int64
		cl                      = Client{Workers: cfg.Workers, ConnStructBytes: connStructBytes}
	)
	for _, m := range msgs {
		w := m.Result
		if w == nil {
			continue
		}
		for name, err := range map[string]error{
			"handshake": mergeEncoded(hs, w.Handshakes),
			"delivery":  mergeEncoded(dl, w.Deliveries),
			"reconnect": mergeEncoded(rc, w.Reconnect),
		} {
			if err != nil {
				r.warn("a worker's %s histogram could not be decoded: %v", name, err)
			}
		}
		c.Established += w.Established
		c.DeflateAccepted += w.DeflateAccepted
		c.Failed += w.Failed
		for k, v := range w.Failures {
			c.FailedByReason[k] += v
		}
		for k, v := range w.Dropped {
			c.DroppedByReason[k] += v
		}
		seq.merge(w.Seq)
		delivered += w.Delivered
		frameBytes += w.FrameBytes
		compressed += w.Compressed
		misrouted += w.Misrouted
		reconnects += w.Reconnects
		reconnFail += w.ReconnectFailed
		if w.FirstDialNS != 0 && (firstDial == 0 || w.FirstDialNS < firstDial) {
			firstDial = w.FirstDialNS
		}
		lastWelcome = max(lastWelcome, w.LastWelcomeNS)
		lastDelivery = max(lastDelivery, w.LastDeliveryNS)
		heapBytes += w.HeapBytes
		cl.CPUSeconds += w.CPUSeconds
		cl.MaxRSSBytes += w.MaxRSSBytes
		cl.PollErrors += w.PollErrors
		if w.Unsequenced > 0 {
			r.warn("%d message frames without a seq and ts in the payload were ignored", w.Unsequenced)
		}
	}
	cpu, rss := selfUsage()
	if cfg.Workers == 1 { // the worker ran in this process: its figures are the process's
		cl.CPUSeconds, cl.MaxRSSBytes = cpu-r.cpu0, rss
	} else {
		cl.CPUSeconds += cpu - r.cpu0
		cl.MaxRSSBytes += rss
	}
	if c.Established > 0 {
		cl.HeapPerConn = float64(heapBytes) / float64(c.Established)
	}
	if lastWelcome > firstDial && firstDial > 0 {
		c.RampSeconds = float64(lastWelcome-firstDial) / 1e9
		c.ConnectRatePerS = float64(c.Established) / c.RampSeconds
	}
	c.HandshakeLatency = percentiles(hs)
	res.Conns = c
	res.Client = cl
	d := Delivery{Expected: seq.Expected, Delivered: delivered, Lost: seq.Lost, Duplicated: seq.Duplicated,
		Reordered: seq.Reordered, Misrouted: misrouted, Latency: percentiles(dl),
		FrameBytes: frameBytes, Compressed: compressed}
	if delivered > 0 {
		d.FrameBytesPerMsg = float64(frameBytes) / float64(delivered)
		d.CompressedShare = float64(compressed) / float64(delivered)
	}
	if !pubStart.IsZero() && lastDelivery > pubStart.UnixNano() {
		d.WindowS = float64(lastDelivery-pubStart.UnixNano()) / 1e9
		d.PerS = float64(delivered) / d.WindowS
	}
	res.Delivery = d
	if cfg.Scenario == ScenarioChurn {
		res.Churn = &Churn{Reconnects: reconnects, ReconnectFailed: reconnFail, ReconnectLatency: percentiles(rc)}
	}
}

// checks adds warnings about figures that should not be trusted. r.mu
// must be held.
func (r *runner) checks(res *Result) {
	cfg := &r.cfg
	if cpus := float64(res.Machine.CPUs); cpus > 0 && res.DurationS > 0 {
		if share := res.Client.CPUSeconds / (res.DurationS * cpus); share > 0.5 {
			r.warnings = append(r.warnings, fmt.Sprintf("wsbench used %.0f%% of this machine's CPU over the run: on a shared host the client may limit the server", share*100))
		}
	}
	if c := res.Conns; c.ConnectRatePerS > 0 && c.ConnectRatePerS < 0.8*cfg.Rate && c.Established > int64(cfg.Rate) {
		r.warnings = append(r.warnings, fmt.Sprintf("the ramp reached %.0f/s of the %.0f/s asked: the server (or the dialers, --dialers %d per worker) set the pace", c.ConnectRatePerS, cfg.Rate, cfg.Dialers))
	}
	if s := res.Server; s.RSSPerConn >= 0 && s.RSSPerConn < 512 && res.Conns.Established >= 1000 {
		r.warnings = append(r.warnings, fmt.Sprintf("server RSS grew only %.0f B per connection: the server probably kept memory from an earlier run; restart it before measuring memory", s.RSSPerConn))
	}
	for _, s := range cfg.URLs {
		if t, err := parseTarget(s); err == nil && isLoopback(t.host) && cfg.Scenario != ScenarioFloor && res.Client.CPUSeconds > 0 {
			r.warnings = append(r.warnings, "client and server share this host: their CPU figures compete")
			break
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
