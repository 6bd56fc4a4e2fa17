//go:build integration && linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsClientDir is the JavaScript client's package, from this package's
// directory, where go test runs.
const jsClientDir = "../../clients/js"

// TestJSClient runs the JavaScript client's Node test suite (clients/js,
// `npm test`: node's test runner) against the binary this package builds:
// connect and welcome, subscribe, volatile and durable delivery, token
// refresh on 1008, close codes 4003 and 1001, a ping timeout, backoff on
// 401, resume, acks, and a gateway killed with SIGKILL mid-stream. The
// suite starts its own gateways; WSGATE_BIN tells it which binary. It
// installs the package's dev dependencies with `npm ci` first when they
// are missing or older than package-lock.json.
func TestJSClient(t *testing.T) {
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		t.Skip("no node or npm on PATH (bash .ci/run installs nodejs and npm from Debian)")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	if major := nodeMajor(string(out)); major < 20 {
		t.Fatalf("node %s is too old for clients/js: it needs Node 20 or later", strings.TrimSpace(string(out)))
	}
	bin := buildBinary(t)

	if stale(filepath.Join(jsClientDir, "node_modules", ".package-lock.json"), filepath.Join(jsClientDir, "package-lock.json")) {
		runNPM(t, npm, 5*time.Minute, nil, "ci", "--no-audit", "--no-fund")
	}
	out = runNPM(t, npm, 5*time.Minute, []string{"WSGATE_BIN=" + bin}, "test")
	// The test runner's lines: one per test with its time, and the totals.
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "✔") || strings.HasPrefix(line, "ℹ") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// runNPM runs npm with args in jsClientDir, env added to the test's, for at
// most limit, and returns its output; it fails the test with the output if
// npm fails.
func runNPM(t *testing.T, npm string, limit time.Duration, env []string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = jsClientDir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm %s in %s: %v\n%s", strings.Join(args, " "), jsClientDir, err, out)
	}
	return out
}

// stale reports whether the file installed is missing or older than
// the file wanted.
func stale(installed, wanted string) bool {
	i, err := os.Stat(installed)
	if err != nil {
		return true
	}
	w, err := os.Stat(wanted)
	return err == nil && w.ModTime().After(i.ModTime())
}

// nodeMajor returns the major version of `node --version` output
// ("v20.20.2"), or 0.
func nodeMajor(version string) int {
	m := regexp.MustCompile(`^v(\d+)\.`).FindStringSubmatch(strings.TrimSpace(version))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
