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
