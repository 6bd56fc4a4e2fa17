//go:build integration && linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// The timings of TestHAProxyDrain. HAProxy checks /readyz every
// checkInterval and takes a gateway out after one failed check, so a
// draining gateway leaves the rotation within about one interval; the drain
// delay is five of them, which is what lets the test tell "HAProxy stopped
// sending clients" apart from "the gateway stopped accepting them".
const (
	checkInterval = 200 * time.Millisecond
	drainDelay    = 1 * time.Second
	drainTimeout  = 2 * time.Second
	// slack is added to every upper bound: the machines are shared and the
	// test runs under the race detector next to other packages.
	slack = 3 * time.Second
	// clients is how many connections the test spreads over the gateways.
	clients = 40
	// streak is how many consecutive new clients must land on B before the
	// draining gateway counts as out of the rotation: with round robin, any
	// run of two already means A was skipped.
	streak = 10
)

// TestHAProxyDrain runs two gateways behind HAProxy (from the distribution,
// found on PATH) with /readyz as the health check, and drains one of them
// with SIGTERM: HAProxy must stop sending it new clients while it still
// serves, its clients must get 1001 and find the other gateway through
// HAProxy, and both processes must exit cleanly. Everything is on loopback.
func TestHAProxyDrain(t *testing.T) {
	haproxy := needHAProxy(t)
	bin := buildBinary(t)
	natsURL := startNATS(t)
	reg := &clientSet{}
	var wg sync.WaitGroup // reconnecting clients
	t.Cleanup(wg.Wait)
	t.Cleanup(reg.closeAll) // runs first: ends the reads the goroutines block in

	a := startBackend(t, bin, natsURL, "a")
	b := startBackend(t, bin, natsURL, "b")
	front, hlog := startHAProxy(t, haproxy, "", a, b)
	front = "ws://" + front + "/ws?user="
	ctx := t.Context()
	var user atomic.Int64 // a user id per dial; reconnecting goroutines dial too
	dial := func(deadline time.Time) (*wstest.Client, error) {
		return reg.dial(ctx, front+strconv.FormatInt(user.Add(1), 10), deadline)
	}

	// HAProxy may take a check or two to list a server as UP.
	seen := map[string]bool{}
	wstest.CheckFor(t, 10*time.Second, pollEvery, func() error {
		c, err := dial(time.Now().Add(5 * time.Second))
		if err != nil {
			return err
		}
		seen[gatewayOf(c)] = true
		c.Close()
		if !seen[a.prefix] || !seen[b.prefix] {
			return fmt.Errorf("only gateways %v took clients through haproxy", seen)
		}
		return nil
	})

	var onA, onB []*wstest.Client
	for range clients {
		c, err := dial(time.Now().Add(5 * time.Second))
		if err != nil {
			t.Fatalf("dial through haproxy: %v", err)
		}
		if gatewayOf(c) == a.prefix {
			onA = append(onA, c)
		} else {
			onB = append(onB, c)
		}
	}
	if len(onA) < clients/4 || len(onB) < clients/4 {
		t.Fatalf("haproxy spread %d clients as %d on A and %d on B, want both used", clients, len(onA), len(onB))
	}

	// Drain A. Each of its clients waits for the close frame in a goroutine
	// of its own and then reconnects through HAProxy, the way a browser
	// client does on 1001.
	sigterm := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	drained := sigterm.Add(drainDelay + drainTimeout + slack)
	results := make(chan reconnect)
	pending := 0
	drain := func(c *wstest.Client) {
		pending++
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := reconnectAfter(c, sigterm, drained, dial)
			select {
			case results <- r:
			case <-ctx.Done(): // the test failed before reading it
			}
		}()
	}
	for _, c := range onA {
		drain(c)
	}

	// (a) HAProxy takes A out of the rotation: a run of new clients all land
	// on B, and the run starts while A still accepts (before the drain delay
	// ends). Once A has closed its listener, a client HAProxy still sent it
	// would fail to connect, so a run that starts later proves nothing and
	// any failed dial fails the test.
	var run int
	var runStart time.Time
	for run < streak {
		start := time.Now()
		if start.After(sigterm.Add(drainDelay + slack)) {
			t.Fatalf("%v after SIGTERM haproxy still sent new clients to the draining gateway", start.Sub(sigterm))
		}
		c, err := dial(start.Add(5 * time.Second))
		if err != nil {
			t.Fatalf("dial through haproxy %v after SIGTERM (drain delay %v): %v", start.Sub(sigterm), drainDelay, err)
		}
		if gatewayOf(c) == a.prefix {
			run = 0
			drain(c)
			continue
		}
		// The first client of a run may land on B by alternation alone;
		// the second shows A was out when it was dialed.
		if run == 1 {
			runStart = start
		}
		run++
		onB = append(onB, c)
	}
	if out := runStart.Sub(sigterm); out > drainDelay {
		t.Fatalf("haproxy sent new clients to the draining gateway for %v, longer than its drain delay %v", out, drainDelay)
	} else {
		t.Logf("haproxy took the draining gateway out of the rotation within %v of SIGTERM (check interval %v)", out, checkInterval)
	}
	// And it did so because /readyz said 503, not because a connection
	// failed.
	wstest.CheckFor(t, 5*time.Second, pollEvery, func() error {
		if !strings.Contains(hlog.String(), "Server gateways/a is DOWN, reason: Layer7 wrong status, code: 503") {
			return errors.New("haproxy has not logged A down on its readiness check")
		}
		return nil
	})

	// (b) Every client of A gets 1001, no earlier than the drain delay, and
	// finds B through HAProxy.
	var first, last time.Duration
	for i := range pending {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.closed < drainDelay {
			t.Errorf("a client of the draining gateway was closed %v after SIGTERM, before the drain delay %v", r.closed, drainDelay)
		}
		if i == 0 || r.closed < first {
			first = r.closed
		}
		last = max(last, r.closed)
		if g := gatewayOf(r.c); g != b.prefix {
			t.Fatalf("a client closed by A reconnected to gateway %q, want B (%q)", g, b.prefix)
		}
		onB = append(onB, r.c)
	}
	t.Logf("%d clients of the draining gateway got 1001 between %v and %v after SIGTERM and reconnected to the other", pending, first, last)

	// (c) A exits 0 within its drain window.
	if err := a.wait(drained); err != nil {
		t.Fatalf("draining gateway: %v", err) // its log follows, from Cleanup
	}
	t.Logf("the draining gateway exited %v after SIGTERM", time.Since(sigterm))

	// (d) B serves every client, old and new: a broadcast reaches them all.
	if strings.Contains(hlog.String(), "gateways/b is DOWN") {
		t.Fatal("haproxy took B out of the rotation while it served")
	}
	nc, err := bus.Dial(natsURL, "haproxy-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := bus.NewPublisher(nc, "notify")
	if err := pub.Broadcast([]byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range onB {
		m, err := c.Read(deadline)
		if err != nil {
			t.Fatalf("client %s after the broadcast: %v", c.ID, err)
		}
		if m["type"] != "message" || m["channel"] != "broadcast" || fmt.Sprint(m["data"]) != "map[n:1]" {
			t.Fatalf("client %s got %v, want the broadcast", c.ID, m)
		}
	}

	// (e) B drains too and exits 0.
	sigterm = time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	drained = sigterm.Add(drainDelay + drainTimeout + slack)
	for _, c := range onB {
		if _, err := c.Read(drained); !isGoingAway(err) {
			t.Fatalf("client %s on SIGTERM to B: %v, want close 1001", c.ID, err)
		}
	}
	if err := b.wait(drained); err != nil {
		t.Fatalf("second gateway: %v", err)
	}
	t.Logf("the second gateway closed %d clients and exited %v after SIGTERM", len(onB), time.Since(sigterm))
}

// needHAProxy returns the haproxy binary, or skips the test. Debian
// installs it in /usr/sbin, which is not on a normal user's PATH.
func needHAProxy(t *testing.T) string {
	t.Helper()
	path := findTool("haproxy")
	if path == "" {
		t.Skip("no haproxy on PATH or in /usr/sbin (bash .ci/run installs it)")
	}
	return path
}

// backend is a gateway behind HAProxy.
type backend struct {
	*gatewayProc
	ws, admin string // listen addresses, from the log
	prefix    string // connection id prefix, from a welcome
}

// startBackend runs the wsgate binary with the drain flags under test, and
// returns once it has logged its addresses and welcomed a direct client.
func startBackend(t *testing.T, bin, natsURL, name string) *backend {
	t.Helper()
	g := &backend{gatewayProc: startGateway(t, bin, "--nats-url", natsURL,
		"--drain-delay", drainDelay.String(), "--drain-timeout", drainTimeout.String())}
	g.ws = g.waitField(t, "gateway listening", "addr")
	g.admin = g.waitField(t, "admin listening", "addr")
	// The connection id prefix is random per process: learn it from a
	// direct connection, to tell later which gateway HAProxy chose.
	c, err := dialWelcome(t.Context(), ws.DefaultDialer, "ws://"+g.ws+"/ws?user=probe", time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("direct dial to gateway %s: %v", name, err)
	}
	c.Close()
	g.prefix = gatewayOf(c)
	return g
}

// startHAProxy runs haproxy in the foreground in front of the backends and
// returns the address of its frontend and its output, where it logs server
// state changes and every connection. The frontend socket is bound here
// and inherited (bind fd@3), so there is no window in which another process
// could take the port. With a non-empty pem (a certificate and its key) the
// frontend terminates TLS, as docs/operations.md shows.
func startHAProxy(t *testing.T, haproxy, pem string, backends ...*backend) (string, *logBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f, err := ln.(*net.TCPListener).File()
	ln.Close() // f holds the socket open
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // haproxy has its own copy once started

	bind := "bind fd@3"
	if pem != "" {
		bind += " ssl crt " + pem + " alpn http/1.1"
	}
	var servers strings.Builder
	for i, g := range backends {
		_, port, _ := net.SplitHostPort(g.admin)
		fmt.Fprintf(&servers, "    server %c %s check port %s inter %v fall 1 rise 1\n", 'a'+i, g.ws, port, checkInterval)
	}
	cfg := `global
    maxconn 1000
    log stderr format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # Once upgraded, a WebSocket is a tunnel and this replaces the client
    # and server timeouts; it must exceed the gateway's ping interval.
    timeout tunnel 1h
    # A check that gets no answer in time fails; loaded test machines may
    # answer slowly, and one failure takes a server out (fall 1).
    timeout check 2s

frontend ws
    ` + bind + `
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
` + servers.String()
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(haproxy, "-db", "-f", path)
	cmd.ExtraFiles = []*os.File{f}
	g := startCmd(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("haproxy config:\n%s", cfg)
		}
	})
	return addr, g.log
}

// gatewayOf returns the prefix of c's connection id, which names the
// gateway process.
func gatewayOf(c *wstest.Client) string {
	prefix, _, _ := strings.Cut(c.ID, "-")
	return prefix
}

// reconnect is what one client of a draining gateway saw.
type reconnect struct {
	closed time.Duration  // from SIGTERM to the close frame
	c      *wstest.Client // the new connection
	err    error
}

// reconnectAfter waits until deadline for c's 1001 close frame, then
// dials again and reads the new welcome.
func reconnectAfter(c *wstest.Client, sigterm, deadline time.Time, dial func(time.Time) (*wstest.Client, error)) reconnect {
	_, err := c.Read(deadline)
	closed := time.Since(sigterm)
	c.Close()
	if !isGoingAway(err) {
		return reconnect{err: fmt.Errorf("client %s of the draining gateway got %v, want close 1001", c.ID, err)}
	}
	nc, err := dial(time.Now().Add(5 * time.Second))
	if err != nil {
		return reconnect{err: fmt.Errorf("client %s reconnecting through haproxy: %w", c.ID, err)}
	}
	return reconnect{closed: closed, c: nc}
}

// clientSet tracks every client the test dials, so that Cleanup closes
// them and the goroutines reading from them end.
type clientSet struct {
	mu     sync.Mutex // protects conns and closed
	conns  []net.Conn
	closed bool
}

// dial is dialWelcome for a client closed by closeAll. It may be called from
// several goroutines.
func (s *clientSet) dial(ctx context.Context, url string, deadline time.Time) (*wstest.Client, error) {
	c, err := dialWelcome(ctx, ws.DefaultDialer, url, deadline)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	s.conns = append(s.conns, c.Conn)
	return c, nil
}

func (s *clientSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
}
