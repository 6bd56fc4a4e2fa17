package bench

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/gateway"
	"github.com/wsgate/wsgate/internal/natstest"
)

func TestMain(m *testing.M) {
	if os.Getenv(ChildEnv) != "" { // re-executed as a worker or floor server
		os.Exit(Main(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// gatewayEnv is a real gateway on 127.0.0.1:0 with development auth, over
// a real embedded NATS server, with its admin endpoints.
type gatewayEnv struct {
	url     string
	nats    string
	metrics string // the gateway's /metrics
}

// newGateway starts a gateway; opts change its Config.
func newGateway(t testing.TB, opts ...func(*gateway.Config)) *gatewayEnv {
	t.Helper()
	return startGateway(t, bus.Config{EmbeddedListen: "127.0.0.1:0"}, opts)
}

// newDurableGateway starts a gateway with durable notifications: JetStream
// in its embedded NATS server, the stream and the ack bucket applied and
// tracked, as wsgate does with --durable.
func newDurableGateway(t testing.TB, opts ...func(*gateway.Config)) *gatewayEnv {
	t.Helper()
	return startGateway(t, bus.Config{EmbeddedListen: "127.0.0.1:0", StoreDir: t.TempDir()}, opts)
}

func startGateway(t testing.TB, bcfg bus.Config, opts []func(*gateway.Config)) *gatewayEnv {
	t.Helper()
	b, err := bus.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{Bus: b, Auth: gateway.InsecureAuth{}, Logger: zap.NewNop()}
	if bcfg.StoreDir != "" {
		ctx := context.Background()
		if _, err := bus.ApplyStream(ctx, b.Conn(), bus.StreamConfig{}); err != nil {
			b.Close()
			t.Fatal(err)
		}
		if _, err := bus.ApplyAckBucket(ctx, b.Conn(), bus.AckBucketConfig{}); err != nil {
			b.Close()
			t.Fatal(err)
		}
		if _, err := b.TrackStream(ctx, ""); err != nil {
			b.Close()
			t.Fatal(err)
		}
		h, err := b.History(bus.HistoryConfig{})
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		cfg.History = h
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := gateway.New(cfg)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	if err := b.Start(s.Deliver); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := httptest.NewServer(s.AdminHandler())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		admin.Close()
		s.Close()
		if err := <-served; !errors.Is(err, gateway.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		b.Close()
	})
	return &gatewayEnv{url: "ws://" + ln.Addr().String() + "/ws", nats: b.ClientURL(), metrics: admin.URL + "/metrics"}
}

func runOK(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := res.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	return res
}

// checkDelivery asserts a clean run: everyone connected, everything
// delivered exactly once and in order.
func checkDelivery(t *testing.T, res *Result, conns int, want int64) {
	t.Helper()
	c, d := res.Conns, res.Delivery
	if c.Established != int64(conns) || c.Failed != 0 {
		t.Errorf("established %d failed %d (%v), want %d and 0", c.Established, c.Failed, c.FailedByReason, conns)
	}
	if c.HandshakeLatency.Count != int64(conns) {
		t.Errorf("handshake latencies %d, want %d", c.HandshakeLatency.Count, conns)
	}
	if d.Expected != want || d.Delivered != want {
		t.Errorf("expected %d delivered %d, want %d", d.Expected, d.Delivered, want)
	}
	if d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Misrouted != 0 {
		t.Errorf("lost %d dup %d reordered %d misrouted %d, want 0", d.Lost, d.Duplicated, d.Reordered, d.Misrouted)
	}
	if d.Latency.Count != want || d.Latency.Max <= 0 {
		t.Errorf("latency %+v, want %d samples", d.Latency, want)
	}
	if len(c.DroppedByReason) != 0 {
		t.Errorf("dropped %v", c.DroppedByReason)
	}
}

func fastConfig(g *gatewayEnv, scenario string) Config {
	return Config{
		Scenario: scenario,
		URLs:     []string{g.url},
		NATS:     g.nats,
		Rate:     5000,
		MsgRate:  50,
		Settle:   Duration(10 * time.Millisecond),
		Timeout:  Duration(10 * time.Second),
	}
}

// acceptValue is the Sec-WebSocket-Accept a server answers for key (RFC
// 6455 section 4.2.2).
func acceptValue(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// restartable is a durable gateway that a request to restartURL closes
// and starts again on the same address, as a process restart would: its
// NATS server, with the stream, runs apart and outlives it. metricsURL
// always reaches the current gateway's /metrics.
type restartable struct {
	t          testing.TB
	srv        *server.Server
	addr       string
	url        string
	metricsURL string
	restartURL string

	mu     sync.Mutex // protects the fields below
	b      *bus.Bus
	s      *gateway.Server
	served chan error
	starts int
}

func newRestartable(t testing.TB) *restartable {
	t.Helper()
	srv := natstest.Run(t, true) // shut down after g.stop below: cleanups run last first
	g := &restartable{t: t, srv: srv}
	t.Cleanup(g.stop)
	nc, err := bus.Dial(srv.ClientURL(), "bench-setup")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := bus.ApplyStream(context.Background(), nc, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.ApplyAckBucket(context.Background(), nc, bus.AckBucketConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := g.start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/restart" {
			g.stop()
			if err := g.start(g.addr); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
			return
		}
		// Between a restart's stop and start there is no gateway: a poll
		// then gets 503, as from a gateway that is down. (Dereferencing the
		// nil server here panicked with mu held, and every later request
		// and the restart itself waited for mu forever.)
		g.mu.Lock()
		s := g.s
		g.mu.Unlock()
		if s == nil {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		s.AdminHandler().ServeHTTP(w, req)
	}))
	t.Cleanup(admin.Close)
	g.url, g.metricsURL, g.restartURL = "ws://"+g.addr+"/ws", admin.URL+"/metrics", admin.URL+"/restart"
	return g
}

// start starts a gateway on addr, with a bus of its own over the NATS
// server.
func (g *restartable) start(addr string) error {
	b, err := bus.New(bus.Config{URL: g.srv.ClientURL()})
	if err != nil {
		return err
	}
	if _, err := b.TrackStream(context.Background(), ""); err != nil {
		b.Close()
		return err
	}
	h, err := b.History(bus.HistoryConfig{})
	if err != nil {
		b.Close()
		return err
	}
	s, err := gateway.New(gateway.Config{Bus: b, History: h, Auth: gateway.InsecureAuth{}, Logger: zap.NewNop()})
	if err != nil {
		b.Close()
		return err
	}
	if err := b.Start(s.Deliver); err != nil {
		b.Close()
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.Close()
		b.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	g.mu.Lock()
	g.b, g.s, g.served, g.addr = b, s, served, ln.Addr().String()
	g.starts++
	g.mu.Unlock()
	return nil
}

// stop closes the running gateway and its bus, if any.
func (g *restartable) stop() {
	g.mu.Lock()
	b, s, served := g.b, g.s, g.served
	g.b, g.s = nil, nil
	g.mu.Unlock()
	if s == nil {
		return
	}
	s.Close()
	if err := <-served; !errors.Is(err, gateway.ErrServerClosed) {
		g.t.Errorf("Serve returned %v", err)
	}
	b.Close()
}
