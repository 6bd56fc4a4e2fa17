// Package bench is wsbench, the capacity harness of wsgate: it loads a
// gateway (or a fleet) from the outside, over WebSocket and NATS only, and
// reports what capacity engineers buy hardware with — connect rate,
// handshake and delivery latency percentiles, losses, and the server's
// memory per connection and CPU per million delivered messages, next to
// the kernel's own cost of the same writes.
//
// Usage:
//
//	res, err := bench.Run(ctx, bench.Config{
//		Scenario: bench.ScenarioBroadcast,
//		URLs:     []string{"ws://127.0.0.1:8080/ws"},
//		Conns:    15000,
//	}, os.Stderr)
//	if err != nil {
//		return err
//	}
//	res.WriteTable(os.Stdout)
//	res.WriteJSON("broadcast.json")
//
// cmd/wsbench is a thin wrapper around Main; `wsbench -help` explains
// every scenario and flag.
//
// # Scenarios
//
// Every scenario starts with the same ramp: Conns connections at Rate per
// second (spread evenly over the workers), connection i authenticating as
// user "<UserPrefix><i>" with ?user= (development auth) or ?token= (a token
// with sub, exp in 24 h and channels [topic.>], signed HS256 with JWTSecret,
// or with the PEM private key in JWTKey: RS256, ES256 or EdDSA, with the
// kid header JWTKid, for a gateway that verifies against a JWKS). Each
// worker signs its connections' tokens before the ramp, so that the
// client's signing (an RSA-2048 signature costs more than the gateway's
// whole upgrade) stays out of the connect rate and the handshake latency;
// a reconnect presents the same token.
// Connection i goes to URLs[i mod len], from source address
// SourceAddrs[i mod len], in worker i mod Workers. The ramp ends when every
// connection is welcomed or has failed (dial, timeout, closed, http_<status>,
// protocol, server_close_<code>, subscribe_error). Then the server is sampled
// after Settle.
//
//   - connect: hold for Hold, then close. Connect rate is established /
//     (first dial → last welcome); handshake latency is dial start →
//     welcome frame read; server RSS and goroutines per connection are
//     (after − before) / established.
//   - broadcast: publish Messages payloads at MsgRate to <prefix>.broadcast
//     and wait until every open connection has all of them, or Timeout
//     after the last publish.
//   - topic: Conns is Topics × SubsPerTopic; connection i subscribes to
//     topic.t<i mod Topics> in its handshake and counts as established
//     when "subscribed" arrives. Messages are published per topic,
//     round-robin over the topics, at MsgRate in total.
//   - unicast: Messages in total at MsgRate, each to a random user
//     (Seed); every connection is its own user.
//   - churn: for Hold, every second, close ChurnShare of the connections
//     (close 1001) and reconnect them, while broadcasting at MsgRate.
//     Reconnect latency is close → welcome.
//   - floor: floor-server child processes accept Conns plain TCP
//     connections from the same engine and make Messages rounds × Conns
//     write(2) calls at MsgRate, of a real server frame as large as the
//     gateway's for the same payload, one writer goroutine per CPU. Their
//     CPU (getrusage) per million writes is the kernel's floor.
//   - resume: durable-aware clients (engine, resume.go) get one durable
//     notification each, are all cut at once from the client side, miss
//     Missed durable notifications each (published Publishers at once,
//     the acked sequences kept), reconnect and resume from their seq. Each
//     connection's replay is checked against its user's acked sequences;
//     the report has the time to full recovery and, from ServerMetrics,
//     the gateway's history requests and CPU per resume.
//   - control: Queries presence queries of random users, then
//     Disconnects disconnects of distinct random users, one at a time,
//     through control.Client (Expect = Gateways, no stall) on a NATS
//     connection of the scenario's own. A disconnect is measured two ways:
//     the call's return and, from the engine's read side, the arrival of
//     the close frame at the client's socket.
//   - upstream: request ops at MsgRate in total for Hold, round-robin over
//     the connections, answered on NATS by the scenario's responder with
//     the request's data; the reply's latency is its read time − the send
//     time in the data.
//   - scale: hold the connections for Hold and count them on both sides
//     (the workers' open connections, and wsgate_connections summed over
//     ServerMetrics), then publish one unicast to each of Sample distinct
//     random users (Seed) at MsgRate and wait until each has it, then
//     publish Messages broadcasts and wait until every open connection
//     has them. Every connection is its own user; the finish checks both
//     of its channels, its user's and the broadcast, for losses and
//     duplicates. This is the capacity run of bench/scale.sh.
//
// With Revocations, any scenario first stores that many revocations of
// users not in the run and waits until every URL refuses the last.
//
// With Durable, broadcast, topic and unicast publish through JetStream
// and wait for each ack; the frames carry seq, prev and epoch before
// data, and the accounting reads the payload's seq in data.
//
// # Payloads and permessage-deflate
//
// PayloadKind pad (the default) publishes {"seq":N,"ts":T,"pad":"x…"}
// padded to PayloadSize bytes, which compresses to almost nothing; json1k
// a realistic notification of about 1 KiB; PayloadFile a JSON object of
// one's own, compacted, with seq and ts put in front.
//
// With Deflate every client offers "permessage-deflate;
// client_max_window_bits" (Chromium's offer) and records whether the 101
// accepted it (Connections.DeflateAccepted). The harness keeps no
// compression state per connection: it accepts only
// server_no_context_takeover and inflates each compressed (RSV1) frame on
// its own with a pooled decompressor before reading seq and ts. The result
// gives the bytes per delivered message as the clients read them
// (Delivery.FrameBytesPerMsg), the share that came compressed
// (Delivery.CompressedShare), what the gateway wrote over the publish and
// drain window (Server.WrittenBytes, from wsgate_written_bytes_total in
// ServerMetrics), and the client's CPU over the same window. The harness
// inflates every copy of a message, so a broadcast costs it one inflate
// per recipient; with InflateOnce each reader goroutine keeps the last
// compressed payload it inflated and its result, and serves an identical
// payload from there (exact: without context takeover equal bytes inflate
// to equal messages), which keeps the harness's own inflating out of the
// latency on a shared host.
//
// # Delivery accounting
//
// A payload is {"seq":N,"ts":T,…}; T is the publish time in unix
// nanoseconds, so latency across hosts needs synchronized clocks (a
// negative latency is recorded as 0). seq counts
// 1, 2, 3… per channel: the broadcast channel, each topic, each user.
// Each connection listens on exactly one channel and checks the channel
// name of every message frame (a frame for another channel is misrouted,
// not delivered). For each connection:
//
//   - a seq above every seq seen so far is in order;
//   - a seq already seen is a duplicate: exactly for seqs up to 64 below
//     the highest seen (a bitmap window), beyond that a duplicate cannot be
//     told from a late first arrival and counts as reordered;
//   - a seq below the highest seen and not seen before is reordered; it is
//     also received;
//   - lost = expected − distinct received, where expected is what was
//     published to the channel (for connections that were ever welcomed;
//     failed connections are counted under connections, not as lost).
//     Churn cannot know which messages a reconnecting connection was
//     promised (only those published after its welcome), so there lost is
//     the gaps between the lowest and highest seq each connection
//     incarnation received.
//
// delivered counts every sequenced message frame on the right channel,
// duplicates included; delivered/s is delivered / (first publish → last
// delivery). Server CPU per million delivered is the server's CPU over the
// publish and drain window / delivered × 1e6.
//
// # Layers
//
// Package bench is the command line (Main), the coordinator (Run) and the
// scenarios; below it, in bench/internal:
//
//   - engine: the client side of one worker — dialers, the netpoll
//     Poller, reader goroutines, server frames, permessage-deflate and the
//     sequence accounting above;
//   - report: the Result, its table, the HTML report and Compare;
//   - config: the Config and its flags; payload: what is published;
//     hist: the latency histograms the engine records and the report
//     summarizes.
//
// A run is setup → ramp → scenario → finish → report: the setup (the
// scenario's own — a NATS publisher, floor servers — then the workers and
// the monitor), the ramp and settle, the finish (every worker closes its
// connections and reports) and the report are the same for every
// scenario; each scenario is a small type that does only its part between
// the ramp and the finish.
//
// # Workers and concurrency
//
// Each worker (one per process) runs one engine.Engine. With Workers > 1,
// wsbench re-executes itself as `wsbench worker` processes (the open-file
// limit is per process) and talks to them over JSON lines on
// stdin/stdout: progress every 250 ms, and a final result with the HDR
// histograms encoded, which the coordinator merges. With Workers == 1 the
// worker runs in the coordinator's process over pipes, speaking the same
// protocol. The coordinator publishes through NATS with bus.Dial and
// bus.Publisher, like a storage service would.
//
// Run and the Result methods may be called from any goroutine; a Result is
// not safe for concurrent modification.
package bench
