// Command drain measures a graceful drain: how long gateway A takes to
// close N WebSocket connections after SIGTERM, and how the clients'
// reconnects to gateway B are spread over that time.
//
//	go run ./bench/drain -n 10000 -drain-delay 5s -drain-timeout 30s -json drain.json
//
// It starts a NATS server and two gateways (A and B) as processes of their
// own on free loopback ports, connects N clients to A, sends A SIGTERM and
// records, after it: when /readyz turned 503, when A stopped welcoming new
// connections, when each client got its close 1001 and, as a client behind
// a load balancer that has taken A out would, when B welcomed it back; and
// when A exited and how. It prints a table and a bar chart of reconnects
// per bucket (a trickle, not a wave), and with -json writes the same data.
// It exits 1 if a client got no 1001 or did not reconnect.
//
// Every child process is killed when the command ends, Ctrl-C included.
// bench/drain.sh runs it with the defaults into bench/results/<date>/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// config holds the flags.
type config struct {
	n            int
	drainDelay   time.Duration
	drainTimeout time.Duration
	drainFlags   bool // the gateway binary has --drain-delay and --drain-timeout
	bin, natsd   string
	jsonOut      string
	dialers      int
	sources      int
	dialTimeout  time.Duration
	bucket       time.Duration
	grace        time.Duration
	logLevel     string
	logDir       string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 10000, "clients connected to gateway A")
	flag.DurationVar(&cfg.drainDelay, "drain-delay", 5*time.Second, "the gateways' --drain-delay")
	flag.DurationVar(&cfg.drainTimeout, "drain-timeout", 30*time.Second, "the gateways' --drain-timeout")
	flag.StringVar(&cfg.bin, "bin", "", "wsgate binary; empty builds ./cmd/wsgate")
	flag.StringVar(&cfg.natsd, "natsd", "", "NATS server binary (bench/natsd); empty builds ./bench/natsd")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the report as JSON to this file")
	flag.IntVar(&cfg.dialers, "dialers", 200, "clients connecting to A at the same time")
	flag.IntVar(&cfg.sources, "sources", 0, "spread client source addresses over 127.0.0.1 to 127.0.0.N; 0 lets the kernel pick")
	flag.DurationVar(&cfg.dialTimeout, "dial-timeout", 10*time.Second, "connect, upgrade and welcome of one client")
	flag.DurationVar(&cfg.bucket, "bucket", time.Second, "width of a histogram bucket")
	flag.DurationVar(&cfg.grace, "grace", 20*time.Second, "how long past drain-delay + drain-timeout to wait for the last reconnect and A's exit")
	flag.StringVar(&cfg.logLevel, "log-level", "warn", "the gateways' --log-level")
	flag.StringVar(&cfg.logDir, "log-dir", "", "also write the gateways' output to a.log and b.log in this directory")
	flag.Parse()
	if cfg.n < 1 || cfg.dialers < 1 || cfg.bucket <= 0 || cfg.sources < 0 || cfg.sources > 254 {
		fmt.Fprintln(os.Stderr, "drain: -n and -dialers must be positive, -bucket too, -sources within 0..254")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop) // a second Ctrl-C kills at once
	r, err := run(ctx, cfg)
	if ctx.Err() != nil {
		err = errors.New("interrupted; every process it started is stopped")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "drain:", err)
		os.Exit(1)
	}
	if r.No1001+r.NoReconnect+r.ConnectFailed > 0 {
		fmt.Fprintf(os.Stderr, "drain: %d clients without 1001, %d without reconnect, %d never connected\n",
			r.No1001, r.NoReconnect, r.ConnectFailed)
		os.Exit(1)
	}
}

// run starts the processes, runs the drain, prints the report and writes
// its JSON. Every process it starts is killed before it returns.
func run(ctx context.Context, cfg config) (*Report, error) {
	dir, err := os.MkdirTemp("", "drain")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if cfg.bin == "" {
		if cfg.bin, err = build(ctx, dir, "github.com/wsgate/wsgate/cmd/wsgate"); err != nil {
			return nil, err
		}
	}
	if cfg.natsd == "" {
		if cfg.natsd, err = build(ctx, dir, "github.com/wsgate/wsgate/bench/natsd"); err != nil {
			return nil, err
		}
	}
	cfg.drainFlags = hasFlag(cfg.bin, "drain-delay") && hasFlag(cfg.bin, "drain-timeout")
	if !cfg.drainFlags {
		fmt.Fprintln(os.Stderr, "drain: warning:", cfg.bin, "has no --drain-delay/--drain-timeout; running without them")
	}

	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	natsAddr := hostPort(ports[0])
	nats, err := start("natsd", nil, cfg.natsd, "-listen", natsAddr)
	if err != nil {
		return nil, err
	}
	defer nats.kill()
	if err := nats.waitFor(ctx, 10*time.Second, "listening", func() bool { return listening(natsAddr) }); err != nil {
		return nil, err
	}
	logs := make([]io.Writer, 2) // A's and B's, nil without -log-dir
	for i, name := range []string{"a.log", "b.log"} {
		if cfg.logDir == "" {
			break
		}
		f, err := os.Create(filepath.Join(cfg.logDir, name))
		if err != nil {
			return nil, err
		}
		defer f.Close() // after the process is killed and waited for
		logs[i] = f
	}
	gateway := func(name string, log io.Writer, ws, admin int) (*proc, error) {
		args := []string{"--auth=none", "--listen", hostPort(ws), "--admin", hostPort(admin),
			"--nats-url", "nats://" + natsAddr, "--durable=false", "--log-level", cfg.logLevel}
		if cfg.drainFlags {
			args = append(args, "--drain-delay", cfg.drainDelay.String(), "--drain-timeout", cfg.drainTimeout.String())
		}
		return start(name, log, cfg.bin, args...)
	}
	a, err := gateway("gateway A", logs[0], ports[1], ports[2])
	if err != nil {
		return nil, err
	}
	defer a.kill()
	b, err := gateway("gateway B", logs[1], ports[3], ports[4])
	if err != nil {
		return nil, err
	}
	defer b.kill()
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	readyA := "http://" + hostPort(ports[2]) + "/readyz"
	for _, g := range []struct {
		p   *proc
		url string
	}{{a, readyA}, {b, "http://" + hostPort(ports[4]) + "/readyz"}} {
		if err := g.p.waitFor(ctx, 20*time.Second, "ready", func() bool { code, _ := readyz(hc, g.url); return code == 200 }); err != nil {
			return nil, err
		}
	}

	d := &dialer{timeout: cfg.dialTimeout}
	for i := range cfg.sources {
		d.sources = append(d.sources, net.IPv4(127, 0, 0, byte(i+1)))
	}
	urlA, urlB := "ws://"+hostPort(ports[1])+"/ws", "ws://"+hostPort(ports[3])+"/ws"

	// Clients live until cctx ends; up counts them connected (or failed),
	// done reconnected (or failed), exit gone.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clients := make([]client, cfg.n)
	var up, done, exit sync.WaitGroup
	up.Add(cfg.n)
	done.Add(cfg.n)
	sem := make(chan struct{}, cfg.dialers)
	defer exit.Wait()
	defer cancel() // runs before exit.Wait
	begin := time.Now()
	for i := range clients {
		clients[i].id = i
		exit.Go(func() { clients[i].run(cctx, d, urlA, urlB, sem, up.Done, done.Done) })
	}
	if err := waitGroup(ctx, &up, 0); err != nil {
		return nil, err
	}
	o := observed{connectTime: time.Since(begin)}
	connected := 0
	for i := range clients {
		if clients[i].dialErr == nil {
			connected++
		}
	}
	fmt.Fprintf(os.Stderr, "drain: %d of %d clients connected to A in %v; SIGTERM to A\n",
		connected, cfg.n, o.connectTime.Round(time.Millisecond))
	if connected == 0 {
		return nil, fmt.Errorf("no client connected: %v", clients[0].dialErr)
	}

	// The SIGTERM, and what is watched after it.
	o.t0 = time.Now()
	if err := a.signalTerm(); err != nil {
		return nil, err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	watchers.Go(func() { watchReadyz(wctx, hc, readyA, &o) })
	watchers.Go(func() { watchAccept(wctx, d, urlA, &o) })
	watchers.Go(func() { watchCloseTimeouts(wctx, hc, "http://"+hostPort(ports[2])+"/metrics", &o) })

	deadline := cfg.drainDelay + cfg.drainTimeout + cfg.grace
	werr := waitGroup(ctx, &done, time.Until(o.t0.Add(deadline)))
	select {
	case <-a.exited:
	case <-ctx.Done():
	case <-time.After(time.Until(o.t0.Add(deadline))):
	}
	stopWatch()
	watchers.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if werr != nil {
		fmt.Fprintf(os.Stderr, "drain: not every client reconnected %v after SIGTERM; closing the rest\n", deadline)
	}
	select {
	case <-a.exited:
		o.exitAt, o.exitStatus, o.exitCode = a.exitAt, a.state.String(), a.state.ExitCode()
	default:
		a.kill()
		o.exitStatus, o.exitCode = "still running "+deadline.String()+" after SIGTERM: killed", -1
	}
	cancel()
	done.Wait() // every client has recorded its outcome
	o.logLinesA, o.logLinesB = a.out.count(), b.out.count()

	r := newReport(cfg, clients, o)
	r.print(os.Stdout)
	if r.No1001+r.NoReconnect > 0 || r.ExitCode != 0 {
		fmt.Fprintf(os.Stderr, "\ngateway A's log ends with:\n%s\n\ngateway B's:\n%s\n", a.out, b.out)
	}
	if cfg.jsonOut != "" {
		if err := r.writeJSON(cfg.jsonOut); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// waitGroup waits for wg, for ctx to end, or for timeout if positive.
func waitGroup(ctx context.Context, wg *sync.WaitGroup, timeout time.Duration) error {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	var expire <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expire = t.C
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-expire:
		return errors.New("timeout")
	}
}

// watchReadyz polls A's /readyz every 5ms until it answers 503 and records
// when. Other answers (200, or none) are polled past.
func watchReadyz(ctx context.Context, hc *http.Client, url string, o *observed) {
	for ctx.Err() == nil {
		if code, body := readyz(hc, url); code == http.StatusServiceUnavailable {
			o.readyz503, o.readyzBody = time.Now(), body
			return
		}
		sleep(ctx, 5*time.Millisecond)
	}
}

// watchAccept opens a probe connection to A every 50ms and records the
// last one A welcomed and the first one it did not, then stops.
func watchAccept(ctx context.Context, d *dialer, url string, o *observed) {
	pd := &dialer{sources: d.sources, timeout: time.Second}
	for k := 0; ctx.Err() == nil; k++ {
		c, err := pd.dial(ctx, url, "drainprobe"+strconv.Itoa(k), k)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			o.firstRefuse, o.refuseErr = time.Now(), kind(err)
			return
		}
		o.lastAccept = time.Now()
		c.Close()
		sleep(ctx, 50*time.Millisecond)
	}
}

// watchCloseTimeouts scrapes A's wsgate_close_timeouts_total every 100ms
// until A stops answering, and records the last value: close handshakes A
// gave up waiting for, though every client answers its close frame at once.
func watchCloseTimeouts(ctx context.Context, hc *http.Client, url string, o *observed) {
	for ctx.Err() == nil {
		if v, ok := metric(hc, url, "wsgate_close_timeouts_total"); ok {
			o.closeTimeouts = v
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
