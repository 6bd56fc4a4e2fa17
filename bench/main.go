package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/wsgate/wsgate/bench/internal/config"
	"github.com/wsgate/wsgate/bench/internal/report"
)

// usage is the top of `wsbench -help`; the flags follow.
const usage = `wsbench measures a wsgate gateway, or a fleet of them, from the outside.

Usage:
  wsbench <scenario> [flags]         run a scenario (also: wsbench run <scenario> [flags])
  wsbench compare a.json b.json...   key figures of earlier runs side by side, with ratios to the first
  wsbench worker | floor-server      internal: the processes wsbench starts itself

Scenarios (every one starts with the same ramp: --conns connections at --rate per
second, each one user u<i> (?user=, or a ?token= signed before the ramp with
--jwt-secret or --jwt-key), spread round-robin over the --url values, the
--source-addrs and the --workers):
  connect    ramp, wait until every connection is welcomed or failed, wait --settle,
             sample the server, hold --hold, close. Reports the connect rate
             (established / first dial → last welcome), handshake latency
             (dial start → welcome frame), failures by reason, and the server's
             RSS and goroutines per connection ((after − before) / established).
  broadcast  ramp, then publish --messages broadcasts at --msg-rate to
             <prefix>.broadcast; wait until every open connection has every
             message or --timeout. Reports delivery latency (publish timestamp
             in the payload → read by the client), delivered/s, lost, duplicated,
             reordered, and the server's CPU per million delivered (CPU over
             publish + drain / delivered × 1e6).
  topic      --topics M × --subs-per-topic S connections; connection i subscribes
             to topic.t<i mod M> during its handshake (welcome → subscribe →
             subscribed). Then --messages per topic, round-robin over the topics,
             at --msg-rate in total. Reported like broadcast.
  unicast    every connection is a distinct user; --messages in total at
             --msg-rate, each to a random user (--seed). Reported like broadcast.
  churn      ramp, then for --hold (default 10s) close --churn-share of the
             connections every second (close frame 1001) and reconnect them,
             while broadcasting at --msg-rate. Reports reconnect latency
             (close → welcome), reconnect failures, and deliveries; lost counts
             only gaps inside what each connection received (messages sent
             while a connection was away are not promised to it).
  floor      the kernel's own cost of the same work: wsbench starts floor-server
             processes that accept --conns plain TCP connections from the same
             client engine and make exactly the write(2) calls broadcast asks of
             a gateway (--messages rounds × conns, at --msg-rate, a buffer the
             size of the gateway's frame, one writer goroutine per CPU). Reports
             their CPU per million writes: the denominator of "server CPU per
             million delivered ≤ 1.1 × floor" (see compare).
  resume     a reconnect storm with durable notifications missed (the gateway needs
             --durable and a NATS with JetStream). Every connection is a distinct
             user and a durable-aware client: it keeps the seq and epoch of the
             last durable frame it applied on its user channel, applies a frame
             only when its prev is that seq, and between its resume and the
             answer drops the channel's frames (docs/protocol.md, "Resume and
             acks"). After the ramp: one durable notification to every user (the
             positions); the cut: every connection closed at once from the client
             side, without a close frame, or with --cut-cmd by the gateway (the
             command restarts it, say; wsbench waits until every connection is
             closed, and the report says which cut it measured); --missed durable
             notifications to every user (bus.Publisher.DurableUser with a
             message id, --publishers at once, each waiting for its ack); then
             every connection reconnects at --rate and sends resume with its seq
             and epoch. Waits until each has
             applied every sequence the publisher got acked for its user, or
             --timeout. Reports time to full recovery (cut → the last connection
             complete) and per connection, replayed/s, lost (acked sequences never
             applied), stray, duplicates left after de-duplication, and from
             --server-metrics the gateway's history requests by kind
             (wsgate_history_requests_total) per resumed connection and its CPU
             per resume (reconnect included), and the storm's reconnect rate
             beside the first ramp's. --missed 0: nothing missed, the cost of
             the resumes alone; with --no-resume too, the clients reconnect
             without resuming and nothing is published: the same storm against
             a gateway with --durable=false, to compare reconnect rates.
             --resume-in-url: each position goes in the upgrade request
             (?resume=channel:seq:epoch) instead of a resume op, and the gateway
             answers only when something is missing.

  control    the control plane (package control) across --url gateways: after the
             ramp, --queries presence queries of random users, one at a time, each
             through control.Client on a NATS connection of wsbench's own with
             Expect --gateways (default: the number of --url values) and no stall;
             then --disconnects disconnects of distinct random users with
             --disconnect-reason (reconnect: close 4004, the default; logout: 4005;
             revoked: 4006). Reports presence latency (call → every gateway's
             answer), how many got every gateway's answer and found the user,
             disconnect latency measured two ways: the call's return (every
             gateway answered) and the close frame's arrival at the client's
             socket, and the close codes read. wsbench does not reconnect.
  upstream   clients send request ops ({"op":"request","channel":--upstream-channel,
             "ref":N,"data":{"seq":N,"ts":T}}) at --msg-rate in total for --hold
             (default 10s), round-robin over the connections; wsbench answers them
             on NATS (<prefix>.up.<channel>, the reply is the request's data) unless
             --no-responder. Reports replies/s, latency (the request's write → its
             reply read), error frames by code (rate_limited, timeout, …), and the
             CPU of the gateway (--server-pid), NATS (--nats-pid) and wsbench per
             1,000 requests. The gateway limits each connection to --upstream-rate
             (10/s, bursts of 20): spread the rate over enough connections.
  scale      the capacity run (bench/scale.sh): hold the connections for --hold and
             count them on both sides (the clients' and the gateways'
             wsgate_connections), then one unicast to each of --sample (10000)
             distinct random users, drained, then --messages broadcasts, drained.
             Reports each phase's deliveries and time; the finish checks every
             connection's user and broadcast channels for losses and duplicates.

--revocations N (any scenario): before the ramp, store N revocations in the
denylist's KV bucket with control.Client.Revoke (users rv0…rvN-1, who are not in
the run, for an hour; 32 at once) and wait until every --url refuses rvN-1 with
401; the report says how long each took. Compare the connect rate of two runs.

--durable (broadcast, topic, unicast): publish through JetStream with
DurableBroadcast, DurableTopic or DurableUser, each publish waiting for its ack;
the payload's ts is taken before the publish, so the delivery latency includes
storing the notification and the stream's republish. The frames carry the
stream's seq, prev and epoch before data; the accounting reads the payload's.

Payloads (--payload-kind): pad, {"seq":N,"ts":T,"pad":"xx…"} padded to
--payload-size (default 200 bytes); json1k, a realistic notification of about
1 KiB; or --payload-file, a JSON object of your own. seq and ts always come
first.

permessage-deflate (--deflate): every client offers "permessage-deflate;
client_max_window_bits" as Chromium does and inflates compressed frames. A 101
that wants context takeover fails the handshake (deflate_context_takeover):
wsbench keeps no compression state per connection. The report adds the
connections that accepted, the share of delivered messages that came
compressed, and the bytes per delivered message as read (message frames) and,
from --server-metrics, as written by the gateway (wsgate_written_bytes_total
over publish and drain; n/a for servers without it). wsbench inflates every
copy: a broadcast to 5,000 costs it 5,000 inflates where each browser pays one,
and on a shared host that CPU delays the deliveries. --inflate-once lets each
reader goroutine inflate a frame identical to its previous one only once (wsgate
compresses a notification once for all its recipients), which keeps that cost
out of the latency.

Delivery accounting (per connection, on its one channel): payloads are
{"seq":N,"ts":T,…}, seq counting 1, 2, 3… per channel. A seq above every
seq seen so far is in order; a seq seen before is a duplicate; a seq below the
highest seen and not seen before is reordered (beyond 64 below the highest a
duplicate can no longer be told apart and counts as reordered). lost = expected −
distinct received. delivered counts every message frame, duplicates included.

Output: a progress line on stderr every second, a table on stdout at the end,
--json FILE (the full result), --html FILE (a report with charts). Exit status 1
if the run could not be carried out, 2 for bad flags.

Flags:
`

// Main is the wsbench command line: args without the program name. It
// returns the exit status.
func Main(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		(&Config{}).FlagSet("wsbench").PrintDefaults()
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		fs := (&Config{}).FlagSet("wsbench")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		return 0
	case "worker":
		if err := serveWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "wsbench worker:", err)
			return 1
		}
		return 0
	case "floor-server":
		if err := serveFloor(args[1:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "wsbench floor-server:", err)
			return 1
		}
		return 0
	case "compare":
		return compareMain(args[1:], os.Stdout, os.Stderr)
	case "run":
		args = args[1:]
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "wsbench run: which scenario?")
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runMain(ctx, args, os.Stdout, os.Stderr)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := Config{Scenario: args[0]}
	if !config.ValidScenario(cfg.Scenario) {
		fmt.Fprintf(stderr, "wsbench: unknown scenario or command %q (wsbench -help)\n", args[0])
		return 2
	}
	fs := cfg.FlagSet("wsbench " + cfg.Scenario)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wsbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	res, err := Run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "wsbench:", err)
		return 1
	}
	status := 0
	if err := res.WriteTable(stdout); err != nil {
		status = 1
	}
	if cfg.JSONFile != "" {
		if err := res.WriteJSON(cfg.JSONFile); err != nil {
			fmt.Fprintln(stderr, "wsbench:", err)
			status = 1
		}
	}
	if cfg.HTMLFile != "" {
		if err := res.WriteHTML(cfg.HTMLFile); err != nil {
			fmt.Fprintln(stderr, "wsbench:", err)
			status = 1
		}
	}
	return status
}

func compareMain(files []string, stdout, stderr io.Writer) int {
	if len(files) < 2 {
		fmt.Fprintln(stderr, "usage: wsbench compare a.json b.json [c.json...]")
		return 2
	}
	var rs []*Result
	for _, f := range files {
		r, err := report.ReadResult(f)
		if err != nil {
			fmt.Fprintln(stderr, "wsbench compare:", err)
			return 1
		}
		rs = append(rs, r)
	}
	if err := report.Compare(stdout, files, rs); err != nil {
		fmt.Fprintln(stderr, "wsbench compare:", err)
		return 1
	}
	return 0
}
