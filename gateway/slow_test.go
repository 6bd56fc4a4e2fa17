package gateway

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/wstest"
)

// A client that stops reading is closed as a slow consumer once its write
// queue is over the limit, and everyone else keeps receiving meanwhile.
func TestSlowConsumer(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WriteQueueLimit = 64 << 10 })
	e.dialNonReader("sloth")
	fast := e.connect("hare")

	payload := []byte(`"` + string(bytes.Repeat([]byte("z"), 16<<10)) + `"`)
	for i := 0; ; i++ {
		e.pub.User("sloth", payload)
		e.pub.User("hare", []byte(strconv.Itoa(i)))
		if m := fast.next(); m["data"] != float64(i) {
			t.Fatalf("the fast client got %v, want %d", m, i)
		}
		if e.srv.metrics.slowConsumerCount() > 0 {
			break
		}
		if i > 5000 {
			t.Fatal("the slow client was never closed")
		}
	}
	wstest.CheckFor(t, 2*time.Second, poll, func() error {
		if n := e.srv.hub.count(); n != 1 {
			return fmt.Errorf("%d connections, want 1 (the fast one)", n)
		}
		return nil
	})
	e.pub.Broadcast([]byte(`"still here"`))
	if m := fast.next(); m["data"] != "still here" {
		t.Fatalf("fast client got %v", m)
	}
}

// The server pings a silent connection and closes it with 4001 when nothing
// comes back; a client that answers pings stays.
func TestHeartbeats(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PingInterval = 100 * time.Millisecond
		c.IdleTimeout = 500 * time.Millisecond
	})
	alive := e.connect("alive")
	mute := e.connect("mute")

	// alive reads (and so answers pings) for well past the idle timeout.
	deadline := time.Now().Add(1200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if m, err := alive.read(50 * time.Millisecond); err == nil {
			t.Fatalf("alive got %v", m)
		}
	}
	// mute read nothing so far: its buffer holds pings, then the close.
	pings := 0
	for {
		f := readRawFrame(t, mute)
		if f.op == opPing {
			pings++
			continue
		}
		code, _ := ws.ParseCloseFrameData(f.payload)
		if f.op != opClose || code != StatusIdleTimeout {
			t.Fatalf("got %v %d, want close 4001", f.op, code)
		}
		break
	}
	if pings == 0 {
		t.Fatal("the server sent no ping before closing")
	}
	alive.send(map[string]any{"op": "ping", "ref": 1})
	if m := alive.next(); m["type"] != "pong" {
		t.Fatalf("alive is not alive: %v", m)
	}
}
func TestAuthExpiryCloses(t *testing.T) {
	e := newEnv(t, nil)
	c, err := e.dialURL(e.url+"?token="+token(t, "brief", 1500*time.Millisecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.next(); m["type"] != "welcome" {
		t.Fatalf("got %v", m)
	}
	if code := c.closeCode(); code != ws.StatusPolicyViolation {
		t.Fatalf("close code = %d, want 1008", code)
	}
}

// A token that expires after 2106 (exp beyond uint32 seconds) never
// expires; it must not wrap into the past and close at the first sweep.
func TestFarFutureExpiry(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PingInterval = 40 * time.Millisecond
		c.IdleTimeout = time.Second
	})
	// exp = 9999999999 (year 2286) wraps to 2014 as uint32.
	c, err := e.dialURL(e.url+"?token="+token(t, "forever", time.Until(time.Unix(9999999999, 0))), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.next(); m["type"] != "welcome" {
		t.Fatalf("got %v", m)
	}
	if m, err := c.read(300 * time.Millisecond); err == nil || !isTimeout(err) {
		t.Fatalf("got %v, %v; want the connection to stay open", m, err)
	}
}
func TestInsecureAuth(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Auth = InsecureAuth{} })
	c, err := e.dialURL(e.url+"?user=42", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.next(); m["type"] != "welcome" || m["user"] != "42" || m["ping_interval"] != 25.0 {
		t.Fatalf("welcome = %v", m)
	}
	c.send(map[string]any{"op": "subscribe", "channel": "topic.anything", "ref": 1})
	if m := c.next(); m["type"] != "subscribed" {
		t.Fatalf("development mode allows every topic; got %v", m)
	}
	for _, q := range []string{"", "?user=", "?user=a.b", "?user=%2A", "?user=" + strings.Repeat("u", 124)} {
		if _, err := e.dialURL(e.url+q, nil); err == nil {
			t.Errorf("%q was accepted", q)
		}
	}
}
