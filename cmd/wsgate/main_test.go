package main

import (
	"flag"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEnvFillsUnsetFlags(t *testing.T) {
	t.Setenv("WSGATE_NATS_URL", "nats://from-env:4222")
	t.Setenv("WSGATE_LISTEN", ":1")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	natsURL := fs.String("nats-url", "", "")
	listen := fs.String("listen", ":8080", "")
	if err := parse(fs, []string{"--listen", ":2"}, 0); err != nil {
		t.Fatal(err)
	}
	if *natsURL != "nats://from-env:4222" || *listen != ":2" {
		t.Fatalf("nats-url %q, listen %q: want the environment's URL and the command line's listen", *natsURL, *listen)
	}
	t.Setenv("WSGATE_PING_INTERVAL", "soon")
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.Duration("ping-interval", 0, "")
	if err := parse(fs, nil, 0); err == nil || !strings.Contains(err.Error(), "WSGATE_PING_INTERVAL") {
		t.Fatalf("a bad environment value gave %v", err)
	}
}

// buildBinary builds wsgate once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wsgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestRefusesJWTWithoutKey(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "--listen", "127.0.0.1:0", "--admin", "").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--jwt-secret") {
		t.Fatalf("started without a JWT key: %v\n%s", err, out)
	}
}

// An embedded NATS port in use ends the binary at once with one clear
// message, its package named once.
func TestEmbeddedNATSPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := runBinary(t, buildBinary(t), nil, append(gatewayFlags, "--embedded-nats-listen", ln.Addr().String())...)
	msg := "wsgate: bus: embedded nats server did not start"
	if r.code != 1 || !strings.Contains(r.stderr, msg) || strings.Contains(r.stderr, "bus: bus:") {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and %q once", r.code, r.stderr, msg)
	}
}

// TestBinaryEndToEnd runs the real binary the way `make run` does, connects
// a WebSocket client, publishes with `wsgate publish` (--nats-url, then
// WSGATE_NATS_URL as the gateway reads it), and stops it with SIGTERM.
func TestBinaryEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	g := startGateway(t, bin, "--embedded-nats-listen", "127.0.0.1:0",
		"--drain-delay", "100ms", "--drain-timeout", "200ms")
	gw := g.waitField(t, "gateway listening", "addr")
	natsURL := g.waitField(t, "gateway listening", "nats")

	c, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+gw+"/ws?user=42", time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := runBinary(t, bin, nil, "publish", "--nats-url", natsURL, "--user", "42", `{"text":"hi"}`)
	if r.code != 0 {
		t.Fatalf("publish: status %d\n%s", r.code, r.stderr)
	}
	if want := "published 13 bytes to notify.user.42\n"; r.stdout != want {
		t.Errorf("publish printed %q, want %q", r.stdout, want)
	}
	m, err := c.Read(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if m["channel"] != "user.42" || m["data"].(map[string]any)["text"] != "hi" {
		t.Fatalf("got %v", m)
	}

	// WSGATE_NATS_URL, which the gateway reads too, is enough; the flag
	// wins over it (here it points nowhere).
	env := []string{"WSGATE_NATS_URL=" + natsURL}
	if r := runBinary(t, bin, env, "publish", "--user", "42", `{"n":1}`); r.code != 0 || r.stdout != "published 7 bytes to notify.user.42\n" {
		t.Fatalf("publish with WSGATE_NATS_URL: status %d, printed %q\n%s", r.code, r.stdout, r.stderr)
	}
	if m, err := c.Read(time.Now().Add(5 * time.Second)); err != nil || m["channel"] != "user.42" || fmt.Sprint(m["data"]) != "map[n:1]" {
		t.Fatalf("after a publish with WSGATE_NATS_URL the client got %v, %v", m, err)
	}
	r = runBinary(t, bin, env, "publish", "--nats-url", "nats://127.0.0.1:1", "--user", "42", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "connect nats://127.0.0.1:1") {
		t.Errorf("publish --nats-url over WSGATE_NATS_URL: status %d, stderr %q", r.code, r.stderr)
	}

	g.cmd.Process.Signal(syscall.SIGTERM)
	if _, err := c.Read(time.Now().Add(10 * time.Second)); !isGoingAway(err) {
		t.Fatalf("on SIGTERM the client got %v, want close 1001", err)
	}
	if err := g.wait(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// With --reuseport two listeners share one address; without it the second
// fails.
func TestReusePort(t *testing.T) {
	a, err := listen("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := listen(a.Addr().String(), true)
	if err != nil {
		t.Fatalf("second listener with SO_REUSEPORT: %v", err)
	}
	b.Close()
	if c, err := listen(a.Addr().String(), false); err == nil {
		c.Close()
		t.Fatal("a listener without SO_REUSEPORT shared the address")
	}
}

// A second SIGTERM during a drain ends the process at once: the drain
// would otherwise keep it for --drain-delay + --drain-timeout.
func TestSecondSignalEndsDrain(t *testing.T) {
	bin := buildBinary(t)
	g := startGateway(t, bin, "--admin", "", "--embedded-nats-listen", "127.0.0.1:0",
		"--drain-delay", "1h", "--drain-timeout", "1h")
	g.waitLog(t, "gateway listening")
	g.cmd.Process.Signal(syscall.SIGTERM)
	g.waitLog(t, "drain: not ready")
	g.cmd.Process.Signal(syscall.SIGTERM)
	g.waitLog(t, "second signal")
	if err := g.wait(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatalf("after the second SIGTERM: %v", err)
	}
}

// The conformance echo is a testing mode: it never runs with real auth.
func TestConformanceEchoNeedsAuthNone(t *testing.T) {
	err := serve([]string{"--conformance-echo", "--jwt-secret", "0123456789abcdef0123456789abcdef", "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "--auth=none") {
		t.Fatalf("serve = %v, want a refusal naming --auth=none", err)
	}
}
