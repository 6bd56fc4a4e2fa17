package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// runJetStream starts a NATS server with JetStream on addr, its files in
// store, shut down at the end of the test if still running.
func runJetStream(t *testing.T, addr, store string) *server.Server {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: host, Port: p, JetStream: true, StoreDir: store, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server on %s not ready", addr)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// A gateway on an external NATS server that is shut down while durable
// notifications flow, and started again on the same address and JetStream
// files: a publish while it is down gets no ack and fails at its deadline
// (nats.go may still send it from its reconnect buffer once NATS is back,
// so the publisher retries with the same message id), the gateway
// reconnects by itself, and each client ends up with every notification
// the stream acknowledged for its user, once and in order, those stored
// before the restart included.
//
// The clients stay connected to the gateway throughout: a client learns
// that the gateway missed a notification during the outage from the next
// one on its channel (its prev), so the publisher goes on until the gateway
// has logged its reconnect and publishes a few rounds after it.
func TestDurableSurvivesNATSRestart(t *testing.T) {
	bin := buildBinary(t)
	store, natsAddr, listen := t.TempDir(), freeAddr(t), freeAddr(t)
	natsURL := "nats://" + natsAddr
	srv := runJetStream(t, natsAddr, store)
	g := startGateway(t, bin, "--durable", "--nats-url", natsURL, "--listen", listen)
	g.waitLog(t, "durable stream ready")

	const users, before, after = 10, 20, 5
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	positions := make([]*wstest.Positions, users+1) // the last is the user "outage"
	var clients sync.WaitGroup
	for i := range positions {
		positions[i] = wstest.NewPositions()
		user := fmt.Sprintf("n%d", i)
		if i == users {
			user = "outage"
		}
		clients.Add(1)
		go func() {
			defer clients.Done()
			durableClient(ctx, fmt.Sprintf("ws://%s/ws?user=%s", listen, user), "user."+user, positions[i])
		}()
	}

	nc, err := bus.Dial(natsURL, "fault-publisher")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := bus.NewPublisher(nc, "")
	stored := make([][]uint64, users)
	down := make(chan struct{})        // closed once the first rounds are stored
	gatewayBack := make(chan struct{}) // closed once the gateway has reconnected
	published := make(chan error, 1)
	go func() {
		extra := 0
		for r := 0; ; r++ {
			if r == before {
				close(down)
			}
			if r >= before {
				select {
				case <-gatewayBack:
					extra++
				default:
				}
				if extra > after {
					break
				}
			}
			if err := publishRound(ctx, p, "n", r, stored); err != nil {
				published <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		published <- nil
	}()

	<-down
	srv.Shutdown()
	srv.WaitForShutdown()

	// A publish while NATS is down is not acknowledged: the caller is told
	// that JetStream did not answer in time, so it may or may not be
	// stored, and retries with the same message id.
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = p.DurableUser(pctx, "outage", []byte(`"while down"`), bus.WithMsgID("outage-1"))
	pcancel()
	if !errors.Is(err, bus.ErrJetStreamUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("durable publish with NATS down: %v, want bus.ErrJetStreamUnavailable after the deadline", err)
	}

	runJetStream(t, natsAddr, store)
	outage, err := publishUntilStored(ctx, p, "outage", "outage-1")
	if err != nil {
		t.Fatal(err)
	}
	g.waitLogWithin(t, "nats reconnected", 30*time.Second)
	close(gatewayBack)
	last, err := publishUntilStored(ctx, p, "outage", "outage-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	want := append(stored, []uint64{outage, last})
	channels := make([]string, len(positions))
	for i := range channels {
		channels[i] = fmt.Sprintf("user.n%d", i)
	}
	channels[users] = "user.outage"
	expectApplied(t, positions, channels, want)
	cancel()
	clients.Wait()
	expectRecovered(t, positions)
	for i := range positions {
		if len(want[i]) < 2 {
			t.Errorf("client %d: %d notifications stored, want some on each side of the restart", i, len(want[i]))
		}
	}
}
