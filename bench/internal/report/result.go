package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/wsgate/wsgate/bench/internal/config"
)

// Result is everything one run measured. It is written with --json and read
// by compare; its field names are a contract: extend, do not rename. A
// server figure is -1 when it was not measured (no --server-pid or
// --server-metrics; goroutines need --server-metrics).
type Result struct {
	Label     string        `json:"label"`
	Scenario  string        `json:"scenario"`
	StartedAt time.Time     `json:"started_at"`
	DurationS float64       `json:"duration_s"`
	Config    config.Config `json:"config"`
	Conns     Connections   `json:"connections"`
	Delivery  Delivery      `json:"delivery"`
	Server    Server        `json:"server"`
	Client    Client        `json:"client"`
	Floor     *Floor        `json:"floor,omitempty"`
	Churn     *Churn        `json:"churn,omitempty"`
	Scale     *Scale        `json:"scale,omitempty"`
	Resume    *Resume       `json:"resume,omitempty"`
	// Control, Upstream and Revocations: see control.go.
	Control     *Control     `json:"control,omitempty"`
	Upstream    *Upstream    `json:"upstream,omitempty"`
	Revocations *Revocations `json:"revocations,omitempty"`
	Timeline    []Sample     `json:"timeline"`
	Machine     Machine      `json:"machine"`
	Warnings    []string     `json:"warnings,omitempty"`
}

// Connections are the figures of the initial ramp.
type Connections struct {
	Target         int              `json:"target"`
	Established    int64            `json:"established"`
	Failed         int64            `json:"failed"`
	FailedByReason map[string]int64 `json:"failed_by_reason"`
	// DeflateAccepted counts the established connections whose 101
	// accepted the permessage-deflate offer (Config.Deflate).
	DeflateAccepted int64 `json:"deflate_accepted"`
	// DroppedByReason counts connections the server or the network closed
	// after their welcome (eof, reset, server_close_<code>, protocol).
	DroppedByReason map[string]int64 `json:"dropped_by_reason"`
	// RetriedByReason counts ramp dials that failed and were dialed again
	// (Config.Retries); a connection that then succeeded counts as
	// established only.
	RetriedByReason  map[string]int64 `json:"retried_by_reason,omitempty"`
	ConnectRatePerS  float64          `json:"connect_rate_per_s"` // established / (first dial → last welcome)
	RampSeconds      float64          `json:"ramp_s"`
	HandshakeLatency Percentiles      `json:"handshake_latency_us"` // dial start → welcome (topic: → subscribed)
}

// Delivery is what the clients received of what was published.
type Delivery struct {
	Published  int64       `json:"published"`
	Expected   int64       `json:"expected"`
	Delivered  int64       `json:"delivered"` // every message frame with a seq on the right channel, duplicates included
	Lost       int64       `json:"lost"`
	Duplicated int64       `json:"duplicated"`
	Reordered  int64       `json:"reordered"`
	Misrouted  int64       `json:"misrouted"` // message frames for a channel the connection does not listen on
	PerS       float64     `json:"per_s"`     // delivered / (first publish → last delivery)
	WindowS    float64     `json:"window_s"`
	Latency    Percentiles `json:"latency_us"` // publish (ts in the payload) → read by the client
	// FrameBytes is the size on the wire (header and payload as read) of
	// the delivered message frames; FrameBytesPerMsg divides it by
	// Delivered.
	FrameBytes       int64   `json:"frame_bytes"`
	FrameBytesPerMsg float64 `json:"frame_bytes_per_msg"`
	// Compressed counts the delivered messages that came compressed
	// (permessage-deflate, Config.Deflate); CompressedShare is its share of
	// Delivered.
	Compressed      int64   `json:"compressed"`
	CompressedShare float64 `json:"compressed_share"`
}

// Server is the measured gateway (summed over its processes).
type Server struct {
	RSSBefore          int64   `json:"rss_before_bytes"`
	RSSAfter           int64   `json:"rss_after_bytes"`
	RSSPerConn         float64 `json:"rss_per_conn_bytes"`
	GoroutinesBefore   int64   `json:"goroutines_before"`
	GoroutinesAfter    int64   `json:"goroutines_after"`
	GoroutinesPerConn  float64 `json:"goroutines_per_conn"`
	CPUSeconds         float64 `json:"cpu_seconds"` // over the publish and drain window
	CPUPerMillionDeliv float64 `json:"cpu_s_per_million_delivered"`
	// RampCPUSeconds is the server's CPU from before the ramp to after the
	// settle; CPUPerConnectUs divides it by the connections established:
	// the server's cost of an upgrade, which a shared host cannot inflate
	// the way it inflates the wall-clock connect rate.
	RampCPUSeconds  float64 `json:"ramp_cpu_seconds"`
	CPUPerConnectUs float64 `json:"cpu_us_per_connect"`
	// WrittenBytes is what the gateway wrote to its sockets over the
	// publish and drain window: the growth of wsgate_written_bytes_total
	// in --server-metrics, -1 without it (the gorilla baseline has no such
	// metric). WrittenPerDeliv divides it by the delivered messages.
	WrittenBytes    int64   `json:"written_bytes"`
	WrittenPerDeliv float64 `json:"written_bytes_per_delivered"`
	// NATSCPUSeconds is the NATS server's CPU over the same window
	// (--nats-pid), -1 without it: JetStream's share of durable work.
	NATSCPUSeconds float64 `json:"nats_cpu_seconds"`
}

// Client is wsbench itself: its workers and the publishing coordinator.
type Client struct {
	CPUSeconds      float64 `json:"cpu_seconds"` // over the whole run
	MaxRSSBytes     int64   `json:"max_rss_bytes"`
	HeapPerConn     float64 `json:"heap_bytes_per_conn"` // Go heap growth over the ramp / established
	ConnStructBytes int     `json:"conn_struct_bytes"`   // unsafe.Sizeof of the per-connection struct
	Workers         int     `json:"workers"`
	PollErrors      int64   `json:"poll_errors,omitempty"`
	// MeasuredCPUSeconds is wsbench's CPU over the window of
	// Server.CPUSeconds (worker processes: up to their last progress
	// report, at most 250 ms old); -1 for connect. CPUPerMillionDeliv
	// divides it by the delivered messages × 1e6.
	MeasuredCPUSeconds float64 `json:"measured_cpu_seconds"`
	CPUPerMillionDeliv float64 `json:"cpu_s_per_million_delivered"`
}

// Floor is the kernel's own cost of the same writes (floor scenario).
type Floor struct {
	Writes               int64   `json:"writes"`
	ShortWrites          int64   `json:"short_writes"`
	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUPerMillionWrites  float64 `json:"cpu_s_per_million_writes"`
	FrameBytes           int     `json:"frame_bytes"`
	ServerRSSPerConnByte float64 `json:"server_rss_per_conn_bytes"`
}

// Churn is the reconnect figures of the churn scenario.
type Churn struct {
	Reconnects       int64       `json:"reconnects"`
	ReconnectFailed  int64       `json:"reconnect_failed"`
	ReconnectLatency Percentiles `json:"reconnect_latency_us"` // close → welcome
}

// Scale is the scale scenario: the connections held for Config.Hold, then
// one unicast to each of Config.Sample distinct users, then
// Config.Messages broadcasts, each phase drained before the next.
type Scale struct {
	HoldSeconds float64    `json:"hold_s"`
	HeldConns   int64      `json:"held_conns"`   // open at the end of the hold, as the clients count them
	ServerConns int64      `json:"server_conns"` // wsgate_connections summed over --server-metrics then; -1 without
	Unicast     ScalePhase `json:"unicast"`
	Broadcast   ScalePhase `json:"broadcast"`
}

// ScalePhase is one publishing phase of the scale scenario.
type ScalePhase struct {
	Published int64   `json:"published"`
	Expected  int64   `json:"expected"`  // deliveries due to the open connections
	Delivered int64   `json:"delivered"` // deliveries read during the phase
	Seconds   float64 `json:"seconds"`   // first publish → last delivery (or --timeout)
}

// Resume is the resume scenario: every connection cut at once, Missed
// durable notifications published to each user meanwhile, then every
// connection reconnected and resumed from its last seq.
type Resume struct {
	// Cut is how the connections were cut: "client" (every connection
	// closed at once from the client side, without a close frame) or
	// "server" (CutCmd made the gateway close them, a restart).
	Cut            string `json:"cut"`
	CutCmd         string `json:"cut_cmd,omitempty"` // "server": the command that made the gateway close them (a restart)
	CutConnections int64  `json:"cut_connections"`
	Missed         int    `json:"missed"` // durable notifications published to each user while cut

	// The durable publishes while cut: how many the stream acked, how long
	// they took, and their rate (--publishers at once, each waiting for
	// its ack).
	Published   int64   `json:"published"`
	PublishS    float64 `json:"publish_s"`
	PublishPerS float64 `json:"publish_per_s"`
	Reconnected int64   `json:"reconnected"`
	// ReconnectRatePerS is Reconnected / (first reconnect dial → last
	// reconnect welcome): the connect rate of the storm, to set beside
	// Connections.ConnectRatePerS of the first ramp (same run, no resume).
	ReconnectRatePerS float64 `json:"reconnect_rate_per_s"`
	ReconnectFail     int64   `json:"reconnect_failed"`
	Resumed           int64   `json:"resumed"`     // resumed answers read
	Unrecovered       int64   `json:"unrecovered"` // answered recovered:false
	ResumeErrors      int64   `json:"resume_errors"`
	Complete          int64   `json:"complete"` // connections that applied every notification published to their user while cut

	// Checked per connection against the stream sequences the publisher
	// got acked for its user: Lost is acked sequences never applied,
	// Stray applied ones that were not the next acked one, DupApplied
	// duplicates left after the client's de-duplication (the prev rule).
	Expected        int64 `json:"expected"`
	Applied         int64 `json:"applied"`
	Lost            int64 `json:"lost"`
	Stray           int64 `json:"stray"`
	DupApplied      int64 `json:"dup_applied"`
	DupDropped      int64 `json:"dup_dropped"` // duplicates the rule removed
	GapDropped      int64 `json:"gap_dropped"`
	DroppedInResume int64 `json:"dropped_in_resume"` // frames between a resume and its answer, dropped as the protocol says

	// RecoveryS is cut → the last connection complete: the publishes while
	// cut, the reconnects and the replays. StormS is the first resume op →
	// the last connection complete; ReplayedPerS divides Applied by it.
	RecoveryS       float64     `json:"recovery_s"`
	StormS          float64     `json:"storm_s"`
	ReplayedPerS    float64     `json:"replayed_per_s"`
	RecoveryLatency Percentiles `json:"recovery_latency_us"` // per connection, cut → complete
	ResumeLatency   Percentiles `json:"resume_latency_us"`   // per connection, resume op → complete

	// From --server-metrics, growth over the reconnects and replays:
	// wsgate_history_requests_total by kind, their sum per resumed
	// answer, wsgate_resumes_total by outcome and wsgate_replayed_total.
	// Nil, or -1, without --server-metrics.
	HistoryRequests   map[string]float64 `json:"history_requests,omitempty"`
	RequestsPerResume float64            `json:"requests_per_resume"`
	ServerResumes     map[string]float64 `json:"server_resumes,omitempty"`
	ServerReplayed    float64            `json:"server_replayed"`

	// ServerCPUSeconds is the gateway's CPU over the reconnects and
	// replays (Server.CPUSeconds); CPUPerResumeUs divides it by the
	// resumed answers. It includes each reconnect's upgrade: compare with
	// Server.CPUPerConnectUs of the first ramp.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	CPUPerResumeUs   float64 `json:"cpu_us_per_resume"`
	// NATSCPUSeconds is the NATS server's (--nats-pid) over the same
	// window: the direct gets of the lookups and the replays.
	NATSCPUSeconds     float64 `json:"nats_cpu_seconds"`
	NATSCPUPerResumeUs float64 `json:"nats_cpu_us_per_resume"`
}

// Sample is one point of the timeline, taken every second.
type Sample struct {
	T           float64 `json:"t_s"`
	Phase       string  `json:"phase"`
	Connections int64   `json:"connections"`
	Delivered   int64   `json:"delivered"`
	ServerRSS   int64   `json:"server_rss_bytes"`
	ClientRSS   int64   `json:"client_rss_bytes"`
	P99US       int64   `json:"p99_us"`
}

// Machine describes where a run happened.
type Machine struct {
	Go       string `json:"go"`
	OS       string `json:"os"`
	CPUs     int    `json:"cpus"`
	Hostname string `json:"hostname"`
	Kernel   string `json:"kernel"`
}

// Percentiles are latency percentiles in microseconds.
type Percentiles struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50"`
	P90   int64 `json:"p90"`
	P99   int64 `json:"p99"`
	P999  int64 `json:"p999"`
	Max   int64 `json:"max"`
}

// PercentilesOf summarizes a histogram of microseconds (package hist).
func PercentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: h.TotalCount(),
		P50:   h.ValueAtQuantile(50),
		P90:   h.ValueAtQuantile(90),
		P99:   h.ValueAtQuantile(99),
		P999:  h.ValueAtQuantile(99.9),
		Max:   h.Max(),
	}
}

// ReadResult reads a --json file.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// WriteJSON writes r, indented, to path.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteTable writes the human summary of r.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("wsbench %s\t%s, %s, %.1f s", r.Label, r.Scenario, r.StartedAt.Format(time.RFC3339), r.DurationS)
	p("machine\t%s, %d CPUs, %s, kernel %s", r.Machine.Go, r.Machine.CPUs, r.Machine.Hostname, r.Machine.Kernel)
	c := r.Conns
	p("")
	p("connections\t%d of %d established, %d failed%s", c.Established, c.Target, c.Failed, reasons(c.FailedByReason))
	if len(c.RetriedByReason) > 0 {
		p("retried\t%s", strings.TrimPrefix(reasons(c.RetriedByReason), ": "))
	}
	if len(c.DroppedByReason) > 0 {
		p("dropped later\t%s", strings.TrimPrefix(reasons(c.DroppedByReason), ": "))
	}
	p("connect rate\t%s/s (ramp %.2f s)", Num(c.ConnectRatePerS), c.RampSeconds)
	p("handshake µs\t%s", pct(c.HandshakeLatency))
	if ch := r.Churn; ch != nil {
		p("reconnects\t%d, %d failed", ch.Reconnects, ch.ReconnectFailed)
		p("reconnect µs\t%s", pct(ch.ReconnectLatency))
	}
	if sc := r.Scale; sc != nil {
		p("")
		p("held\t%d open after %.0f s by the clients' count, %s by the gateways' wsgate_connections", sc.HeldConns, sc.HoldSeconds, countOrNone(sc.ServerConns))
		for _, ph := range []struct {
			name string
			f    ScalePhase
		}{{"unicast", sc.Unicast}, {"broadcast", sc.Broadcast}} {
			p("%s\t%d published, %d of %d deliveries due in %.2f s", ph.name, ph.f.Published, ph.f.Delivered, ph.f.Expected, ph.f.Seconds)
		}
	}
	if d := r.Delivery; d.Published > 0 && r.Upstream == nil { // upstream: the replies, below
		p("")
		p("published\t%d", d.Published)
		p("delivered\t%d of %d expected (%s/s over %.2f s)", d.Delivered, d.Expected, Num(d.PerS), d.WindowS)
		p("lost/dup/reord\t%d / %d / %d%s", d.Lost, d.Duplicated, d.Reordered, misrouted(d.Misrouted))
		p("delivery µs\t%s", pct(d.Latency))
		if d.Delivered > 0 {
			p("message frames\t%s read = %.0f B per delivered message (%s payload %d B)", Bytes(d.FrameBytes), d.FrameBytesPerMsg,
				r.Config.PayloadKind, r.Config.PayloadSize)
		}
	}
	if rs := r.Resume; rs != nil {
		p("")
		how := "closed by the client, all at once"
		if rs.CutCmd != "" {
			how = fmt.Sprintf("closed by the server: --cut-cmd %q", rs.CutCmd)
		}
		p("cut\t%d connections (%s), %d durable notifications per user meanwhile", rs.CutConnections, how, rs.Missed)
		p("published while cut\t%d acked in %.2f s (%s/s)", rs.Published, rs.PublishS, Num(rs.PublishPerS))
		p("reconnect rate\t%s/s (first ramp %s/s)", Num(rs.ReconnectRatePerS), Num(c.ConnectRatePerS))
		p("reconnected\t%d, %d failed; %d resumed (%d not recovered, %d errors); %d of %d complete",
			rs.Reconnected, rs.ReconnectFail, rs.Resumed, rs.Unrecovered, rs.ResumeErrors, rs.Complete, rs.CutConnections)
		p("replayed\t%d applied of %d acked: lost %d, stray %d, duplicates after de-duplication %d (removed %d, gaps %d, during resume %d)",
			rs.Applied, rs.Expected, rs.Lost, rs.Stray, rs.DupApplied, rs.DupDropped, rs.GapDropped, rs.DroppedInResume)
		p("full recovery\t%.2f s after the cut; resume storm %.2f s (first resume → last complete), %s replayed/s", rs.RecoveryS, rs.StormS, Num(rs.ReplayedPerS))
		p("recovery µs\t%s", pct(rs.RecoveryLatency))
		p("resume µs\t%s", pct(rs.ResumeLatency))
		if rs.HistoryRequests != nil {
			p("history requests\t%s = %.4f per resumed connection", strings.TrimPrefix(reasonsF(rs.HistoryRequests), ": "), rs.RequestsPerResume)
			p("server resumes\t%s; %.0f replayed", strings.TrimPrefix(reasonsF(rs.ServerResumes), ": "), rs.ServerReplayed)
		} else {
			p("history requests\tn/a (needs --server-metrics)")
		}
		if rs.CPUPerResumeUs >= 0 {
			p("server resume CPU\t%.3f s = %.1f µs per resume (reconnect and upgrade included)", rs.ServerCPUSeconds, rs.CPUPerResumeUs)
		}
		if rs.NATSCPUPerResumeUs >= 0 {
			p("NATS resume CPU\t%.3f s = %.1f µs per resume", rs.NATSCPUSeconds, rs.NATSCPUPerResumeUs)
		}
	}
	r.writeControl(p)
	if r.Config.Deflate {
		p("permessage-deflate\toffered; accepted by %d of %d established; %d of %d delivered messages came compressed (%.1f%%)",
			c.DeflateAccepted, c.Established, r.Delivery.Compressed, r.Delivery.Delivered, r.Delivery.CompressedShare*100)
	}
	if f := r.Floor; f != nil {
		p("")
		p("floor writes\t%d of %d bytes (%d short)", f.Writes, f.FrameBytes, f.ShortWrites)
		p("floor CPU\t%.3f s = %.2f CPU-s per million writes", f.CPUSeconds, f.CPUPerMillionWrites)
	}
	s := r.Server
	p("")
	if s.RSSBefore >= 0 {
		p("server RSS\t%s → %s = %s per connection", Bytes(s.RSSBefore), Bytes(s.RSSAfter), Bytes(int64(s.RSSPerConn)))
	} else {
		p("server RSS\tn/a (give --server-pid or --server-metrics)")
	}
	if s.GoroutinesBefore >= 0 {
		p("server goroutines\t%d → %d = %.4f per connection", s.GoroutinesBefore, s.GoroutinesAfter, s.GoroutinesPerConn)
	} else {
		p("server goroutines\tn/a (needs --server-metrics)")
	}
	if s.CPUPerConnectUs >= 0 && s.RampCPUSeconds >= 0 {
		p("server ramp CPU\t%.3f s = %.1f µs per connect", s.RampCPUSeconds, s.CPUPerConnectUs)
	}
	if s.CPUSeconds >= 0 && r.Delivery.Delivered > 0 {
		p("server CPU\t%.3f s = %.2f CPU-s per million delivered", s.CPUSeconds, s.CPUPerMillionDeliv)
	}
	if s.NATSCPUSeconds >= 0 && r.Resume == nil {
		p("NATS CPU\t%.3f s over publish and drain", s.NATSCPUSeconds)
	}
	if s.WrittenBytes >= 0 && r.Delivery.Delivered > 0 {
		p("server wrote\t%s over publish and drain = %.0f B per delivered message", Bytes(s.WrittenBytes), s.WrittenPerDeliv)
	} else if r.Delivery.Published > 0 && r.Floor == nil {
		p("server wrote\tn/a (needs --server-metrics with wsgate_written_bytes_total)")
	}
	cl := r.Client
	p("client\t%d worker(s), CPU %.2f s, max RSS %s, heap %s per connection (struct %d B)",
		cl.Workers, cl.CPUSeconds, Bytes(cl.MaxRSSBytes), Bytes(int64(cl.HeapPerConn)), cl.ConnStructBytes)
	if cl.MeasuredCPUSeconds >= 0 && r.Delivery.Delivered > 0 {
		p("client CPU\t%.3f s over publish and drain = %.2f CPU-s per million delivered", cl.MeasuredCPUSeconds, cl.CPUPerMillionDeliv)
	}
	for _, w := range r.Warnings {
		p("warning\t%s", w)
	}
	return tw.Flush()
}

func pct(p Percentiles) string {
	if p.Count == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		Micros(p.P50), Micros(p.P90), Micros(p.P99), Micros(p.P999), Micros(p.Max), p.Count)
}

// Micros formats microseconds readably: 850µs, 12.3ms, 1.20s.
func Micros(v int64) string {
	switch {
	case v < 1000:
		return fmt.Sprintf("%dµs", v)
	case v < 1_000_000:
		return fmt.Sprintf("%.1fms", float64(v)/1000)
	}
	return fmt.Sprintf("%.2fs", float64(v)/1e6)
}

// Num formats a count or a rate readably: 850, 12.3k, 1.20M.
func Num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// Bytes formats a size readably: 850 B, 12.3 KiB, 1.5 MiB; n/a when b is
// negative (not measured).
func Bytes(b int64) string {
	switch {
	case b < 0:
		return "n/a"
	case b < 10<<10:
		return fmt.Sprintf("%d B", b)
	case b < 10<<20:
		return fmt.Sprintf("%.1f KiB", float64(b)/1024)
	case b < 10<<30:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}

func reasons(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return ": " + strings.Join(parts, ", ")
}

// reasonsF is reasons for float counts: "a 1, b 2".
func reasonsF(m map[string]float64) string {
	n := make(map[string]int64, len(m))
	for k, v := range m {
		n[k] = int64(math.Round(v))
	}
	return reasons(n)
}

func misrouted(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d misrouted", n)
}

// countOrNone prints n, or "none" for a figure no source gave (-1).
func countOrNone(n int64) string {
	if n < 0 {
		return "none"
	}
	return strconv.FormatInt(n, 10)
}
