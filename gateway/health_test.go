package gateway

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// get fetches path from the admin handler and returns the status and body.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}
func expectStatus(t *testing.T, base, path string, want int, wantBody string) {
	t.Helper()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		code, body := get(t, base, path)
		if code != want || !strings.Contains(body, wantBody) {
			return fmt.Errorf("%s = %d %q, want %d %q", path, code, body, want, wantBody)
		}
		return nil
	})
}

// A pool saturated for SaturationTimeout turns /readyz 503, for
// StallTimeout /healthz too; both recover when the pool does.
func TestHealthPoolSaturated(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PoolSize, c.PoolQueue = 1, 1
		c.SaturationTimeout, c.StallTimeout = 50*time.Millisecond, 200*time.Millisecond
		c.HandshakeTimeout = 100 * time.Millisecond // a short sweep period
	})
	admin := httptest.NewServer(e.srv.AdminHandler())
	defer admin.Close()
	expectStatus(t, admin.URL, "/healthz", 200, "ok")
	expectStatus(t, admin.URL, "/readyz", 200, "ready")

	release := make(chan struct{})
	running := make(chan struct{})
	if err := e.srv.pool.Schedule(func() { close(running); <-release }); err != nil {
		t.Fatal(err)
	}
	<-running
	queued := make(chan struct{})
	if err := e.srv.pool.Schedule(func() { close(queued) }); err != nil { // waits in the queue
		t.Fatal(err)
	}
	expectStatus(t, admin.URL, "/readyz", 503, "pool saturated")
	expectStatus(t, admin.URL, "/healthz", 503, "pool saturated")
	close(release)
	<-queued
	expectStatus(t, admin.URL, "/healthz", 200, "ok")
	expectStatus(t, admin.URL, "/readyz", 200, "ready")
}
func TestReadyMemoryLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SoftMemoryLimit = 1 })
	admin := httptest.NewServer(e.srv.AdminHandler())
	defer admin.Close()
	expectStatus(t, admin.URL, "/readyz", 503, "memory")
	expectStatus(t, admin.URL, "/healthz", 200, "ok") // memory pressure is not a wedge
}

// The soft memory limit defaults to 90% of GOMEMLIMIT when one is set.
func TestSoftMemoryLimitDefault(t *testing.T) {
	base := Config{Bus: nopBus{}, Auth: InsecureAuth{}}
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)

	debug.SetMemoryLimit(math.MaxInt64)
	if cfg, err := base.withDefaults(); err != nil || cfg.SoftMemoryLimit != 0 {
		t.Fatalf("without GOMEMLIMIT: %d, %v; want 0", cfg.SoftMemoryLimit, err)
	}
	debug.SetMemoryLimit(1000 << 20)
	if cfg, err := base.withDefaults(); err != nil || cfg.SoftMemoryLimit != 900<<20 {
		t.Fatalf("with GOMEMLIMIT 1000 MiB: %d, %v; want 900 MiB", cfg.SoftMemoryLimit, err)
	}
	base.SoftMemoryLimit = -1
	if cfg, _ := base.withDefaults(); cfg.SoftMemoryLimit != -1 {
		t.Fatalf("negative stays disabled: %d", cfg.SoftMemoryLimit)
	}
}

// The sweeper keeps the poller's heartbeat fresh; a healthy server is
// healthy, and a closed one is alive but not ready.
func TestHealthHeartbeat(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	before := e.srv.poller.LastBeat()
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if !e.srv.poller.LastBeat().After(before) {
			return fmt.Errorf("the poller's heartbeat did not move from %v", before)
		}
		return nil
	})
	admin := httptest.NewServer(e.srv.AdminHandler())
	defer admin.Close()
	expectStatus(t, admin.URL, "/healthz", 200, "ok")
	e.srv.Close()
	expectStatus(t, admin.URL, "/readyz", 503, "closed")
	expectStatus(t, admin.URL, "/healthz", 200, "ok")
}

// /readyz follows the bus: 503 while NATS is unreachable, 200 once the
// bus has reconnected; /healthz stays 200 throughout.
func TestReadyBusDisconnected(t *testing.T) {
	runNATS := func(port int) *server.Server {
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
		return srv
	}
	nsrv := runNATS(-1)
	port := nsrv.Addr().(*net.TCPAddr).Port
	b, err := bus.New(bus.Config{URL: nsrv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := New(Config{Bus: b, Auth: InsecureAuth{}, PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin := httptest.NewServer(s.AdminHandler())
	defer admin.Close()
	expectStatus(t, admin.URL, "/readyz", 200, "ready")

	nsrv.Shutdown()
	nsrv.WaitForShutdown()
	expectStatus(t, admin.URL, "/readyz", 503, "bus disconnected")
	expectStatus(t, admin.URL, "/healthz", 200, "ok")

	nsrv = runNATS(port)
	defer func() { nsrv.Shutdown(); nsrv.WaitForShutdown() }()
	expectStatus(t, admin.URL, "/readyz", 200, "ready")
}
