// Command crosscheck checks wsbench's figures with a client that is not
// wsbench, since a harness can flatter the server it was tuned with. It is
// the plainest client there is: gorilla/websocket, one goroutine per
// connection blocking in ReadMessage, the payload's sequence number and
// publish time found again in the delivered frame.
//
//	crosscheck run --label wsgate --url ws://127.0.0.1:18080/ws --nats nats://127.0.0.1:14222 \
//	    --conns 15000 --server-pid $PID --json wsgate.json
//	crosscheck floor-server --listen 127.0.0.1:18080 --admin 127.0.0.1:19090 --nats nats://127.0.0.1:14222
//	crosscheck summary bench/results/crosscheck/latest
//
// run dials --conns connections, user <user-prefix><i> each, --dialers at
// a time; a connection is established when its first frame (the welcome)
// has been read. It measures the connect rate (established ÷ first dial to
// last welcome), the server's CPU per connect over that ramp and its RSS
// per idle connection (--settle after the last welcome), both from
// /proc/<server-pid>; then it publishes --messages broadcasts at
// --msg-rate to <prefix>.broadcast on NATS and records, per delivery,
// receive − publish time, and per connection what was lost, duplicated or
// reordered; the server's CPU from the first publish to the last delivery
// (or --timeout after the last publish) per million delivered.
//
// floor-server is the floor for the same client: gorilla's handshake and a
// welcome, then one frame per broadcast written to every connection, with
// nothing else (see floor). Its CPU per million delivered is what the
// kernel charges for the writes.
//
// summary reads DIR/r<k>/{wsgate,baseline,floor}.json and prints a table
// per round, the ratios by round and their medians. bench/crosscheck.sh
// (make bench-crosscheck) runs it all.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  crosscheck run [flags]            connect, idle, broadcast; measure (run -help)
  crosscheck floor-server [flags]   the floor server (floor-server -help)
  crosscheck summary DIR            tables and ratios of DIR/r<k>/<label>.json
`

// runMain runs a subcommand and returns the exit code: 2 for a wrong
// command line, 1 for a failure.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runCommand(ctx, args[1:], stdout, stderr)
	case "floor-server":
		err = floorCommand(ctx, args[1:], stderr)
	case "summary":
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		var rounds []round
		if rounds, err = loadRounds(args[1]); err == nil {
			err = writeSummary(stdout, rounds)
		}
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "crosscheck %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError is a command line that flag parsed but that makes no sense.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parse parses args into fs, which has printed what was wrong.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return usageError{err.Error()}
	}
	return err
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := runConfig{Log: stderr}
	fs.StringVar(&cfg.Label, "label", "server", "name of the server in the result")
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:18080/ws", "WebSocket `URL` of the server; ?user= is added")
	fs.StringVar(&cfg.NATS, "nats", "nats://127.0.0.1:14222", "NATS `URL` to publish the broadcasts to")
	fs.StringVar(&cfg.SubjectPrefix, "subject-prefix", "notify", "the server's NATS subject prefix")
	fs.IntVar(&cfg.Conns, "conns", 1000, "connections, each a user of its own")
	fs.IntVar(&cfg.Dialers, "dialers", 256, "connections dialing at once")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "xc", "connection i is user <prefix><i>")
	fs.IntVar(&cfg.Messages, "messages", 20, "broadcasts; 0 measures the ramp only")
	fs.Float64Var(&cfg.MsgRate, "msg-rate", 2, "broadcasts per second")
	fs.IntVar(&cfg.PayloadSize, "payload-size", 200, "payload `bytes` of a broadcast")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "`pid` of the server, for its CPU and RSS from /proc; 0 leaves them out")
	fs.DurationVar(&cfg.Settle, "settle", 2*time.Second, "idle time after the last welcome before the server's RSS is read")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "wait this long after the last publish for missing deliveries")
	fs.DurationVar(&cfg.DialTimeout, "dial-timeout", 10*time.Second, "time for the handshake, and again for the welcome")
	jsonOut := fs.String("json", "", "write the result as JSON to `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || cfg.Conns < 1 || cfg.Dialers < 1 || cfg.Messages < 0 || cfg.MsgRate <= 0 {
		fmt.Fprintln(stderr, "run: no arguments; --conns and --dialers at least 1, --messages at least 0, --msg-rate above 0")
		return usageError{"bad command line"}
	}
	res, err := run(ctx, cfg)
	if res != nil {
		writeResult(stdout, res)
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); werr != nil {
				return errors.Join(err, werr)
			}
		}
	}
	return err
}

// writeResult writes res for a person.
func writeResult(w io.Writer, r *result) {
	fmt.Fprintf(w, "%s: %d/%d established", r.Label, r.ConnsEstablished, r.ConnsAsked)
	if r.ConnsFailed > 0 {
		fmt.Fprintf(w, " (failed: %v)", r.FailReasons)
	}
	fmt.Fprintf(w, " in %.2f s: %.0f connects/s, server %.1f µs CPU per connect, %.0f B RSS per idle connection; client CPU %.2f s\n",
		r.ConnectSeconds, r.ConnectRatePerS, r.ServerCPUUSPerConnect, r.RSSBytesPerIdleConn, r.ClientCPURampS)
	if r.Messages == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %d/%d delivered, lost %d, dup %d, reordered %d, other frames %d", r.Label,
		r.Delivered, r.DeliveriesExpected, r.Lost, r.Duplicated, r.Reordered, r.OtherFrames)
	if r.ClosedEarly != nil {
		fmt.Fprintf(w, " (closed early: %v)", r.ClosedEarly)
	}
	fmt.Fprintf(w, "; latency p50 %.2f p90 %.2f p99 %.2f max %.2f ms; server %.3f CPU-s per million delivered; client CPU %.2f s\n",
		r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max, r.ServerCPUSPerM, r.ClientCPUBroadcastS)
}

func floorCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("floor-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:18080", "WebSocket listen address (any path upgrades)")
	admin := fs.String("admin", "", "admin listen address (/healthz); empty disables")
	natsURL := fs.String("nats", "nats://127.0.0.1:14222", "NATS `URL`")
	prefix := fs.String("subject-prefix", "notify", "NATS subject prefix: broadcasts come on <prefix>.broadcast")
	if err := parse(fs, args); err != nil {
		return err
	}
	f, err := newFloor(*natsURL, *prefix)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer f.Close()
	errc := make(chan error, 2)
	serve := func(addr string, h http.Handler) (*http.Server, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- srv.Serve(ln) }()
		return srv, nil
	}
	ws, err := serve(*listen, f)
	if err != nil {
		return err
	}
	defer ws.Close() // hijacked connections are f's to close
	if *admin != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
		adm, err := serve(*admin, mux)
		if err != nil {
			return err
		}
		defer adm.Close()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}
