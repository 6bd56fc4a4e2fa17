package bench

import (
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/gateway"
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
	b, err := bus.New(bus.Config{EmbeddedListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{Bus: b, Auth: gateway.InsecureAuth{}, Logger: zap.NewNop()}
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
