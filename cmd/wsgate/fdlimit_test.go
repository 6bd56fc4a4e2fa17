//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/internal/fdlimit"
	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// TestMaxConnsAboveFileLimit runs the binary under a hard open-file limit
// of 256, which neither the Go runtime nor fdlimit.Raise can lift: a
// --max-conns the limit cannot hold must stop the process at start with a
// message that names the flag, and without the flag the budget is what
// the limit leaves after fdlimit.Reserved.
func TestMaxConnsAboveFileLimit(t *testing.T) {
	prlimit := findPrlimit(t)
	bin := buildBinary(t)
	const limit = 256

	t.Run("refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, prlimit, fmt.Sprintf("--nofile=%d:%d", limit, limit), bin,
			"--auth=none", "--listen", "127.0.0.1:0", "--admin", "",
			"--embedded-nats-listen", "127.0.0.1:0", "--log-format", "json", "--max-conns", "100000")
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("still running after 10s with --max-conns above the file limit:\n%s", out)
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("exit: %v, want a non-zero status\n%s", err, out)
		}
		if !bytes.Contains(out, []byte("--max-conns")) || !bytes.Contains(out, []byte("limit")) {
			t.Fatalf("the error does not name --max-conns and the limit:\n%s", out)
		}
	})

	t.Run("default", func(t *testing.T) {
		g := startLimitedGateway(t, prlimit, bin, limit, "--embedded-nats-listen", "127.0.0.1:0")
		line := g.waitLog(t, "file limit")
		soft, _ := line["soft"].(float64)
		capacity, _ := line["capacity"].(float64)
		if soft != limit || capacity != limit-fdlimit.Reserved {
			t.Fatalf(`"file limit" logged soft %v, capacity %v; want %d and %d`, line["soft"], line["capacity"], limit, limit-fdlimit.Reserved)
		}
	})
}

// TestRunsOutOfDescriptors fills the gateway's descriptor table with TCP
// sockets that never send an upgrade request. While accept fails with
// EMFILE the gateway must count the failures, keep serving the clients it
// has (a broadcast still reaches them) and leave a new client waiting in
// the kernel's backlog, neither accepted nor refused; once the sockets go
// away it must accept again, the waiting client first.
func TestRunsOutOfDescriptors(t *testing.T) {
	prlimit := findPrlimit(t)
	bin := buildBinary(t)
	const (
		limit   = fdlimit.Reserved + 40
		clients = 5
		// raws is more sockets than the whole descriptor table holds, so
		// the gateway runs out whatever it holds itself, and enough of
		// them wait in the backlog ahead of the late client that a
		// descriptor freed for a moment (a /metrics scrape opens files
		// under /proc) goes to one of them.
		raws = limit + 30
	)

	// NATS runs in the test process: a server inside the gateway would
	// need a descriptor for every connection made to it.
	natsURL := startNATS(t)
	pub, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)

	g := startLimitedGateway(t, prlimit, bin, limit, "--nats-url", natsURL,
		"--max-conns", strconv.Itoa(limit-fdlimit.Reserved),
		// Raw sockets must hold their descriptors for the whole test.
		"--handshake-timeout", "60s")
	gwAddr := g.waitField(t, "gateway listening", "addr")
	adminAddr := g.waitField(t, "admin listening", "addr")

	// One keep-alive connection to the admin server, opened now: once the
	// gateway is out of descriptors it could not accept another.
	admin := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1},
		Timeout:   5 * time.Second,
	}
	t.Cleanup(admin.CloseIdleConnections)
	acceptErrors := func() (float64, error) {
		return scrapeCounter(admin, "http://"+adminAddr+"/metrics", "wsgate_accept_errors_total")
	}
	if n, err := acceptErrors(); err != nil || n != 0 {
		t.Fatalf("before the flood: wsgate_accept_errors_total %v, %v; want 0", n, err)
	}

	var peers []*wstest.Client
	t.Cleanup(func() {
		for _, p := range peers {
			p.Close()
		}
	})
	for i := range clients {
		p, err := dialWelcome(t.Context(), ws.DefaultDialer, fmt.Sprintf("ws://%s/ws?user=%d", gwAddr, i), time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		peers = append(peers, p)
	}

	var raw []net.Conn
	closeRaw := func() {
		for _, c := range raw {
			c.Close()
		}
		raw = nil
	}
	t.Cleanup(closeRaw)
	for range raws {
		// The kernel completes the handshake from its backlog whether or
		// not the gateway accepts.
		c, err := net.DialTimeout("tcp", gwAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("raw socket %d: %v", len(raw), err)
		}
		raw = append(raw, c)
	}
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		n, err := acceptErrors()
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("wsgate_accept_errors_total is still 0")
		}
		return nil
	})

	// A client arriving now waits in the backlog behind the raw sockets.
	type result struct {
		p   *wstest.Client
		err error
	}
	late := make(chan result, 1)
	var lateDone sync.WaitGroup
	lateCtx, cancelLate := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(func() {
		cancelLate()
		lateDone.Wait()
		select {
		case r := <-late: // not taken by the test, which failed
			if r.p != nil {
				r.p.Close()
			}
		default:
		}
	})
	connected := make(chan struct{})
	lateDialer := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		close(connected)
		return c, err
	}}
	lateDone.Go(func() {
		deadline, _ := lateCtx.Deadline()
		p, err := dialWelcome(lateCtx, lateDialer, "ws://"+gwAddr+"/ws?user=late", deadline)
		late <- result{p, err}
	})
	select {
	case <-connected:
	case <-time.After(5 * time.Second):
		t.Fatal("the late client's TCP connect did not complete")
	}
	failed, err := acceptErrors()
	if err != nil {
		t.Fatal(err)
	}

	if err := pub.Publish("notify.broadcast", []byte(`{"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	for i, p := range peers {
		m, err := p.Read(time.Now().Add(5 * time.Second))
		if err != nil {
			t.Fatalf("client %d, out of descriptors: %v", i, err)
		}
		data, _ := m["data"].(map[string]any)
		if m["type"] != "message" || m["channel"] != "broadcast" || data["seq"] != 1.0 {
			t.Fatalf("client %d, out of descriptors, got %v; want the broadcast", i, m)
		}
	}

	// Two more failed accepts after the late client's socket reached the
	// backlog show that the accept loop retried while it waited there: the
	// gateway is still out of descriptors, and the late client must not
	// have been taken.
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		n, err := acceptErrors()
		if err != nil {
			return err
		}
		if n < failed+2 {
			return fmt.Errorf("wsgate_accept_errors_total %v, want at least %v", n, failed+2)
		}
		return nil
	})
	select {
	case r := <-late:
		if r.p != nil {
			r.p.Close()
		}
		t.Fatalf("a client dialled while the gateway was out of descriptors got through (err %v)", r.err)
	default:
	}

	closeRaw()
	// The accept loop backs off for up to 1s between attempts.
	r := <-late
	if r.err != nil {
		t.Fatalf("the late client, after the raw sockets closed: %v", r.err)
	}
	r.p.Close()
	p, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+gwAddr+"/ws?user=after", time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("a new client, after the raw sockets closed: %v", err)
	}
	p.Close()
}

// findPrlimit returns the path of util-linux's prlimit, or skips the test.
func findPrlimit(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("prlimit"); err == nil {
		return p
	}
	if p, err := exec.LookPath("/usr/bin/prlimit"); err == nil {
		return p
	}
	t.Skip("prlimit (util-linux) is not installed: it is needed to start wsgate under a hard open-file limit")
	return ""
}

// startLimitedGateway runs bin with --nofile=limit:limit, with gatewayFlags
// followed by args. See startProc.
func startLimitedGateway(t *testing.T, prlimit, bin string, limit int, args ...string) *gatewayProc {
	t.Helper()
	// prlimit sets its own limits and then execs bin, so the process is
	// the gateway's.
	return startProc(t, prlimit, slices.Concat([]string{fmt.Sprintf("--nofile=%d:%d", limit, limit), bin}, gatewayFlags, args)...)
}

// startNATS runs a NATS server in the test process and returns its client
// URL.
func startNATS(t *testing.T) string {
	t.Helper()
	return natstest.Run(t, false).ClientURL()
}

// scrapeCounter returns the value of an unlabelled counter from a
// Prometheus text exposition at url.
func scrapeCounter(c *http.Client, url, name string) (float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	var (
		value float64
		found bool
	)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			value, err = strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			found = true
		}
	}
	// Read to the end, so the connection can be used again.
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no %s in %s", name, url)
	}
	return value, nil
}
