// Package natstest starts real NATS servers inside a test process: one
// server, with JetStream or without, or a cluster of them routed to each
// other, or one with the options a test gives (authorization, TLS). Like
// net/http/httptest it is imported only by tests; every server is shut
// down when its test ends.
//
//	srv := natstest.Run(t, true)           // JetStream in t.TempDir()
//	srvs := natstest.Cluster(t, 3)         // three routed nodes, JetStream R3-ready
//	url := natstest.URLs(srvs)             // "nats://…,nats://…,nats://…"
//	pki := natstest.NewPKI(t)              // a CA, server and client certificates in PEM files
//	srv = natstest.RunWith(t, &server.Options{TLSConfig: pki.ServerTLS, TLSVerify: true})
package natstest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsgate/wsgate/internal/wstest"
)

// Run starts a NATS server on a free loopback port, with JetStream (in its
// own temporary directory) when js is true.
func Run(t testing.TB, js bool) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true}
	if js {
		opts.JetStream, opts.StoreDir = true, t.TempDir()
	}
	return start(t, opts)
}

// Cluster starts n NATS servers with JetStream, named n0…, routed to each
// other as one cluster, and returns once every route is up and JetStream
// has a meta leader that knows every peer, so that streams of n replicas
// can be created at once.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	// Route ports picked now, so that each server can be given the others'.
	ports, routes := make([]int, n), make([]string, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		routes[i] = "nats-route://" + ln.Addr().String()
		ln.Close()
	}
	srvs := make([]*server.Server, n)
	for i := range srvs {
		srvs[i] = start(t, &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "wsgate", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
	}
	wstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, s := range srvs {
			if s.NumRoutes() < n-1 {
				return fmt.Errorf("%s: %d routes", s.Name(), s.NumRoutes())
			}
		}
		for _, s := range srvs {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return nil
			}
		}
		return errors.New("no JetStream meta leader with every peer")
	})
	return srvs
}

// URLs returns the client URLs of srvs, comma-separated, as a NATS client
// takes its seed servers.
func URLs(srvs []*server.Server) string {
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

func start(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server %s not ready", opts.ServerName)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}
