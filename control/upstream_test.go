package control

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/wsgate/wsgate/internal/natstest"
)

// newUpstream returns an Upstream for gateway "gw-1" on a connection of
// its own to srv, closed at the end of the test.
func newUpstream(t testing.TB, srv *server.Server) *Upstream {
	t.Helper()
	u, err := NewUpstream(dial(t, srv), "", "gw-1")
	if err != nil {
		t.Fatalf("NewUpstream: %v", err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// result is one call of a Request's done, the reply copied.
type result struct {
	reply string
	err   error
}

// request makes a Request and waits for its done.
func request(t *testing.T, u *Upstream, channel string, data string, timeout time.Duration) result {
	t.Helper()
	ch := make(chan result, 2)
	u.Request(channel, "42", "gw-1-a", []byte(data), timeout, func(reply []byte, err error) {
		ch <- result{string(reply), err}
	})
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("done not called within 10s")
		return result{}
	}
}

// service answers requests on subject with h's reply, on a connection of
// its own.
func service(t *testing.T, srv *server.Server, subject string, h func(m *nats.Msg) *nats.Msg) {
	t.Helper()
	nc := dial(t, srv)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if r := h(m); r != nil {
			r.Subject = m.Reply
			nc.PublishMsg(r)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestUpstreamPublish(t *testing.T) {
	srv := natstest.Run(t, false)
	snc := dial(t, srv)
	sub, err := snc.SubscribeSync("notify.up.>")
	if err != nil {
		t.Fatal(err)
	}
	snc.Flush()
	u := newUpstream(t, srv)
	if err := u.Publish("topic.chat", "42", "gw-1-a", []byte(`{"text":"hi"}`)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "notify.up.topic.chat" || string(m.Data) != `{"text":"hi"}` {
		t.Errorf("got %s %q", m.Subject, m.Data)
	}
	for h, want := range map[string]string{HeaderUser: "42", HeaderConn: "gw-1-a", HeaderGateway: "gw-1"} {
		if got := m.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if err := u.Publish("topic.*", "42", "c", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Publish on a wildcard = %v, want ErrInvalid", err)
	}
}

func TestUpstreamRequest(t *testing.T) {
	srv := natstest.Run(t, false)
	service(t, srv, "notify.up.rpc.echo", func(m *nats.Msg) *nats.Msg {
		return &nats.Msg{Data: []byte(m.Header.Get(HeaderUser) + ":" + string(m.Data))}
	})
	service(t, srv, "notify.up.rpc.refuse", func(m *nats.Msg) *nats.Msg {
		r := nats.NewMsg("")
		r.Header.Set(HeaderError, "not allowed")
		return r
	})
	service(t, srv, "notify.up.rpc.silent", func(*nats.Msg) *nats.Msg { return nil })
	u := newUpstream(t, srv)

	if r := request(t, u, "rpc.echo", "ping", time.Minute); r.err != nil || r.reply != "42:ping" {
		t.Errorf("echo = %+v, want 42:ping", r)
	}
	var re *ReplyError
	if r := request(t, u, "rpc.refuse", "x", time.Minute); !errors.As(r.err, &re) || re.Message != "not allowed" {
		t.Errorf("refuse = %+v, want ReplyError not allowed", r)
	}
	if r := request(t, u, "rpc.nobody", "x", time.Minute); !errors.Is(r.err, ErrNoResponders) {
		t.Errorf("nobody = %+v, want ErrNoResponders", r)
	}
	if r := request(t, u, "rpc.silent", "x", 50*time.Millisecond); !errors.Is(r.err, ErrTimeout) {
		t.Errorf("silent = %+v, want ErrTimeout", r)
	}
	if r := request(t, u, "rpc..bad", "x", time.Minute); !errors.Is(r.err, ErrInvalid) {
		t.Errorf("bad channel = %+v, want ErrInvalid", r)
	}
	if n := u.Pending(); n != 0 {
		t.Errorf("Pending = %d after every request ended", n)
	}
}

func TestUpstreamClose(t *testing.T) {
	srv := natstest.Run(t, false)
	service(t, srv, "notify.up.rpc.silent", func(*nats.Msg) *nats.Msg { return nil })
	u := newUpstream(t, srv)
	var calls atomic.Int32
	ended := make(chan error, 10)
	for range 3 {
		u.Request("rpc.silent", "42", "c", nil, time.Minute, func(_ []byte, err error) {
			calls.Add(1)
			ended <- err
		})
	}
	if n := u.Pending(); n != 3 {
		t.Fatalf("Pending = %d, want 3", n)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close calls done before it returns.
	if n := calls.Load(); n != 3 || u.Pending() != 0 {
		t.Fatalf("after Close: %d done calls, %d pending; want 3, 0", n, u.Pending())
	}
	for range 3 {
		if err := <-ended; !errors.Is(err, ErrClosed) {
			t.Errorf("done(%v), want ErrClosed", err)
		}
	}
	if r := request(t, u, "rpc.silent", "x", time.Minute); !errors.Is(r.err, ErrClosed) {
		t.Errorf("Request after Close = %v, want ErrClosed", r.err)
	}
	if err := u.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestUpstreamConcurrent: 1000 requests at once, each answered with its
// own data, each done called once with its own reply.
func TestUpstreamConcurrent(t *testing.T) {
	srv := natstest.Run(t, false)
	service(t, srv, "notify.up.rpc.echo", func(m *nats.Msg) *nats.Msg { return &nats.Msg{Data: m.Data} })
	u := newUpstream(t, srv)
	const n = 1000
	var wg sync.WaitGroup
	var calls [n]atomic.Int32
	errs := make(chan error, n)
	wg.Add(n)
	for i := range n {
		go func() {
			want := fmt.Sprint(i)
			u.Request("rpc.echo", "42", "c", []byte(want), 30*time.Second, func(reply []byte, err error) {
				defer wg.Done()
				if calls[i].Add(1) > 1 {
					errs <- fmt.Errorf("request %d: done called again", i)
				}
				if err != nil || string(reply) != want {
					errs <- fmt.Errorf("request %d: done(%q, %v)", i, reply, err)
				}
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := u.Pending(); p != 0 {
		t.Errorf("Pending = %d", p)
	}
}
