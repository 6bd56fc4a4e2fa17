package wstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serve upgrades one connection on a loopback listener and runs script on
// it; the result of script arrives on the returned channel.
func serve(t *testing.T, script func(conn net.Conn) error) (url string, done <-chan error) {
	return serveWith(t, ws.Upgrader{}, script)
}

// serveWith is serve with the upgrader u.
func serveWith(t *testing.T, u ws.Upgrader, script func(conn net.Conn) error) (url string, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	go func() {
		defer ln.Close()
		conn, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		defer conn.Close()
		if _, err := u.Upgrade(conn); err != nil {
			ch <- err
			return
		}
		ch <- script(conn)
	}()
	return "ws://" + ln.Addr().String() + "/ws", ch
}

func TestClient(t *testing.T) {
	url, done := serve(t, func(conn net.Conn) error {
		for _, msg := range []string{
			`{"type":"welcome","conn":"ab-1","user":"42","ping_interval":25}`,
			`{"type":"message","channel":"user.42","data":{"n":1}}`,
		} {
			if err := wsutil.WriteServerText(conn, []byte(msg)); err != nil {
				return err
			}
		}
		// An echo of the client's op, then a close with a code.
		got, err := wsutil.ReadClientText(conn)
		if err != nil {
			return err
		}
		if !strings.Contains(string(got), `"op":"ping"`) {
			return errors.New("the client sent " + string(got))
		}
		return ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(4002, "too many")))
	})
	c := Connect(t, url, http.Header{"X-Test": {"1"}})
	if c.ID != "ab-1" || c.User != "42" {
		t.Fatalf("welcome recorded %q %q", c.ID, c.User)
	}
	if m := c.Next(t); m["channel"] != "user.42" {
		t.Fatalf("message = %v", m)
	}
	c.Send(t, map[string]any{"op": "ping", "ref": 1})
	if code, reason := c.ClosedWith(t); code != 4002 || reason != "too many" {
		t.Fatalf("closed with %d %q", code, reason)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// ReadFrame returns frames as they came, control frames unanswered;
// ReadData answers them and returns the next data message.
func TestReadFrameAndData(t *testing.T) {
	u := ws.Upgrader{Negotiate: func(o httphead.Option) (httphead.Option, error) { return o, nil }}
	url, done := serveWith(t, u, func(conn net.Conn) error {
		compressed := ws.NewTextFrame([]byte("z"))
		compressed.Header.Rsv = ws.Rsv(true, false, false)
		for _, f := range []ws.Frame{ws.NewPingFrame([]byte("p1")), compressed, ws.NewPingFrame([]byte("p2")), ws.NewBinaryFrame([]byte{0, 1})} {
			if err := ws.WriteFrame(conn, f); err != nil {
				return err
			}
		}
		// Only the second ping is answered: ReadFrame took the first.
		h, err := ws.ReadHeader(conn)
		if err != nil {
			return err
		}
		p := make([]byte, min(h.Length, 125))
		if _, err := io.ReadFull(conn, p); err != nil {
			return err
		}
		ws.Cipher(p, h.Mask, 0)
		if h.OpCode != ws.OpPong || string(p) != "p2" {
			return fmt.Errorf("the client sent %v %q, want the pong of p2", h.OpCode, p)
		}
		io.Copy(io.Discard, conn) // until the client hangs up
		return nil
	})
	d := ws.Dialer{Extensions: []httphead.Option{{Name: []byte("x-test")}}}
	c, err := Dial(context.Background(), d, url)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Extensions) != 1 || string(c.Extensions[0].Name) != "x-test" {
		t.Fatalf("Extensions = %v, want the accepted x-test", c.Extensions)
	}
	deadline := time.Now().Add(NextTimeout)
	for _, want := range []struct {
		op   ws.OpCode
		rsv1 bool
		p    string
	}{{ws.OpPing, false, "p1"}, {ws.OpText, true, "z"}} {
		h, p, err := c.ReadFrame(deadline)
		if err != nil || h.OpCode != want.op || h.Rsv1() != want.rsv1 || string(p) != want.p {
			t.Fatalf("ReadFrame = %+v %q, %v; want %v (RSV1 %v) %q", h, p, err, want.op, want.rsv1, want.p)
		}
	}
	if p, op, err := c.ReadData(deadline); err != nil || op != ws.OpBinary || string(p) != "\x00\x01" {
		t.Fatalf("ReadData = %v %q, %v; want the binary message", op, p, err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWelcomeRefusesOtherFrames(t *testing.T) {
	url, done := serve(t, func(conn net.Conn) error {
		return wsutil.WriteServerText(conn, []byte(`{"type":"message"}`))
	})
	c, err := Dial(context.Background(), ws.Dialer{}, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Welcome(time.Now().Add(NextTimeout)); err == nil {
		t.Fatal("a message frame was taken for a welcome")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSilent(t *testing.T) {
	url, done := serve(t, func(conn net.Conn) error {
		if err := wsutil.WriteServerText(conn, []byte(`{"type":"welcome","conn":"a-1","user":"u"}`)); err != nil {
			return err
		}
		_, err := wsutil.ReadClientText(conn) // until the client hangs up
		if err != nil {
			return nil
		}
		return errors.New("the client sent something")
	})
	c := Connect(t, url, nil)
	c.Silent(t, 50*time.Millisecond)
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCheckFor(t *testing.T) {
	n := 0
	CheckFor(t, time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("f called %d times, want 3", n)
	}
}

// TestPositionsRetryUnavailable: a resume answered "unavailable" is sent
// again, one refused otherwise is an error, and an error that answers no
// resume changes nothing.
func TestPositionsRetryUnavailable(t *testing.T) {
	p := NewPositions()
	p.Resume("user.1", 3)
	again, err := p.Handle(map[string]any{"type": "error", "ref": float64(3), "code": "unavailable"})
	if err != nil || len(again) != 1 || again[0] != "user.1" {
		t.Fatalf("unavailable: %v, %v; want user.1 resumed again", again, err)
	}
	if again, err := p.Handle(map[string]any{"type": "error", "ref": float64(9), "code": "forbidden"}); err != nil || again != nil {
		t.Fatalf("an error of another op: %v, %v; want nothing", again, err)
	}
	p.Resume("user.1", 4)
	if _, err := p.Handle(map[string]any{"type": "error", "ref": float64(4), "code": "forbidden"}); err == nil {
		t.Fatal("a refused resume: no error")
	}
}
