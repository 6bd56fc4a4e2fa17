// Command natsd runs a NATS server (nats-server/v2, the same code the
// gateway embeds) as a process of its own, so that benchmarks can keep the
// bus out of the measured gateway's memory and CPU, and so that the
// integration tests can run a cluster of real processes and kill one of
// them.
//
//	go run ./bench/natsd -listen 127.0.0.1:14222
//	go run ./bench/natsd -listen 127.0.0.1:14222 -store-dir /tmp/js   # with JetStream, for durable notifications
//
// With -config it reads a nats-server configuration file (the ones in
// deploy/cluster, say); the flags given on the command line override the
// file's addresses, name and store directory, so that a test can run the
// reference configuration on ports of its own:
//
//	natsd -config deploy/cluster/nats-1.conf -listen 127.0.0.1:14222 \
//	  -cluster 127.0.0.1:16222 -routes nats-route://127.0.0.1:16223,nats-route://127.0.0.1:16224 \
//	  -monitor 127.0.0.1:18222 -store-dir /tmp/js1
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	config := flag.String("config", "", "nats-server configuration `file`; the other flags, when given, override its values")
	listen := flag.String("listen", "127.0.0.1:4222", "host:port to listen on for clients; port 0 picks one (printed)")
	storeDir := flag.String("store-dir", "", "enable JetStream, keeping its files in this directory (empty: no JetStream, or the configuration's)")
	name := flag.String("name", "", "server name, which a JetStream cluster requires to be unique (empty: random, or the configuration's)")
	cluster := flag.String("cluster", "", "host:port to listen on for routes from the other nodes of a cluster (empty: no cluster, or the configuration's)")
	clusterName := flag.String("cluster-name", "wsgate", "name of the cluster, the same on every node; with -cluster")
	routes := flag.String("routes", "", "comma-separated nats-route:// URLs of the other nodes; with -cluster")
	monitor := flag.String("monitor", "", "host:port of the monitoring endpoint (/varz, /healthz, /jsz); port 0 picks one (empty: off, or the configuration's)")
	logs := flag.Bool("log", false, "log to stderr as nats-server does (with -config: where and how the configuration says)")
	profPort := flag.Int("prof-port", 0, "serve Go's pprof on 127.0.0.1:`port` (0: off), to profile the server under a benchmark")
	flag.Parse()

	opts := &server.Options{MaxPayload: 1 << 20}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *config != "" {
		var err error
		if opts, err = server.ProcessConfigFile(*config); err != nil {
			fail(2, err)
		}
	} else {
		set["listen"] = true // the flag's default stands for the file's
	}
	opts.NoSigs = true
	opts.NoLog = !*logs && *config == ""
	if set["listen"] {
		host, port, err := splitAddr("-listen", *listen)
		if err != nil {
			fail(2, err)
		}
		if port == 0 {
			port = server.RANDOM_PORT // a free port; nats-server reads 0 as 4222
		}
		opts.Host, opts.Port = host, port
	}
	if *name != "" {
		opts.ServerName = *name
	}
	if *storeDir != "" {
		opts.JetStream, opts.StoreDir = true, *storeDir
	}
	if *cluster != "" {
		host, port, err := splitAddr("-cluster", *cluster)
		if err != nil {
			fail(2, err)
		}
		opts.Cluster.Host, opts.Cluster.Port = host, port
		if set["cluster-name"] || opts.Cluster.Name == "" {
			opts.Cluster.Name = *clusterName
		}
	}
	if *routes != "" {
		opts.Routes = server.RoutesFromStr(*routes)
	}
	if *monitor != "" {
		host, port, err := splitAddr("-monitor", *monitor)
		if err != nil {
			fail(2, err)
		}
		if port == 0 {
			port = server.RANDOM_PORT // 0 would turn it off
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if *profPort != 0 {
		opts.ProfPort = *profPort
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		fail(1, err)
	}
	srv.ConfigureLogger()
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "natsd: not ready")
		os.Exit(1)
	}
	fmt.Println("natsd listening on", srv.ClientURL())
	if addr := srv.MonitorAddr(); addr != nil {
		fmt.Println("natsd monitoring on", "http://"+addr.String())
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	srv.Shutdown()
	srv.WaitForShutdown()
}

// splitAddr splits the host:port of flag name.
func splitAddr(name, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", name, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("%s: port: %w", name, err)
	}
	return host, p, nil
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "natsd:", err)
	os.Exit(code)
}
