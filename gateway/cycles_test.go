package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/wstest"
)

// After 10,000 connect/disconnect cycles of every kind (a clean close
// handshake, a client gone in the middle of a frame, a client gone during
// its upgrade request, a client gone right after sending it), the gateway
// is back where it started: as many goroutines, as many open files, one
// connection (the bystander's) and the bus subscriptions it had.
func TestConnectCycles(t *testing.T) {
	const (
		cycles      = 10_000
		concurrency = 50
		users       = 20
	)
	e := newEnv(t, func(c *Config) {
		c.Logger = zap.NewNop()          // ten thousand closes
		c.PoolSize = 0                   // the default 256, not the tests' 16
		c.HandshakeTimeout = time.Second // for sockets gone quiet mid-request
	})
	by := e.connect("bystander")
	subs := e.bus.Subscriptions()
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = token(t, fmt.Sprintf("cycler%d", i), time.Hour)
	}
	var request [users][]byte
	for i, tok := range tokens {
		request[i] = []byte(hostileRequest("GET", "/ws?token="+tok, "HTTP/1.1", nil))
	}
	var midFrame bytes.Buffer
	writeFrame(&midFrame, true, opText, bytes.Repeat([]byte("x"), 100))
	var bye bytes.Buffer
	writeFrame(&bye, true, opClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))

	cycle := func(i int) error {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		req := request[i%users]
		switch i % 4 {
		case 0: // clean: welcome, close handshake
			if _, err := conn.Write(req); err != nil {
				return err
			}
			if err := readUntil(conn, []byte(`"welcome"`)); err != nil {
				return fmt.Errorf("clean: %w", err)
			}
			if _, err := conn.Write(bye.Bytes()); err != nil {
				return err
			}
			return readUntil(conn, []byte{0x88, 0x02, 0x03, 0xe8})
		case 1: // abrupt, in the middle of a frame
			if _, err := conn.Write(req); err != nil {
				return err
			}
			if err := readUntil(conn, []byte(`"welcome"`)); err != nil {
				return fmt.Errorf("mid-frame: %w", err)
			}
			_, err := conn.Write(midFrame.Bytes()[:40])
			return err
		case 2: // gone during the upgrade request
			_, err := conn.Write(req[:len(req)/2])
			return err
		default: // gone at once after the request, with a reset
			conn.(*net.TCPConn).SetLinger(0)
			_, err := conn.Write(req)
			return err
		}
	}
	// One cycle of each kind first, so that whatever starts lazily is in
	// the baseline.
	for i := range 4 {
		if err := cycle(i); err != nil {
			t.Fatal(err)
		}
	}
	settled := func(goroutines, fds int) func() error {
		return func() error {
			g, f := runtime.NumGoroutine(), openFiles(t)
			n, s := e.srv.hub.count(), e.bus.Subscriptions()
			if g > goroutines || f > fds || n != 1 || s != subs {
				return fmt.Errorf("%d goroutines, %d open files, %d connections, %d bus subscriptions; want at most %d, at most %d, 1, %d",
					g, f, n, s, goroutines, fds, subs)
			}
			return nil
		}
	}
	// The warm-up's sockets are gone once the server has dropped them.
	wstest.CheckFor(t, 5*time.Second, poll, func() error {
		if n := e.srv.hub.count(); n != 1 {
			return fmt.Errorf("%d connections after the warm-up", n)
		}
		return nil
	})
	goroutines, fds := runtime.NumGoroutine(), openFiles(t)

	start := time.Now()
	var (
		next   atomic.Int64
		busy   atomic.Int64 // cycles refused with 503: the pool was saturated
		wg     sync.WaitGroup
		failed = make(chan error, concurrency)
	)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= cycles; i = int(next.Add(1)) {
				switch err := cycle(i); {
				case errors.Is(err, errCycleRefused):
					busy.Add(1)
				case err != nil:
					failed <- fmt.Errorf("cycle %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(failed)
	for err := range failed {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	wstest.CheckFor(t, 10*time.Second, poll, settled(goroutines, fds))
	t.Logf("%d cycles in %v (%d at a time, %d refused with 503 by a saturated pool); back to %d goroutines and %d open files %v after the last",
		cycles, elapsed.Round(time.Millisecond), concurrency, busy.Load(), goroutines, fds, (time.Since(start) - elapsed).Round(time.Millisecond))
	// Every kind of cycle happened as meant: a quarter each closed cleanly,
	// left mid-frame, left mid-request (the last quarter mostly too).
	refused := float64(busy.Load())
	for name, n := range map[string]float64{
		"closes{client_close}": e.closeCount(ReasonClientClose)(),
		"closes{peer_gone}":    e.closeCount(ReasonPeerGone)(),
		"upgrades{aborted}":    e.upgradeCount(resultAborted)(),
	} {
		if n < cycles/4-refused {
			t.Errorf("%s = %v, want at least %v", name, n, cycles/4-refused)
		}
	}
	e.expectUserMessage("bystander", "after the cycles", by)
	expectPong(t, by, 1)
}

// errCycleRefused is a cycle refused with 503 because the pool was saturated (the
// accept loop's answer when UpgradeScheduleTimeout passes).
var errCycleRefused = errors.New("refused with 503")

// readUntil reads conn until want has been seen.
func readUntil(conn net.Conn, want []byte) error {
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, want) {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.HasPrefix(got, []byte("HTTP/1.1 503 ")) {
			return errCycleRefused
		}
		if err != nil {
			return fmt.Errorf("read %q: %w", got, err)
		}
	}
	return nil
}

// openFiles returns how many files the process holds open, or 0 where
// /proc/self/fd does not tell (outside Linux): the fd check then passes.
func openFiles(t testing.TB) int {
	if runtime.GOOS != "linux" {
		return 0
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) - 1 // the directory being read
}
