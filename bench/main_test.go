package bench

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/bench/internal/report"
)

func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(t.Context(), []string{"broadcast", "-help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"connect ", "broadcast ", "topic ", "unicast ", "churn ", "floor ", "-source-addrs", "-server-metrics", "-jwt-secret", "reordered", "-deflate", "-payload-kind", "-payload-file", "resume ", "-missed", "-durable", "-no-resume", "-nats-pid", "-cut-cmd"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if code := runMain(t.Context(), []string{"bogus"}, &out, &errOut); code != 2 {
		t.Errorf("bogus scenario: exit %d", code)
	}
}

func TestCompareCommand(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, rate := range []float64{1, 2} { // b connects twice as fast as a
		name := string(rune('a' + i))
		r := &Result{Label: name, Scenario: ScenarioBroadcast, StartedAt: time.Unix(1700000000, 0).UTC(),
			Conns: report.Connections{Target: 1000, Established: 1000, ConnectRatePerS: rate}}
		p := filepath.Join(dir, name+".json")
		if err := r.WriteJSON(p); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	var out, errOut bytes.Buffer
	if code := compareMain(files, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "2.00x") {
		t.Errorf("output:\n%s", out.String())
	}
	if code := compareMain(files[:1], &out, &errOut); code != 2 {
		t.Errorf("one file: exit %d, want 2", code)
	}
}
