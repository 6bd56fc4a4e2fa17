package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The operator documentation is checked against the binary and the code,
// so that it cannot drift: the flag tables of docs/operations.md against
// `wsgate --help`, and every metric name and label value the docs and the
// Grafana dashboard use against the metrics the gateway registers.

// The documents, relative to this package's directory.
const (
	docsOperations   = "../../docs/operations.md"
	docsProtocol     = "../../docs/protocol.md"
	docsArchitecture = "../../docs/architecture.md"
	docsServices     = "../../docs/services.md"
	docsSecurity     = "../../docs/security.md"
	docsDashboard    = "../../docs/grafana-dashboard.json"
)

func TestDocs(t *testing.T) {
	bin := buildBinary(t)
	t.Run("flags", func(t *testing.T) { testDocsFlags(t, bin) })
	t.Run("metrics", func(t *testing.T) { testDocsMetrics(t, bin) })
	t.Run("health", testDocsHealth)
	t.Run("dashboard", testDocsDashboard)
}

// docsFlag is a flag as `--help` prints it.
type docsFlag struct {
	name, typ string // typ is "" for a bool flag
	def       string // the printed default; "" when help leaves it out (a zero value)
}

// docsDefault is the default cell docs/operations.md must show for f.
func (f docsFlag) docsDefault() string {
	switch {
	case f.def != "":
		return "`" + f.def + "`"
	case f.typ == "":
		return "`false`"
	case f.typ == "string":
		return "(empty)"
	}
	return "`0`"
}

var helpDefault = regexp.MustCompile(`\(default ("(?:[^"\\]|\\.)*"|[^()]*)\)$`)

// docsHelpFlags runs bin with args and --help and returns the flags it lists.
func docsHelpFlags(t *testing.T, bin string, args ...string) []docsFlag {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s --help: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	var flags []docsFlag
	var usage strings.Builder
	finish := func() {
		if len(flags) == 0 {
			return
		}
		if m := helpDefault.FindStringSubmatch(usage.String()); m != nil {
			def := m[1]
			if uq, err := strconv.Unquote(def); err == nil {
				def = uq
			}
			flags[len(flags)-1].def = def
		}
		usage.Reset()
	}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "  -"):
			finish()
			fields := strings.Fields(line)
			f := docsFlag{name: strings.TrimPrefix(fields[0], "-")}
			if len(fields) > 1 {
				f.typ = fields[1]
			}
			flags = append(flags, f)
		case strings.HasPrefix(line, "    \t"):
			usage.WriteString(strings.TrimPrefix(line, "    \t"))
		}
	}
	finish()
	if len(flags) == 0 {
		t.Fatalf("%s --help lists no flags:\n%s", bin, out)
	}
	return flags
}

func docsRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// flagRow matches a row of a flag table: | `--name` | `ENV` | default | meaning |.
var flagRow = regexp.MustCompile("^\\| `--([a-z0-9-]+)` \\| ([^|]*) \\| ([^|]*) \\|")

// Every flag of `wsgate --help` has a row in a flag table of
// docs/operations.md with its environment variable and its default, and
// every row is a real flag; every `--flag` the docs quote exists.
func testDocsFlags(t *testing.T, bin string) {
	flags := docsHelpFlags(t, bin)
	ops := docsRead(t, docsOperations)

	rows := make(map[string][2]string) // flag → environment cell, default cell
	for line := range strings.Lines(ops) {
		m := flagRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("operations.md: two rows for --%s", m[1])
		}
		rows[m[1]] = [2]string{strings.TrimSpace(m[2]), strings.TrimSpace(m[3])}
	}
	known := make(map[string]bool)
	for _, f := range flags {
		known[f.name] = true
		row, ok := rows[f.name]
		if !ok {
			t.Errorf("operations.md has no flag table row for --%s", f.name)
			continue
		}
		if want := "`" + envName(f.name) + "`"; row[0] != want {
			t.Errorf("operations.md: --%s: environment %s, want %s", f.name, row[0], want)
		}
		if want := f.docsDefault(); row[1] != want {
			t.Errorf("operations.md: --%s: default %s, --help says %s", f.name, row[1], want)
		}
		for _, want := range []string{"--" + f.name, envName(f.name)} {
			if !docsMentions(ops, want) {
				t.Errorf("operations.md never mentions %s", want)
			}
		}
	}
	for name := range rows {
		if !known[name] {
			t.Errorf("operations.md has a row for --%s, which wsgate --help does not list", name)
		}
	}

	// Flags quoted elsewhere: those of the gateway and its subcommands, and
	// a few of other programs.
	for _, sub := range []string{"publish", "token", "stream", "presence", "disconnect", "subscribe", "unsubscribe", "stats", "upstream"} {
		for _, f := range docsHelpFlags(t, bin, sub) {
			known[f.name] = true
		}
	}
	for _, other := range []string{"help", "ulimit", "allowed-unsafe-sysctls"} {
		known[other] = true
	}
	quoted := regexp.MustCompile("`--([a-z0-9][a-z0-9-]*)")
	for _, path := range []string{docsOperations, docsProtocol, docsArchitecture, docsServices, docsSecurity} {
		for _, m := range quoted.FindAllStringSubmatch(docsRead(t, path), -1) {
			if !known[m[1]] {
				t.Errorf("%s quotes --%s, which no wsgate command has", filepath.Base(path), m[1])
			}
		}
	}
}

// docsMentions reports whether text holds word not followed by another
// character of a flag or variable name (--max-conns is not --max-conns-per-ip).
func docsMentions(text, word string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], word)
		if j < 0 {
			return false
		}
		end := i + j + len(word)
		if end == len(text) || !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", rune(text[end])) {
			return true
		}
		i = end
	}
}

// metricName matches the metric names the documents use.
var metricName = regexp.MustCompile(`\b(?:wsgate|go|process)_[a-z0-9_]*[a-z0-9]`)

// notMetrics are wsgate_ names in the documents that are not metrics.
var notMetrics = map[string]bool{"wsgate_token": true} // the token cookie

// Every metric the documents and the dashboard name is registered in the
// source and served by a running gateway, every metric the gateway
// registers is in the metric tables of docs/operations.md, and the label
// values the documents use for results and reasons exist.
func testDocsMetrics(t *testing.T, bin string) {
	registered := docsRegisteredMetrics(t)
	served, labels := docsScrape(t, bin)
	for name := range registered {
		if !served[name] {
			t.Errorf("%s is registered in the source but a running gateway does not serve it", name)
		}
	}

	ops := docsRead(t, docsOperations)
	for name := range registered {
		if !strings.Contains(ops, "| `"+name+"`") && !strings.Contains(ops, "| `"+name+"{") {
			t.Errorf("%s has no row in the metric tables of operations.md", name)
		}
	}

	for _, path := range []string{docsOperations, docsProtocol, docsArchitecture, docsDashboard} {
		text := docsRead(t, path)
		for _, name := range metricName.FindAllString(text, -1) {
			if notMetrics[name] {
				continue
			}
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && served[b] {
					base = b
				}
			}
			if strings.HasPrefix(base, "wsgate_") && !registered[base] {
				t.Errorf("%s uses %s, which gateway/metrics.go and bus/ do not register", filepath.Base(path), name)
			}
			if !served[base] {
				t.Errorf("%s uses %s, which a running gateway does not serve", filepath.Base(path), name)
			}
		}
		// result="x", reason=~"x|y": the upgrade results and close reasons.
		for _, m := range regexp.MustCompile(`\b(result|reason|op)=~?\\?"([a-z_|]+)\\?"`).FindAllStringSubmatch(text, -1) {
			for _, v := range strings.Split(m[2], "|") {
				if !labels[m[1]][v] {
					t.Errorf("%s uses %s=%q, which the gateway's metrics do not have", filepath.Base(path), m[1], v)
				}
			}
		}
	}
	// Every upgrade result, close reason and client op is explained in
	// operations.md.
	for _, label := range []string{"result", "reason", "op"} {
		for v := range labels[label] {
			if !strings.Contains(ops, "`"+v+"`") {
				t.Errorf("operations.md does not explain %s `%s`", label, v)
			}
		}
	}
}

// docsRegisteredMetrics returns the wsgate_ metric names in the source of
// gateway/metrics.go and the bus package.
func docsRegisteredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	files := []string{"../../gateway/metrics.go"}
	bus, err := filepath.Glob("../../bus/*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range bus {
		if !strings.HasSuffix(f, "_test.go") {
			files = append(files, f)
		}
	}
	quoted := regexp.MustCompile(`"(wsgate_[a-z0-9_]+)"`)
	names := make(map[string]bool)
	for _, f := range files {
		for _, m := range quoted.FindAllStringSubmatch(docsRead(t, f), -1) {
			names[m[1]] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metric names in %v", len(names), files)
	}
	return names
}

// docsScrape starts the gateway, reads its /metrics once and returns the
// metric names served and the values of the result and reason labels.
func docsScrape(t *testing.T, bin string) (names map[string]bool, labels map[string]map[string]bool) {
	t.Helper()
	g := startGateway(t, bin, "--embedded-nats-listen", "127.0.0.1:0")
	addr := g.waitField(t, "admin listening", "addr")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", resp.Status, err)
	}
	names = make(map[string]bool)
	labels = map[string]map[string]bool{"result": {}, "reason": {}, "op": {}}
	label := regexp.MustCompile(`\b(result|reason|op)="([a-z_]+)"`)
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		names[name] = true
		if strings.HasPrefix(name, "wsgate_") {
			for _, m := range label.FindAllStringSubmatch(line, -1) {
				labels[m[1]][m[2]] = true
			}
		}
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		for name := range names {
			if b, ok := strings.CutSuffix(name, s); ok && !names[b] {
				names[b] = true // a histogram or summary by its own name
			}
		}
	}
	return names, labels
}

// Every reason /healthz and /readyz can give (the strings gateway/health.go
// returns) is in docs/operations.md, quoted.
func testDocsHealth(t *testing.T) {
	src := docsRead(t, "../../gateway/health.go")
	ops := docsRead(t, docsOperations)
	n := 0
	for _, m := range regexp.MustCompile(`return "([^"]+)"`).FindAllStringSubmatch(src, -1) {
		n++
		if reason := strings.TrimSpace(m[1]); !strings.Contains(ops, "`"+reason) {
			t.Errorf("operations.md does not quote the health reason %q", reason)
		}
	}
	if n < 5 {
		t.Fatalf("found only %d reasons in gateway/health.go", n)
	}
}

// The dashboard is valid JSON for Grafana's import: a Prometheus data source
// input, an instance variable, and queries that all honour it.
func testDocsDashboard(t *testing.T) {
	raw, err := os.ReadFile(docsDashboard)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr string `json:"expr"`
	}
	type datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	var d struct {
		Inputs []struct {
			Name, Type, PluginID string
		} `json:"__inputs"`
		SchemaVersion int    `json:"schemaVersion"`
		Title         string `json:"title"`
		UID           string `json:"uid"`
		Templating    struct {
			List []struct {
				Name       string      `json:"name"`
				Datasource *datasource `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type       string      `json:"type"`
			Title      string      `json:"title"`
			Datasource *datasource `json:"datasource"`
			Targets    []target    `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if dec.More() {
		t.Fatal("grafana-dashboard.json: more than one JSON value")
	}
	const ds = "${DS_PROMETHEUS}"
	if !slices.ContainsFunc(d.Inputs, func(in struct{ Name, Type, PluginID string }) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	}) {
		t.Errorf("no DS_PROMETHEUS data source input: %+v", d.Inputs)
	}
	if d.SchemaVersion < 36 || d.Title == "" || d.UID == "" {
		t.Errorf("schemaVersion %d, title %q, uid %q", d.SchemaVersion, d.Title, d.UID)
	}
	if !slices.ContainsFunc(d.Templating.List, func(v struct {
		Name       string      `json:"name"`
		Datasource *datasource `json:"datasource"`
	}) bool {
		return v.Name == "instance" && v.Datasource != nil && v.Datasource.UID == ds
	}) {
		t.Error("no instance variable on the DS_PROMETHEUS data source")
	}
	queries := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != ds || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: data source %+v, want the %s input", p.Title, p.Datasource, ds)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if !strings.Contains(q.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %q ignores the instance variable", p.Title, q.Expr)
			}
		}
	}
	if queries < 20 {
		t.Errorf("only %d queries in the dashboard", queries)
	}
}
