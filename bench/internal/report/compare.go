package report

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"
)

// figure is one row of compare: how to read it from a Result, how to show
// it, and whether lower is better (for the reader; ratios are plain b/a).
type figure struct {
	name  string
	get   func(*Result) float64 // NaN when the run did not measure it
	show  func(float64) string
	lower bool
}

func orNaN(v float64, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	return v
}

func latency(p Percentiles, v int64) float64 { return orNaN(float64(v), p.Count > 0) }

// cpuPerMillion is the server CPU per million delivered messages, or for a
// floor run the floor's CPU per million writes.
func cpuPerMillion(r *Result) float64 {
	if r.Floor != nil {
		return orNaN(r.Floor.CPUPerMillionWrites, r.Floor.Writes > 0)
	}
	return orNaN(r.Server.CPUPerMillionDeliv, r.Server.CPUPerMillionDeliv >= 0)
}

var figures = []figure{
	{"connect rate /s", func(r *Result) float64 { return orNaN(r.Conns.ConnectRatePerS, r.Conns.ConnectRatePerS > 0) }, fmtNum, false},
	{"handshake p99", func(r *Result) float64 { return latency(r.Conns.HandshakeLatency, r.Conns.HandshakeLatency.P99) }, fmtUS, true},
	{"established", func(r *Result) float64 { return float64(r.Conns.Established) }, fmtNum, false},
	{"failed", func(r *Result) float64 { return float64(r.Conns.Failed) }, fmtNum, true},
	{"server RSS / conn", func(r *Result) float64 { return orNaN(r.Server.RSSPerConn, r.Server.RSSPerConn >= 0) }, fmtBytes, true},
	{"server µs / connect", func(r *Result) float64 {
		return orNaN(r.Server.CPUPerConnectUs, r.Server.CPUPerConnectUs > 0)
	}, fmtCPU, true},
	{"goroutines / conn", func(r *Result) float64 { return orNaN(r.Server.GoroutinesPerConn, r.Server.GoroutinesPerConn >= 0) }, fmtFrac, true},
	{"delivery p50", func(r *Result) float64 { return latency(r.Delivery.Latency, r.Delivery.Latency.P50) }, fmtUS, true},
	{"delivery p99", func(r *Result) float64 { return latency(r.Delivery.Latency, r.Delivery.Latency.P99) }, fmtUS, true},
	{"delivery p99.9", func(r *Result) float64 { return latency(r.Delivery.Latency, r.Delivery.Latency.P999) }, fmtUS, true},
	{"delivery max", func(r *Result) float64 { return latency(r.Delivery.Latency, r.Delivery.Latency.Max) }, fmtUS, true},
	{"delivered /s", func(r *Result) float64 { return orNaN(r.Delivery.PerS, r.Delivery.PerS > 0) }, fmtNum, false},
	{"lost", func(r *Result) float64 { return orNaN(float64(r.Delivery.Lost), r.Delivery.Published > 0) }, fmtNum, true},
	{"cpu-s / million", cpuPerMillion, fmtCPU, true},
	{"NATS cpu-s (window)", func(r *Result) float64 { return orNaN(r.Server.NATSCPUSeconds, r.Server.NATSCPUSeconds > 0) }, fmtCPU, true},
	{"server bytes / msg", func(r *Result) float64 { return orNaN(r.Server.WrittenPerDeliv, r.Server.WrittenPerDeliv > 0) }, fmtNum, true},
	{"frame bytes / msg", func(r *Result) float64 { return orNaN(r.Delivery.FrameBytesPerMsg, r.Delivery.FrameBytesPerMsg > 0) }, fmtNum, true},
	{"compressed share", func(r *Result) float64 {
		return orNaN(r.Delivery.CompressedShare, r.Delivery.Delivered > 0 && r.Delivery.FrameBytes > 0)
	}, fmtPct, false},
	{"client cpu-s / million", func(r *Result) float64 {
		return orNaN(r.Client.CPUPerMillionDeliv, r.Client.CPUPerMillionDeliv > 0)
	}, fmtCPU, true},
	{"resume: reconnect rate /s", func(r *Result) float64 {
		return orNaN(resumeOf(r).ReconnectRatePerS, r.Resume != nil && r.Resume.ReconnectRatePerS > 0)
	}, fmtNum, false},
	{"resume: full recovery s", func(r *Result) float64 {
		return orNaN(resumeOf(r).RecoveryS, r.Resume != nil && r.Resume.RecoveryS > 0)
	}, fmtCPU, true},
	{"resume: replayed /s", func(r *Result) float64 {
		return orNaN(resumeOf(r).ReplayedPerS, r.Resume != nil && r.Resume.ReplayedPerS > 0)
	}, fmtNum, false},
	{"resume: lost", func(r *Result) float64 { return orNaN(float64(resumeOf(r).Lost), r.Resume != nil) }, fmtNum, true},
	{"resume: requests / resume", func(r *Result) float64 {
		return orNaN(resumeOf(r).RequestsPerResume, r.Resume != nil && r.Resume.RequestsPerResume >= 0)
	}, fmtFrac, true},
	{"resume: server µs / resume", func(r *Result) float64 {
		return orNaN(resumeOf(r).CPUPerResumeUs, r.Resume != nil && r.Resume.CPUPerResumeUs > 0)
	}, fmtCPU, true},
	{"client heap / conn", func(r *Result) float64 { return orNaN(r.Client.HeapPerConn, r.Client.HeapPerConn > 0) }, fmtBytes, true},
}

// Compare writes a table of the key figures of results, with the ratio of
// each later result to the first. names label the columns (file names).
// If one of the results is a floor run, a last row gives each run's CPU
// per million delivered as a multiple of the floor's CPU per million
// writes: the figure the capacity budget caps at 1.1 × floor
// (docs/capacity.md).
func Compare(w io.Writer, names []string, results []*Result) error {
	if len(results) < 2 {
		return fmt.Errorf("compare needs at least two results")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "figure\t")
	for i := range results {
		fmt.Fprintf(tw, "%s\t", letter(i))
		if i > 0 {
			fmt.Fprintf(tw, "%s/a\t", letter(i))
		}
	}
	fmt.Fprintln(tw)
	for _, f := range figures {
		fmt.Fprintf(tw, "%s\t", f.name)
		a := f.get(results[0])
		for i, r := range results {
			v := f.get(r)
			fmt.Fprintf(tw, "%s\t", showOrNA(f.show, v))
			if i > 0 {
				fmt.Fprintf(tw, "%s\t", ratio(v, a))
			}
		}
		fmt.Fprintln(tw)
	}
	var floor *Result
	for _, r := range results {
		if r.Floor != nil && r.Floor.Writes > 0 {
			floor = r
			break
		}
	}
	if floor != nil {
		fmt.Fprintf(tw, "cpu vs floor (%s)\t", letter(indexOf(results, floor)))
		fl := cpuPerMillion(floor)
		for i, r := range results {
			if r == floor {
				fmt.Fprint(tw, "1.00x\t")
			} else {
				fmt.Fprintf(tw, "%s\t", ratio(cpuPerMillion(r), fl))
			}
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, r := range results {
		name := ""
		if i < len(names) {
			name = " (" + names[i] + ")"
		}
		fmt.Fprintf(w, "  %s = %s: %s, %d conns, %s%s\n", letter(i), r.Label, r.Scenario, r.Conns.Target,
			r.StartedAt.Format("2006-01-02 15:04"), name)
	}
	return nil
}

// resumeOf returns r's resume figures, or zero ones for another scenario.
func resumeOf(r *Result) *Resume {
	if r.Resume == nil {
		return &Resume{}
	}
	return r.Resume
}

// letter names the i-th result column: a, b, c, …
func letter(i int) string {
	if i < 26 {
		return string(rune('a' + i))
	}
	return "r" + strconv.Itoa(i)
}

func showOrNA(show func(float64) string, v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return show(v)
}

func ratio(v, a float64) string {
	if math.IsNaN(v) || math.IsNaN(a) || a == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v/a)
}

func fmtNum(v float64) string   { return Num(v) }
func fmtUS(v float64) string    { return Micros(int64(v)) }
func fmtBytes(v float64) string { return Bytes(int64(v)) }
func fmtFrac(v float64) string  { return fmt.Sprintf("%.4f", v) }
func fmtCPU(v float64) string   { return fmt.Sprintf("%.2f", v) }
func fmtPct(v float64) string   { return fmt.Sprintf("%.1f%%", v*100) }

func indexOf(rs []*Result, r *Result) int {
	for i := range rs {
		if rs[i] == r {
			return i
		}
	}
	return -1
}
