package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// The servers of a round, in the order the summary shows them.
var labels = []string{"wsgate", "baseline", "floor"}

// round is one round's results by label; a server whose run failed is
// missing.
type round struct {
	name string // r1, r2, …
	res  map[string]*result
}

// ratio is a figure of a round computed from its results; NaN when a
// result is missing or the divisor is zero.
type ratio struct {
	name string
	of   func(round) float64
}

// ratios are the figures the comparison is about.
var ratios = []ratio{
	{"wsgate CPU per million delivered ÷ floor", quotient("wsgate", "floor", func(r *result) float64 { return r.ServerCPUSPerM })},
	{"baseline CPU per million delivered ÷ floor", quotient("baseline", "floor", func(r *result) float64 { return r.ServerCPUSPerM })},
	{"wsgate broadcast p99 ÷ baseline", quotient("wsgate", "baseline", func(r *result) float64 { return r.LatencyMS.P99 })},
	{"wsgate connect rate ÷ baseline", quotient("wsgate", "baseline", func(r *result) float64 { return r.ConnectRatePerS })},
	{"wsgate CPU per connect ÷ baseline", quotient("wsgate", "baseline", func(r *result) float64 { return r.ServerCPUUSPerConnect })},
}

func quotient(a, b string, field func(*result) float64) func(round) float64 {
	return func(rd round) float64 {
		ra, rb := rd.res[a], rd.res[b]
		if ra == nil || rb == nil || field(rb) == 0 {
			return math.NaN()
		}
		return field(ra) / field(rb)
	}
}

// loadRounds reads dir/r<k>/<label>.json, rounds in the order of k.
func loadRounds(dir string) ([]round, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "r[0-9]*"))
	if err != nil {
		return nil, err
	}
	k := func(p string) int { n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "r")); return n }
	slices.SortFunc(paths, func(a, b string) int { return k(a) - k(b) })
	var rounds []round
	for _, p := range paths {
		rd := round{name: filepath.Base(p), res: make(map[string]*result)}
		for _, l := range labels {
			b, err := os.ReadFile(filepath.Join(p, l+".json"))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			var r result
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, fmt.Errorf("%s/%s.json: %w", p, l, err)
			}
			rd.res[l] = &r
		}
		rounds = append(rounds, rd)
	}
	if len(rounds) == 0 {
		return nil, fmt.Errorf("no round (r1, r2, …) in %s", dir)
	}
	return rounds, nil
}

// writeSummary writes a table per round, the ratios by round with their
// medians, and each server's medians.
func writeSummary(w io.Writer, rounds []round) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, rd := range rounds {
		fmt.Fprintf(tw, "%s\tconns\tfailed\tconnect/s\tCPU µs/connect\tRSS B/idle conn\tdelivered\tlost\tdup\treordered\tp50 ms\tp90 ms\tp99 ms\tmax ms\tCPU s/M delivered\tclient CPU s\t\n", rd.name)
		for _, l := range labels {
			r := rd.res[l]
			if r == nil {
				fmt.Fprintf(tw, "%s\t-\t\n", l) // its run failed
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.1f\t%.0f\t%d/%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f\t%.2f\t\n",
				l, r.ConnsEstablished, r.ConnsFailed, r.ConnectRatePerS, r.ServerCPUUSPerConnect, r.RSSBytesPerIdleConn,
				r.Delivered, r.DeliveriesExpected, r.Lost, r.Duplicated, r.Reordered,
				r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max, r.ServerCPUSPerM,
				r.ClientCPURampS+r.ClientCPUBroadcastS)
		}
		fmt.Fprintln(tw, "\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "ratio")
	for _, rd := range rounds {
		fmt.Fprintf(tw, "\t%s", rd.name)
	}
	fmt.Fprintln(tw, "\tmedian")
	for _, ra := range ratios {
		fmt.Fprint(tw, ra.name)
		per := make([]float64, len(rounds))
		for i, rd := range rounds {
			per[i] = ra.of(rd)
			fmt.Fprintf(tw, "\t%s", num(per[i], 2))
		}
		fmt.Fprintf(tw, "\t%s\n", num(median(per), 2))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "median of the rounds\tconnect/s\tCPU µs/connect\tRSS B/idle conn\tp99 ms\tCPU s/M delivered")
	for _, l := range labels {
		m := func(field func(*result) float64) float64 { return median(values(rounds, l, field)) }
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l,
			num(m(func(r *result) float64 { return r.ConnectRatePerS }), 0),
			num(m(func(r *result) float64 { return r.ServerCPUUSPerConnect }), 1),
			num(m(func(r *result) float64 { return r.RSSBytesPerIdleConn }), 0),
			num(m(func(r *result) float64 { return r.LatencyMS.P99 }), 2),
			num(m(func(r *result) float64 { return r.ServerCPUSPerM }), 3))
	}
	return tw.Flush()
}

// values returns field of label's result in each round that has one.
func values(rounds []round, label string, field func(*result) float64) []float64 {
	var v []float64
	for _, rd := range rounds {
		if r := rd.res[label]; r != nil {
			v = append(v, field(r))
		}
	}
	return v
}

// median returns the median of the numbers of v that are not NaN, NaN if
// there are none.
func median(v []float64) float64 {
	v = slices.DeleteFunc(slices.Clone(v), math.IsNaN)
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// num formats f with prec decimals, "-" for NaN.
func num(f float64, prec int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "-"
	}
	return strconv.FormatFloat(f, 'f', prec, 64)
}
