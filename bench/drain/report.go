package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// observed is what the harness saw of gateway A around its SIGTERM at t0.
// A zero time means the event was not seen.
type observed struct {
	t0          time.Time
	connectTime time.Duration // to connect every client to A

	readyz503  time.Time // first /readyz answer 503
	readyzBody string

	lastAccept  time.Time // last probe A welcomed after t0
	firstRefuse time.Time // first probe A did not welcome after t0
	refuseErr   string

	exitAt     time.Time
	exitStatus string // as os.ProcessState.String, or "killed by the harness after ..."
	exitCode   int    // -1 when signalled

	logLinesA, logLinesB int // lines A and B wrote (at --log-level warn)
	closeTimeouts        int // A's wsgate_close_timeouts_total, last scraped
}

// Report is the outcome of one run, as printed and as written by -json.
// Times are seconds after A's SIGTERM; nil means the event did not happen.
type Report struct {
	N             int     `json:"n"`
	Connected     int     `json:"connected"` // clients A welcomed before the SIGTERM
	ConnectS      float64 `json:"connect_s"`
	DrainDelayS   float64 `json:"drain_delay_s"`
	DrainTimeoutS float64 `json:"drain_timeout_s"`
	DrainFlags    bool    `json:"drain_flags"` // false: the binary has no --drain-delay/--drain-timeout
	BucketS       float64 `json:"bucket_s"`

	Readyz503S   *float64 `json:"readyz_503_s"`
	ReadyzBody   string   `json:"readyz_body,omitempty"`
	LastAcceptS  *float64 `json:"last_accept_s"`  // last new connection A welcomed
	FirstRefuseS *float64 `json:"first_refuse_s"` // first new connection A did not welcome
	RefuseError  string   `json:"refuse_error,omitempty"`
	First1001S   *float64 `json:"first_1001_s"`
	Last1001S    *float64 `json:"last_1001_s"`
	ExitS        *float64 `json:"exit_s"`
	ExitStatus   string   `json:"exit_status"`
	ExitCode     int      `json:"exit_code"`

	Got1001       int `json:"got_1001"`
	Reconnected   int `json:"reconnected"`
	No1001        int `json:"no_1001"`        // connected clients whose connection to A ended otherwise
	NoReconnect   int `json:"no_reconnect"`   // connected clients without a welcome from B
	ConnectFailed int `json:"connect_failed"` // clients that never got A's welcome
	// Failures counts errors by stage (connect, close, reconnect) and kind.
	Failures map[string]map[string]int `json:"failures,omitempty"`

	// ReconnectMs is B's welcome minus A's close, over reconnected clients.
	ReconnectMs Percentiles `json:"reconnect_ms"`

	// Buckets covers t0 to the later of the last reconnect and
	// drain-delay + drain-timeout.
	Buckets []Bucket `json:"buckets"`
	// MaxBucket is the largest bucket's reconnects. MeanBucket is what a
	// bucket would hold were the reconnects spread evenly over
	// drain-timeout; MaxOverMean near 1 is a trickle, near
	// drain-timeout/bucket a wave. ActiveBuckets counts the buckets from
	// the first reconnect's to the last one's.
	MaxBucket     int     `json:"max_bucket"`
	MeanBucket    float64 `json:"mean_bucket"`
	MaxOverMean   float64 `json:"max_over_mean"`
	ActiveBuckets int     `json:"active_buckets"`

	// CloseTimeouts is A's wsgate_close_timeouts_total when last scraped
	// (every 100ms until it exits): close handshakes it gave up on.
	CloseTimeouts int `json:"close_timeouts"`

	LogLinesA int `json:"log_lines_a"`
	LogLinesB int `json:"log_lines_b"`
}

// Percentiles of a latency, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Bucket counts the events of one bucket-long slice of time.
type Bucket struct {
	StartS     float64 `json:"start_s"`
	Closes     int     `json:"closes"`     // 1001 frames from A
	Reconnects int     `json:"reconnects"` // welcomes from B
}

// newReport sums up the clients and what was observed of A.
func newReport(cfg config, clients []client, o observed) *Report {
	r := &Report{
		N:             len(clients),
		ConnectS:      round(o.connectTime.Seconds()),
		DrainDelayS:   cfg.drainDelay.Seconds(),
		DrainTimeoutS: cfg.drainTimeout.Seconds(),
		DrainFlags:    cfg.drainFlags,
		BucketS:       cfg.bucket.Seconds(),
		Readyz503S:    since(o.t0, o.readyz503),
		ReadyzBody:    o.readyzBody,
		LastAcceptS:   since(o.t0, o.lastAccept),
		FirstRefuseS:  since(o.t0, o.firstRefuse),
		RefuseError:   o.refuseErr,
		ExitS:         since(o.t0, o.exitAt),
		ExitStatus:    o.exitStatus,
		ExitCode:      o.exitCode,
		CloseTimeouts: o.closeTimeouts,
		LogLinesA:     o.logLinesA,
		LogLinesB:     o.logLinesB,
	}
	fail := func(stage string, err error) {
		if r.Failures == nil {
			r.Failures = map[string]map[string]int{}
		}
		if r.Failures[stage] == nil {
			r.Failures[stage] = map[string]int{}
		}
		r.Failures[stage][kind(err)]++
	}
	var closes, welcomes []time.Duration
	var latency []float64
	for i := range clients {
		c := &clients[i]
		if c.dialErr != nil {
			r.ConnectFailed++
			fail("connect", c.dialErr)
			continue
		}
		r.Connected++
		if c.got1001() {
			r.Got1001++
			closes = append(closes, c.endAt.Sub(o.t0))
		} else {
			r.No1001++
			if c.closeErr != nil {
				fail("close", c.closeErr)
			} else {
				fail("close", fmt.Errorf("close %d", c.code))
			}
		}
		if c.welcomeB.IsZero() {
			r.NoReconnect++
			if c.reconnErr != nil {
				fail("reconnect", c.reconnErr)
			}
			continue
		}
		r.Reconnected++
		welcomes = append(welcomes, c.welcomeB.Sub(o.t0))
		latency = append(latency, float64(c.welcomeB.Sub(c.endAt).Microseconds())/1e3)
	}
	if len(closes) > 0 {
		r.First1001S, r.Last1001S = seconds(slices.Min(closes)), seconds(slices.Max(closes))
	}
	r.ReconnectMs = percentiles(latency)
	end := cfg.drainDelay + cfg.drainTimeout
	if len(welcomes) > 0 {
		end = max(end, slices.Max(welcomes)+1)
	}
	r.Buckets = buckets(cfg.bucket, end, closes, welcomes)
	r.ActiveBuckets, r.MaxBucket = spread(r.Buckets)
	r.MeanBucket = round(float64(r.Reconnected) / max(float64(cfg.drainTimeout)/float64(cfg.bucket), 1))
	if r.MeanBucket > 0 {
		r.MaxOverMean = round(float64(r.MaxBucket) / r.MeanBucket)
	}
	return r
}

// buckets counts closes and welcomes in slices of width from 0 to end.
// Events before 0 count in the first bucket.
func buckets(width, end time.Duration, closes, welcomes []time.Duration) []Bucket {
	n := int((end + width - 1) / width)
	bs := make([]Bucket, n)
	for i := range bs {
		bs[i].StartS = round((time.Duration(i) * width).Seconds())
	}
	index := func(d time.Duration) int { return min(max(int(d/width), 0), n-1) }
	for _, d := range closes {
		bs[index(d)].Closes++
	}
	for _, d := range welcomes {
		bs[index(d)].Reconnects++
	}
	return bs
}

// spread returns the number of buckets from the first with a reconnect to
// the last with one, and the largest count.
func spread(bs []Bucket) (active, largest int) {
	first, last := -1, -1
	for i, b := range bs {
		if b.Reconnects == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
		largest = max(largest, b.Reconnects)
	}
	if first < 0 {
		return 0, 0
	}
	return last - first + 1, largest
}

// percentiles returns the nearest-rank p50 and p99 and the maximum of ms.
func percentiles(ms []float64) Percentiles {
	if len(ms) == 0 {
		return Percentiles{}
	}
	s := slices.Sorted(slices.Values(ms))
	rank := func(q float64) float64 { return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)] }
	return Percentiles{P50: rank(0.50), P99: rank(0.99), Max: s[len(s)-1]}
}

func since(t0, t time.Time) *float64 {
	if t.IsZero() {
		return nil
	}
	return seconds(t.Sub(t0))
}

func seconds(d time.Duration) *float64 {
	s := round(d.Seconds())
	return &s
}

// round keeps three decimals: milliseconds, for seconds.
func round(f float64) float64 { return math.Round(f*1000) / 1000 }

// print writes the report as a table and a bar chart of reconnects.
func (r *Report) print(w io.Writer) {
	at := func(s *float64) string {
		if s == nil {
			return "-"
		}
		return fmt.Sprintf("%.3fs", *s)
	}
	flags := ""
	if !r.DrainFlags {
		flags = " (binary without the drain flags: not passed)"
	}
	fmt.Fprintf(w, "drain of %d connections, --drain-delay %v --drain-timeout %v%s\n\n", r.N,
		time.Duration(r.DrainDelayS*float64(time.Second)), time.Duration(r.DrainTimeoutS*float64(time.Second)), flags)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string, note ...any) {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k, v, fmt.Sprint(note...))
	}
	row("connected to A", fmt.Sprintf("%d", r.Connected), fmt.Sprintf("of %d in %.2fs", r.N, r.ConnectS))
	row("readyz 503", at(r.Readyz503S), quote(r.ReadyzBody))
	row("last accepted", at(r.LastAcceptS), "probe connection A welcomed")
	row("first refused", at(r.FirstRefuseS), r.RefuseError)
	row("first 1001", at(r.First1001S), "")
	row("last 1001", at(r.Last1001S), "")
	spreadNote := ""
	if r.First1001S != nil {
		spreadNote = fmt.Sprintf("1001s spread over %.3fs", *r.Last1001S-*r.First1001S)
	}
	row("A exited", at(r.ExitS), r.ExitStatus)
	row("got 1001", fmt.Sprintf("%d", r.Got1001), spreadNote)
	row("reconnected to B", fmt.Sprintf("%d", r.Reconnected), "")
	row("no 1001", fmt.Sprintf("%d", r.No1001), failures(r.Failures["close"]))
	row("no reconnect", fmt.Sprintf("%d", r.NoReconnect), failures(r.Failures["reconnect"]))
	row("connect failed", fmt.Sprintf("%d", r.ConnectFailed), failures(r.Failures["connect"]))
	row("reconnect p50", fmt.Sprintf("%.2fms", r.ReconnectMs.P50), "B's welcome minus A's close")
	row("reconnect p99", fmt.Sprintf("%.2fms", r.ReconnectMs.P99), "")
	row("reconnect max", fmt.Sprintf("%.2fms", r.ReconnectMs.Max), "")
	row("max bucket", fmt.Sprintf("%d", r.MaxBucket), fmt.Sprintf("reconnects in the busiest %gs", r.BucketS))
	row("mean bucket", fmt.Sprintf("%.1f", r.MeanBucket), "reconnects spread evenly over drain-timeout")
	row("max / mean", fmt.Sprintf("%.2f", r.MaxOverMean), fmt.Sprintf("1 is a flat trickle, %g one wave", max(r.DrainTimeoutS/r.BucketS, 1)))
	row("active buckets", fmt.Sprintf("%d", r.ActiveBuckets), "from the first reconnect's to the last one's")
	row("A close timeouts", fmt.Sprintf("%d", r.CloseTimeouts), "close handshakes A gave up on (last scrape)")
	row("gateway log lines", fmt.Sprintf("A %d, B %d", r.LogLinesA, r.LogLinesB), "")
	tw.Flush()

	fmt.Fprintf(w, "\nreconnects to B per %gs after SIGTERM (closes from A in brackets)\n", r.BucketS)
	const width = 50
	for _, b := range r.Buckets {
		bar := 0
		if r.MaxBucket > 0 {
			bar = (b.Reconnects*width + r.MaxBucket - 1) / r.MaxBucket
		}
		fmt.Fprintf(w, "%7.1fs |%-*s| %6d  (%d)\n", b.StartS, width, strings.Repeat("#", min(bar, width)), b.Reconnects, b.Closes)
	}
}

func quote(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("%q", s)
}

// failures lists error kinds by count, most frequent first.
func failures(m map[string]int) string {
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// writeJSON writes r, indented, to path.
func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
