// Command natsd runs a NATS server (nats-server/v2, the same code the
// gateway embeds) as a process of its own, so that benchmarks can keep the
// bus out of the measured gateway's memory and CPU.
//
//	go run ./bench/natsd -listen 127.0.0.1:14222
//	go run ./bench/natsd -listen 127.0.0.1:14222 -store-dir /tmp/js   # with JetStream, for durable notifications
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
	listen := flag.String("listen", "127.0.0.1:4222", "host:port to listen on")
	storeDir := flag.String("store-dir", "", "enable JetStream, keeping its files in this directory (empty: no JetStream)")
	profPort := flag.Int("prof-port", 0, "serve Go's pprof on 127.0.0.1:`port` (0: off), to profile the server under a benchmark")
	flag.Parse()
	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(2)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd: port:", err)
		os.Exit(2)
	}
	opts := &server.Options{Host: host, Port: p, NoSigs: true, NoLog: true, MaxPayload: 1 << 20}
	if *profPort != 0 {
		opts.ProfPort = *profPort
	}
	if *storeDir != "" {
		opts.JetStream, opts.StoreDir = true, *storeDir
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "natsd: not ready")
		os.Exit(1)
	}
	fmt.Println("natsd listening on", srv.ClientURL())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	srv.Shutdown()
	srv.WaitForShutdown()
}
