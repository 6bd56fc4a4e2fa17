package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEnvFillsUnsetFlags(t *testing.T) {
	t.Setenv("WSGATE_NATS_URL", "nats://from-env:4222")
	t.Setenv("WSGATE_LISTEN", ":1")
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	natsURL := fs.String("nats-url", "", "")
	listen := fs.String("listen", ":8080", "")
	if err := parse(fs, []string{"--listen", ":2"}); err != nil {
		t.Fatal(err)
	}
	if *natsURL != "nats://from-env:4222" || *listen != ":2" {
		t.Fatalf("nats-url %q, listen %q: want the environment's URL and the command line's listen", *natsURL, *listen)
	}
	t.Setenv("WSGATE_PING_INTERVAL", "soon")
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.Duration("ping-interval", 0, "")
	if err := parse(fs, nil); err == nil || !strings.Contains(err.Error(), "WSGATE_PING_INTERVAL") {
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

// TestBinaryEndToEnd runs the real binary the way `make run` does, connects
// a WebSocket client, publishes with `wsgate publish`, and stops it with
// SIGTERM.
func TestBinaryEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "--auth=none", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--embedded-nats-listen", "127.0.0.1:0", "--log-format", "json",
		"--drain-delay", "100ms", "--drain-timeout", "200ms")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Read the log for the listen addresses.
	addrs := make(chan [2]string, 1)
	logs := bufio.NewScanner(stderr)
	go func() {
		var gw, nats string
		for logs.Scan() {
			var line map[string]any
			if json.Unmarshal(logs.Bytes(), &line) != nil {
				continue
			}
			switch line["msg"] {
			case "gateway listening":
				gw, _ = line["addr"].(string)
				nats, _ = line["nats"].(string)
				addrs <- [2]string{gw, nats}
			}
		}
	}()
	var gw, natsURL string
	select {
	case a := <-addrs:
		gw, natsURL = a[0], a[1]
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not log its address")
	}

	conn, br, _, err := ws.Dial(context.Background(), "ws://"+gw+"/ws?user=42")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The welcome may arrive with the 101 response, in the dialer's buffer.
	var rw io.ReadWriter = conn
	if br != nil {
		rw = struct {
			io.Reader
			io.Writer
		}{io.MultiReader(br, conn), conn}
	}
	read := func() map[string]any {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		data, err := wsutil.ReadServerText(rw)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(data, &m)
		return m
	}
	if m := read(); m["type"] != "welcome" {
		t.Fatalf("got %v", m)
	}
	out, err := exec.Command(bin, "publish", "--nats", natsURL, "--user", "42", `{"text":"hi"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	if m := read(); m["channel"] != "user.42" || m["data"].(map[string]any)["text"] != "hi" {
		t.Fatalf("got %v", m)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = wsutil.ReadServerText(rw)
	if ce, ok := err.(wsutil.ClosedError); !ok || ce.Code != ws.StatusGoingAway {
		t.Fatalf("on SIGTERM the client got %v, want close 1001", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the gateway did not exit after SIGTERM")
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
	cmd := exec.Command(bin, "--auth=none", "--listen", "127.0.0.1:0", "--admin", "",
		"--embedded-nats-listen", "127.0.0.1:0", "--log-format", "json",
		"--drain-delay", "1h", "--drain-timeout", "1h")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs := make(chan string, 64)
	go func() {
		defer close(logs)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil {
				msg, _ := line["msg"].(string)
				logs <- msg
			}
		}
	}()
	waitLog := func(want string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case msg, ok := <-logs:
				if !ok {
					t.Fatalf("the log ended before %q", want)
				}
				if strings.HasPrefix(msg, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q in the log", want)
			}
		}
	}
	waitLog("gateway listening")
	cmd.Process.Signal(syscall.SIGTERM)
	waitLog("drain: not ready")
	cmd.Process.Signal(syscall.SIGTERM)
	waitLog("second signal")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second SIGTERM did not end the drain")
	}
	for range logs { // until the log reader ends with the pipe
	}
}
