package gateway

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/wstest"
)

// flakyListener is a real listener whose first Accept calls fail with
// EMFILE, as when the process is out of file descriptors.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// Accept errors back off and never end Serve.
func TestAcceptErrorsBackOff(t *testing.T) {
	e := newEnv(t, nil)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner}
	ln.failures.Store(5) // 5+10+20+40+80 ms of backoff
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(ln) }()
	start := time.Now()
	c, err := e.dialURL("ws://"+inner.Addr().String()+"/ws?token="+token(t, "patient", time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.next(); m["type"] != "welcome" {
		t.Fatalf("got %v", m)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("accepted after %v; the backoff after 5 errors is at least 155ms", waited)
	}
	if got := counterValue(e.srv.metrics.acceptErrors); got != 5 {
		t.Errorf("accept errors counted: %v, want 5", got)
	}
	e.srv.Close()
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
}

// When every worker is busy, a new connection is refused with 503 at once
// rather than queued without bound.
func TestBusyPoolRefuses(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PoolSize = 1
		c.PoolQueue = -1
		c.HandshakeTimeout = 2 * time.Second
	})
	addr := e.addr
	// A long task holds the only worker.
	release := make(chan struct{})
	defer close(release)
	if err := e.srv.pool.Schedule(func() { <-release }); err != nil {
		t.Fatal(err)
	}
	wstest.CheckFor(t, 2*time.Second, poll, func() error {
		if e.srv.pool.Stats().Busy != 1 {
			return errBusy
		}
		return nil
	})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the pool is busy: %v", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

var errBusy = &net.OpError{Op: "wait", Err: syscall.EBUSY}
