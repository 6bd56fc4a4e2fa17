package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/report"
)

// Run runs cfg's scenario and returns its result. It writes a progress
// line to progress once a second (nil: none); when progress is a terminal
// the line is rewritten in place. It returns an error only when the run
// could not be carried out; failures of connections and deliveries are in
// the Result.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	if err := cfg.Normalize(); err != nil {
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
	return r.run(ctx, newScenario(cfg.Scenario))
}

// runner is one run: the coordinator's side of the workers, the server
// probe and the timeline. The scenario uses it between the ramp and the
// finish.
type runner struct {
	cfg     Config
	prog    io.Writer
	tty     bool
	probe   *serverProbe
	workers []*workerHandle
	events  chan workerEvent
	start   time.Time
	phase   atomic.Value        // string
	cpu0    float64             // this process's CPU seconds when Run started
	before  serverSample        // the servers before the ramp
	after   serverSample        // the servers after the ramp and the settle
	revoked *report.Revocations // what --revocations stored; nil without

	mu       sync.Mutex // protects timeline and warnings
	timeline []report.Sample
	warnings []string
}

func (r *runner) warn(format string, a ...any) {
	r.mu.Lock()
	r.warnings = append(r.warnings, fmt.Sprintf(format, a...))
	r.mu.Unlock()
}

// run is setup → ramp → scenario → finish → report. The setup and the
// ramp are the same for every scenario, and so are the finish and the
// report; sc does what lies between.
func (r *runner) run(ctx context.Context, sc scenario) (*Result, error) {
	r.start = time.Now()
	r.cpu0, _ = selfUsage()

	spec := engine.Spec{Config: r.cfg, JWTSecret: r.cfg.JWTSecret, Workers: r.cfg.Workers}
	err := sc.start(r, &spec)
	defer sc.stop()
	if err != nil {
		return nil, err
	}
	if err := r.revoke(ctx); err != nil {
		return nil, err
	}
	r.workers, err = startWorkers(spec, r.events)
	defer r.stopWorkers()
	if err != nil {
		return nil, err
	}
	// A worker signs its clients' tokens before it is ready (an RSA key
	// takes seconds for 10,000): the servers are sampled after that.
	if _, err := r.all(ctx, workerCmd{}, "ready"); err != nil {
		return nil, err
	}
	stopMonitor := r.startMonitor(ctx)
	defer stopMonitor()

	if err := r.ramp(ctx); err != nil {
		return nil, err
	}
	w, err := sc.run(ctx, r)
	if err != nil {
		return nil, err
	}
	end, _ := r.probe.sample(ctx)
	clientCPU := r.clientCPU()
	w.natsEnd = r.natsCPU()

	// Finish: every worker closes its connections and reports.
	r.phase.Store("finish")
	results, err := r.all(ctx, workerCmd{Cmd: "finish", Expect: w.expect}, "result")
	if err != nil {
		return nil, err
	}
	stopMonitor()
	return r.result(results, w, end, clientCPU), nil
}

// ramp samples the servers (r.before), has every worker connect its share
// of the connections, waits --settle and samples the servers again
// (r.after).
func (r *runner) ramp(ctx context.Context) error {
	var err error
	if r.before, err = r.probe.sample(ctx); err != nil {
		return fmt.Errorf("sample the server: %w", err)
	}
	r.phase.Store("ramp")
	if _, err := r.all(ctx, workerCmd{Cmd: "connect"}, "connected"); err != nil {
		return err
	}
	r.phase.Store("settle")
	if err := sleep(ctx, r.cfg.Settle.D()); err != nil {
		return err
	}
	if r.after, err = r.probe.sample(ctx); err != nil {
		return fmt.Errorf("sample the server: %w", err)
	}
	return nil
}

func (r *runner) stopWorkers() {
	for _, w := range r.workers {
		w.stop()
	}
}

// startMonitor starts monitor in a goroutine of its own. The function it
// returns stops the monitor and waits for it; it may be called again.
func (r *runner) startMonitor(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.monitor(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// all sends c to every worker, unless c is the zero command, and waits
// for event from each. An exit or an error event from any worker fails the
// run.
func (r *runner) all(ctx context.Context, c workerCmd, event string) ([]workerMsg, error) {
	for _, w := range r.workers {
		if c.Cmd == "" {
			break
		}
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

// drain waits until the open connections got what x says, or --timeout.
func (r *runner) drain(ctx context.Context, x *engine.Expectation) error {
	_, err := r.drainCount(ctx, x)
	return err
}

// drainCount is drain returning the deliveries the open connections were
// due in all.
func (r *runner) drainCount(ctx context.Context, x *engine.Expectation) (int64, error) {
	r.phase.Store("drain")
	replies, err := r.all(ctx, workerCmd{Cmd: "expect", Expect: x}, "expected")
	if err != nil {
		return 0, err
	}
	var want int64
	for _, m := range replies {
		want += m.N
	}
	deadline := time.Now().Add(r.cfg.Timeout.D())
	for r.delivered() < want {
		if time.Now().After(deadline) {
			r.warn("deliveries incomplete after --timeout %s: %d of %d", r.cfg.Timeout, r.delivered(), want)
			return want, nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return want, err
		}
	}
	return want, nil
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
			srvRSS := r.probe.rss(ctx)
			phase := r.phase.Load().(string)
			r.mu.Lock()
			r.timeline = append(r.timeline, report.Sample{
				T: now.Sub(r.start).Seconds(), Phase: phase, Connections: agg.Open, Delivered: agg.Delivered,
				ServerRSS: srvRSS, ClientRSS: agg.RSSBytes, P99US: agg.P99US,
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
				agg.Delivered, report.Num(float64(rate)), p99String(agg.P99US))
			if srvRSS >= 0 {
				line += "  server " + report.Bytes(srvRSS)
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
	return report.Micros(v)
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
