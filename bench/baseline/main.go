// Command baseline is the "before" picture that wsgate is measured against:
// the idiomatic WebSocket server of Mail.Ru's "A Million WebSockets and Go",
// written with net/http and gorilla/websocket the way a competent team would
// write it before optimizing anything.
//
// Every connection has a reader goroutine and a writer goroutine, a 4 KiB
// read buffer and a 4 KiB write buffer, a buffered send channel, a ping
// ticker, and its own NATS subscriptions (one for its user, one per topic;
// nats.go runs a goroutine for each). wsgate avoids all of these; this
// command exists so that a benchmark can show what that buys.
//
// It speaks the subset of the wsgate protocol that the benchmarks use (see
// docs/protocol.md) and uses the same NATS subjects, so every scenario runs
// unchanged against both:
//
//   - GET /ws?user=<id> (development identity, like wsgate --auth=none);
//     the first frame is the welcome;
//   - <prefix>.user.<id>, <prefix>.topic.<name> and <prefix>.broadcast are
//     delivered as {"type":"message","channel":...,"data":...};
//   - the ops ping, subscribe and unsubscribe, with the same answers and
//     error codes;
//   - an admin listener with /healthz and /metrics (Go and process
//     collectors, baseline_connections, baseline_messages_delivered_total).
//
// It is not a product: no JWT, no origin check, no drain window, no UTF-8
// validation of client messages.
//
//	go run ./bench/baseline --nats-url nats://127.0.0.1:4222 --listen :8081 --admin :9091
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":8081", "WebSocket listen address")
	natsURL := flag.String("nats-url", "nats://127.0.0.1:4222", "NATS server URL")
	prefix := flag.String("subject-prefix", "notify", "NATS subject prefix")
	admin := flag.String("admin", ":9091", "admin listen address (/healthz, /metrics); empty disables")
	flag.Parse()

	s, err := newServer(config{NATSURL: *natsURL, Prefix: *prefix})
	if err != nil {
		log.Fatalf("baseline: nats: %v", err)
	}
	srv := &http.Server{Addr: *listen, Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
	var adm *http.Server
	if *admin != "" {
		adm = &http.Server{Addr: *admin, Handler: s.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { errc <- adm.ListenAndServe() }()
	}
	log.Printf("baseline: listening on %s (admin %q, nats %s)", *listen, *admin, *natsURL)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		log.Printf("baseline: %v, shutting down", sig)
	case err := <-errc:
		log.Fatalf("baseline: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Shutdown stops accepting; it does not track hijacked WebSockets, which
	// s.Close then closes with 1001.
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("baseline: shutdown: %v", err)
	}
	s.Close()
	if adm != nil {
		_ = adm.Shutdown(ctx)
	}
}
