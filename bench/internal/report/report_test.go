package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/bench/internal/config"
)

func TestCompare(t *testing.T) {
	a := syntheticResult("floor", config.ScenarioFloor, 8000, 40000, 10)
	b := syntheticResult("gw", config.ScenarioBroadcast, 12000, 80000, 11)
	var out bytes.Buffer
	if err := Compare(&out, []string{"a.json", "b.json"}, []*Result{a, b}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	t.Log("\n" + s)
	for _, want := range []string{"connect rate /s", "1.50x", "delivery p99", "80.0ms", "2.00x", "cpu-s / million", "1.10x", "cpu vs floor (a)", "goroutines / conn", "n/a", "server bytes / msg", "compressed share", "b = gw: broadcast, 1000 conns", "(b.json)"} {
		if !strings.Contains(s, want) {
			t.Errorf("compare output lacks %q", want)
		}
	}
	if err := Compare(&out, nil, []*Result{a}); err == nil {
		t.Error("compare of one result succeeded")
	}
}
func TestHTML(t *testing.T) {
	r := syntheticResult("gw <1>", config.ScenarioBroadcast, 12000, 80000, 11)
	p := filepath.Join(t.TempDir(), "r.html")
	if err := r.WriteHTML(p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"<svg", "<polyline", "handshake", "delivery", "gw &lt;1&gt;", "server RSS MiB"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://"} {
		if strings.Contains(strings.ReplaceAll(s, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("report contains %q: it must be self-contained", bad)
		}
	}
}

// TestResumeReport: the resume figures reach the table, the HTML report
// and compare, and other scenarios show n/a for them.
func TestResumeReport(t *testing.T) {
	r := syntheticResult("resume", config.ScenarioResume, 12000, 80000, 11)
	r.Resume = &Resume{Cut: "client", CutConnections: 1000, Missed: 10, Published: 10000, Reconnected: 1000, Resumed: 1000,
		Complete: 1000, Expected: 10000, Applied: 10000, RecoveryS: 2.5, StormS: 1.25, ReplayedPerS: 8000,
		RecoveryLatency: Percentiles{Count: 1000, P50: 1e6, P99: 2e6, Max: 2.5e6}, ResumeLatency: Percentiles{Count: 1000, P50: 5e5, P99: 1e6, Max: 1.2e6},
		HistoryRequests: map[string]float64{"last": 2, "read": 1000}, RequestsPerResume: 1.002,
		ServerResumes: map[string]float64{"recovered": 1000}, ServerReplayed: 10000, ServerCPUSeconds: 0.5, CPUPerResumeUs: 500}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1000 connections (closed by the client, all at once), 10 durable", "lost 0, stray 0, duplicates after de-duplication 0",
		"full recovery", "2.50 s after the cut", "last 2, read 1000 = 1.0020 per resumed connection", "500.0 µs per resume"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var html bytes.Buffer
	if err := r.RenderHTML(&html); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "cut → complete") {
		t.Error("HTML report lacks the recovery percentiles")
	}
	other := syntheticResult("gw", config.ScenarioBroadcast, 12000, 80000, 11)
	var out bytes.Buffer
	if err := Compare(&out, nil, []*Result{other, r}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"resume: requests / resume", "1.0020", "resume: full recovery s", "2.50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare lacks %q:\n%s", want, out.String())
		}
	}
}
