package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func syntheticResult(label, scenario string, rate, p99, cpu float64) *Result {
	r := &Result{
		Label: label, Scenario: scenario, StartedAt: time.Unix(1700000000, 0).UTC(), DurationS: 12,
		Conns: Connections{Target: 1000, Established: 1000, ConnectRatePerS: rate,
			HandshakeLatency: Percentiles{Count: 1000, P50: 900, P90: 1500, P99: 3000, P999: 5000, Max: 9000}},
		Delivery: Delivery{Published: 20, Expected: 20000, Delivered: 20000, PerS: 4000,
			Latency: Percentiles{Count: 20000, P50: 2000, P90: 8000, P99: int64(p99), P999: int64(p99) * 2, Max: int64(p99) * 3}},
		Server: Server{RSSBefore: 10 << 20, RSSAfter: 12 << 20, RSSPerConn: 2097, GoroutinesBefore: -1, GoroutinesAfter: -1,
			GoroutinesPerConn: -1, CPUSeconds: cpu * 0.02, CPUPerMillionDeliv: cpu},
		Client:   Client{Workers: 1, CPUSeconds: 1, HeapPerConn: 700, ConnStructBytes: 88},
		Timeline: []Sample{{T: 1, Connections: 500, ServerRSS: 11 << 20, ClientRSS: 30 << 20}, {T: 2, Connections: 1000, Delivered: 10000, ServerRSS: 12 << 20, ClientRSS: 31 << 20}, {T: 3, Connections: 1000, Delivered: 20000, ServerRSS: 12 << 20, ClientRSS: 31 << 20}},
	}
	if scenario == ScenarioFloor {
		r.Floor = &Floor{Writes: 20000, CPUSeconds: cpu * 0.02, CPUPerMillionWrites: cpu, FrameBytes: 252}
	}
	return r
}

func TestCompare(t *testing.T) {
	a := syntheticResult("floor", ScenarioFloor, 8000, 40000, 10)
	b := syntheticResult("gw", ScenarioBroadcast, 12000, 80000, 11)
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

func TestCompareCommand(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i, r := range []*Result{syntheticResult("a", ScenarioBroadcast, 1, 1000, 1), syntheticResult("b", ScenarioBroadcast, 2, 2000, 2)} {
		p := filepath.Join(dir, string(rune('a'+i))+".json")
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

func TestHTML(t *testing.T) {
	r := syntheticResult("gw <1>", ScenarioBroadcast, 12000, 80000, 11)
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

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"scenario", Config{Scenario: "nope"}, "unknown scenario"},
		{"wss", Config{Scenario: ScenarioConnect, URLs: []string{"wss://x/ws"}}, "only ws://"},
		{"topic conns", Config{Scenario: ScenarioTopic, Topics: 2, SubsPerTopic: 3, Conns: 7}, "differs"},
		{"short secret", Config{Scenario: ScenarioConnect, JWTSecret: "short"}, "32 bytes"},
		{"sources", Config{Scenario: ScenarioConnect, SourceAddrs: "127.0.0.9-127.0.0.1"}, "bad range"},
		{"payload kind", Config{Scenario: ScenarioBroadcast, PayloadKind: "xml"}, "--payload-kind"},
		{"payload size of a template", Config{Scenario: ScenarioBroadcast, PayloadKind: PayloadJSON1K, PayloadSize: 200}, "applies to --payload-kind pad"},
		{"payload file missing", Config{Scenario: ScenarioBroadcast, PayloadFile: "/nonexistent/n.json"}, "--payload-file"},
		{"payload kind and file", Config{Scenario: ScenarioBroadcast, PayloadKind: PayloadJSON1K, PayloadFile: "n.json"}, "give one"},
		{"payload kind file without a file", Config{Scenario: ScenarioBroadcast, PayloadKind: PayloadFile}, "needs --payload-file"},
		{"deflate floor", Config{Scenario: ScenarioFloor, Deflate: true}, "--deflate"},
		{"inflate once without deflate", Config{Scenario: ScenarioBroadcast, InflateOnce: true}, "needs --deflate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.normalize()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
	c := Config{Scenario: ScenarioBroadcast, Conns: 60000}
	if err := c.normalize(); err != nil {
		t.Fatal(err)
	}
	if c.Workers != 4 || c.SourceAddrs != "127.0.0.1-127.0.0.3" {
		t.Errorf("60000 conns: workers %d sources %q", c.Workers, c.SourceAddrs)
	}
	for _, tc := range []struct {
		name, file string
		want       string
	}{
		{"pretty", "{\n  \"title\": \"hi\",\n  \"n\": [1, 2]\n}\n", `{"seq":1,"ts":1700000000000000000,"title":"hi","n":[1,2]}`},
		{"seq inside", `{"a":{"seq":1}}`, `{"seq":1,"ts":1700000000000000000,"a":{"seq":1}}`},
	} {
		t.Run("payload file "+tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "n.json")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			c := Config{Scenario: ScenarioBroadcast, PayloadFile: path}
			if err := c.normalize(); err != nil {
				t.Fatal(err)
			}
			got := appendTemplatePayload(nil, 1, 1700000000000000000, c.template)
			if c.PayloadKind != PayloadFile || string(got) != tc.want || c.PayloadSize != len(tc.want) {
				t.Errorf("kind %q size %d payload %s; want %s", c.PayloadKind, c.PayloadSize, got, tc.want)
			}
		})
	}
	ips, err := parseSources("127.0.0.1-127.0.0.50,10.0.0.7")
	if err != nil || len(ips) != 51 || ips[49].String() != "127.0.0.50" {
		t.Errorf("sources %v %v", ips, err)
	}
}

func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runMain(t.Context(), []string{"broadcast", "-help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"connect ", "broadcast ", "topic ", "unicast ", "churn ", "floor ", "-source-addrs", "-server-metrics", "-jwt-secret", "reordered", "-deflate", "-payload-kind", "-payload-file"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if code := runMain(t.Context(), []string{"bogus"}, &out, &errOut); code != 2 {
		t.Errorf("bogus scenario: exit %d", code)
	}
}
