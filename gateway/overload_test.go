package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wstest"
)

// With every worker busy, the poller parks events in the backlog instead of
// waiting for a worker (a worker may be waiting for the poller), and the
// parked work runs once a worker is free.
func TestPollerNeverWaitsForWorkers(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PoolSize = 1
		c.PoolQueue = -1
	})
	clients := []*client{e.connect("a"), e.connect("b"), e.connect("c")}
	release := make(chan struct{})
	if err := e.srv.pool.Schedule(func() { <-release }); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		c.send(map[string]any{"op": "ping", "ref": i})
	}
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if n := e.srv.backlog.len(); n != len(clients) {
			return fmt.Errorf("backlog holds %d tasks, want %d: the poller is stuck", n, len(clients))
		}
		return nil
	})
	close(release)
	for i, c := range clients {
		if m := c.next(); m["type"] != "pong" || m["ref"] != float64(i) {
			t.Fatalf("client %d got %v", i, m)
		}
	}
}

// Sockets that never send their upgrade request hold no worker: with far
// more of them than workers, an open connection is still served, and they
// are dropped after HandshakeTimeout.
func TestSilentSocketsHoldNoWorker(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PoolSize = 4
		c.HandshakeTimeout = 500 * time.Millisecond
	})
	c := e.connect("busy")
	addr := e.addr
	var silent []net.Conn
	for range 100 {
		s, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Write([]byte("GET /ws HTTP/1.1\r\n")) // and nothing more
		silent = append(silent, s)
	}
	c.send(map[string]any{"op": "ping", "ref": 1})
	if m := c.next(); m["type"] != "pong" {
		t.Fatalf("got %v", m)
	}
	for _, s := range silent {
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(make([]byte, 1)); isTimeout(err) {
			t.Fatal("a silent socket outlived the handshake timeout")
		}
	}
}

// A client that sends pings and never reads cannot grow its queue past the
// limit with pongs: it is closed as a slow consumer. (The message rate
// limit, off here, would close it first; see TestMessageRateLimit.)
func TestPingFloodIsBounded(t *testing.T) {
	// WriteTimeout is out of reach, so only the queue limit can close the
	// flooder; the socket buffers on both sides (several MiB) fill first.
	//
	// The flooder keeps the kernel's default receive buffer: one far below
	// loopback's 64 KiB segments (SO_RCVBUF 4096, as dialNonReader sets)
	// makes the kernel drop segments in both directions on a loaded
	// machine, and TCP then backs its retransmissions off for seconds
	// (seen: RTO 3.2 s after 4 backoffs, the server's receive queue
	// empty), so the flood stalled for a minute. That is TCP, not the
	// gateway; big rounds fill the default buffers quickly instead.
	e := newEnv(t, func(c *Config) { c.WriteQueueLimit = 64 << 10; c.MessageRate = -1; c.WriteTimeout = time.Hour })
	c, err := e.dial(ws.Dialer{}, e.url+"?token="+token(t, "flooder", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	conn := c.Conn
	var ping bytes.Buffer
	for range 1000 {
		writeFrame(&ping, true, opPing, bytes.Repeat([]byte("p"), 125))
	}
	// Flood until the server counts a slow consumer or resets the socket;
	// each round blocks in the write for at most a second, so it polls
	// without a pause of its own.
	wstest.CheckFor(t, 60*time.Second, 0, func() error {
		if e.srv.metrics.slowConsumerCount() > 0 {
			return nil
		}
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(ping.Bytes()); err != nil && !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
			return nil // reset by the server
		}
		return errors.New("the flooder was never closed")
	})
	wstest.CheckFor(t, 2*time.Second, poll, func() error {
		if e.srv.metrics.slowConsumerCount() == 0 {
			return errors.New("not counted as a slow consumer")
		}
		return nil
	})
}
