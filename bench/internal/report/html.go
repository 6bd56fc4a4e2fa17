package report

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
)

// WriteHTML writes a self-contained report of r to path: the summary
// table, latency percentiles and the timeline as inline SVG. It needs no
// script and no network.
func (r *Result) WriteHTML(path string) error {
	var b bytes.Buffer
	if err := r.RenderHTML(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// RenderHTML writes the report of WriteHTML to w.
func (r *Result) RenderHTML(w io.Writer) error {
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		return err
	}
	var b strings.Builder
	title := html.EscapeString("wsbench " + r.Label)
	fmt.Fprintf(&b, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%s</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}
svg{display:block;margin:1em 0;background:#fff;border:1px solid #ddd}
svg text{font:12px system-ui,sans-serif;fill:#333}
</style></head><body>
<h1>%s</h1>
<pre>%s</pre>
`, title, title, html.EscapeString(table.String()))

	b.WriteString("<h2>Latency percentiles</h2>\n")
	var groups []barGroup
	if p := r.Conns.HandshakeLatency; p.Count > 0 {
		groups = append(groups, barGroup{"handshake", p})
	}
	if r.Churn != nil && r.Churn.ReconnectLatency.Count > 0 {
		groups = append(groups, barGroup{"reconnect", r.Churn.ReconnectLatency})
	}
	if p := r.Delivery.Latency; p.Count > 0 {
		groups = append(groups, barGroup{"delivery", p})
	}
	if rs := r.Resume; rs != nil {
		if rs.ResumeLatency.Count > 0 {
			groups = append(groups, barGroup{"resume → complete", rs.ResumeLatency})
		}
		if rs.RecoveryLatency.Count > 0 {
			groups = append(groups, barGroup{"cut → complete", rs.RecoveryLatency})
		}
	}
	b.WriteString(percentileChart(groups))

	if len(r.Timeline) > 1 {
		xs := make([]float64, len(r.Timeline))
		conns := make([]float64, len(r.Timeline))
		srv := make([]float64, len(r.Timeline))
		cli := make([]float64, len(r.Timeline))
		rate := make([]float64, len(r.Timeline))
		hasSrv := false
		for i, s := range r.Timeline {
			xs[i] = s.T
			conns[i] = float64(s.Connections)
			srv[i] = math.NaN()
			if s.ServerRSS >= 0 {
				srv[i], hasSrv = float64(s.ServerRSS)/(1<<20), true
			}
			cli[i] = float64(s.ClientRSS) / (1 << 20)
			if i > 0 {
				if dt := s.T - r.Timeline[i-1].T; dt > 0 {
					rate[i] = float64(s.Delivered-r.Timeline[i-1].Delivered) / dt
				}
			}
		}
		b.WriteString("<h2>Connections over time</h2>\n")
		b.WriteString(lineChart("open connections", xs, []series{{"connections", "#1f77b4", conns}}))
		b.WriteString("<h2>Memory over time</h2>\n")
		mem := []series{{"client RSS MiB", "#ff7f0e", cli}}
		if hasSrv {
			mem = append([]series{{"server RSS MiB", "#2ca02c", srv}}, mem...)
		}
		b.WriteString(lineChart("MiB", xs, mem))
		if r.Delivery.Delivered > 0 {
			b.WriteString("<h2>Deliveries per second</h2>\n")
			b.WriteString(lineChart("delivered/s", xs, []series{{"delivered/s", "#d62728", rate}}))
		}
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type barGroup struct {
	name string
	p    Percentiles
}

// percentileChart draws one row of bars per group (p50 … max) on a
// logarithmic axis, since max is often 100 times p50.
func percentileChart(groups []barGroup) string {
	if len(groups) == 0 {
		return "<p>No latencies were recorded.</p>\n"
	}
	const w, rowH, left, right = 900, 22, 160, 90
	labels := []string{"p50", "p90", "p99", "p99.9", "max"}
	colors := []string{"#9ecae1", "#6baed6", "#3182bd", "#08519c", "#e6550d"}
	hi := 1.0
	for _, g := range groups {
		hi = math.Max(hi, float64(g.p.Max))
	}
	lo := 1.0
	scale := func(v int64) float64 {
		x := math.Log10(math.Max(float64(v), lo)) / math.Log10(math.Max(hi, 10))
		return math.Max(2, x*(w-left-right))
	}
	h := len(groups)*(len(labels)*rowH+20) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", w, h, w, h)
	y := 10
	for _, g := range groups {
		fmt.Fprintf(&b, `<text x="4" y="%d" font-weight="bold">%s</text>`+"\n", y+14, html.EscapeString(g.name))
		vals := []int64{g.p.P50, g.p.P90, g.p.P99, g.p.P999, g.p.Max}
		for i, v := range vals {
			yy := y + i*rowH
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, left-8, yy+15, labels[i])
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, left, yy+3, scale(v), rowH-6, colors[i])
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(left)+scale(v)+6, yy+15, Micros(v))
		}
		y += len(labels)*rowH + 20
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">log scale, µs</text>`, left, h-8)
	b.WriteString("</svg>\n")
	return b.String()
}

type series struct {
	name  string
	color string
	ys    []float64 // NaN: no value
}

// lineChart draws series over xs (seconds since the start).
func lineChart(unit string, xs []float64, ss []series) string {
	const w, h, left, right, top, bottom = 900, 260, 70, 20, 20, 40
	xmax := xs[len(xs)-1]
	if xmax <= 0 {
		xmax = 1
	}
	ymax := 0.0
	for _, s := range ss {
		for _, v := range s.ys {
			if !math.IsNaN(v) {
				ymax = math.Max(ymax, v)
			}
		}
	}
	if ymax == 0 {
		ymax = 1
	}
	ymax = niceCeil(ymax)
	px := func(x float64) float64 { return left + x/xmax*(w-left-right) }
	py := func(y float64) float64 { return h - bottom - y/ymax*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", w, h, w, h)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/>`, left, w-right, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, Num(v))
	}
	for i := 0; i <= 5; i++ {
		x := xmax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%.0fs</text>`, px(x), h-bottom+16, x)
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#999"/>`+"\n", left, w-right, h-bottom, h-bottom)
	for i, s := range ss {
		var pts []string
		for j, v := range s.ys {
			if !math.IsNaN(v) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[j]), py(v)))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="4" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			left+10+i*180, h-12, s.color, left+26+i*180, h-7, html.EscapeString(s.name))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, 4, top-6, html.EscapeString(unit))
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
