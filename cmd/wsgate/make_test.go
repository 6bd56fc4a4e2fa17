//go:build integration && linux

package main

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// repoRoot is the repository root, where the Makefile is, relative to this
// package's directory.
const repoRoot = "../.."

// findMake returns the make binary, or skips the test.
func findMake(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make on PATH")
	}
	return path
}

// Every description of `make help` starts in the same column, however long
// the target's name.
func TestMakeHelp(t *testing.T) {
	out, err := exec.Command(findMake(t), "-s", "-C", repoRoot, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("make help: %v\n%s", err, out)
	}
	row := regexp.MustCompile(`^  make (\S+)( +)\S`)
	column, longest := -1, ""
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	for _, line := range lines {
		m := row.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("make help: unexpected line %q", line)
		}
		col := len("  make ") + len(m[1]) + len(m[2])
		if column == -1 {
			column = col
		}
		if col != column {
			t.Errorf("make help: the description of %s starts in column %d, the first one's in %d:\n%s", m[1], col, column, out)
		}
		if len(m[1]) > len(longest) {
			longest = m[1]
		}
	}
	if len(lines) < 10 || !strings.Contains(string(out), "make bench-compare") {
		t.Errorf("make help lists %d targets:\n%s", len(lines), out)
	}
	t.Logf("%d targets, descriptions in column %d after %s", len(lines), column, longest)
}

// `make run` says it is building before the (possibly long, silent) first
// build, then runs the gateway, whose try: line is a connection and a
// publish command that work as printed; Ctrl-C (SIGINT to make's process
// group, as a terminal sends it) stops it at once.
func TestMakeRun(t *testing.T) {
	mk := findMake(t)
	bin := filepath.Join(t.TempDir(), "wsgate")
	cmd := exec.Command(mk, "-s", "-C", repoRoot, "run", "WSGATE="+bin,
		"RUN_FLAGS=--listen 127.0.0.1:0 --admin 127.0.0.1:0 --embedded-nats-listen 127.0.0.1:0 --log-format json --nats-store-dir "+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C goes to the group
	// Its log is make's output and the gateway's, in the order written.
	g := startCmd(t, cmd)

	// The first build may download modules and compile for minutes.
	try, _ := g.waitLogWithin(t, "try:", 3*time.Minute)["msg"].(string)
	g.waitLog(t, "durable stream ready") // make run has durable notifications
	first, _, _ := strings.Cut(g.log.String(), "\n")
	if want := "building wsgate (the first build downloads modules and takes a minute or two)…"; first != want {
		t.Errorf("make run's first line is %q, want %q", first, want)
	}

	// try: http://127.0.0.1:M/demo/ · ws://127.0.0.1:N/ws?user=42 · admin http://127.0.0.1:M · wsgate publish --nats-url nats://127.0.0.1:K --user 42 '{"text":"hi"}'
	parts := strings.Split(strings.TrimPrefix(try, "try: "), " · ")
	if len(parts) != 4 || !strings.HasPrefix(parts[0], "http://127.0.0.1:") || !strings.HasPrefix(parts[1], "ws://127.0.0.1:") || !strings.HasPrefix(parts[2], "admin http://127.0.0.1:") {
		t.Fatalf("try line %q", try)
	}
	if code := httpStatus(t, parts[0]); code != http.StatusOK {
		t.Errorf("GET %s from the try line: %d, want the demo page", parts[0], code)
	}
	c, err := dialWelcome(t.Context(), ws.DefaultDialer, parts[1], time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("dial %s from the try line: %v", parts[1], err)
	}
	defer c.Close()
	args := strings.Fields(parts[3])
	if args[0] != "wsgate" || args[1] != "publish" {
		t.Fatalf("try line's publish command %q", parts[3])
	}
	args[len(args)-1] = strings.Trim(args[len(args)-1], "'") // the shell's quotes
	if r := runBinary(t, bin, nil, args[1:]...); r.code != 0 {
		t.Fatalf("%s: status %d\n%s", parts[3], r.code, r.stderr)
	}
	m, err := c.Read(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := json.Marshal(m["data"]); m["channel"] != "user.42" || string(data) != `{"text":"hi"}` {
		t.Fatalf("after the try line's publish the client got %v", m)
	}

	// make reports the interrupt with a failure of its own; what matters is
	// that everything ends at once and the gateway stopped cleanly.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("make run still running 10s after Ctrl-C")
	}
	if g.log.find("stopped") == nil {
		t.Error("the gateway did not log stopped after Ctrl-C")
	}
}
