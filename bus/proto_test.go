package bus

import (
	"bufio"
	"bytes"
	"errors"
	"hash/maphash"
	"io"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

func TestParseOp(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    op
		wantErr bool
	}{
		{line: "MSG notify.user.1 7 5", want: op{kind: opMsg, subject: []byte("notify.user.1"), size: 5}},
		{line: "msg notify.user.1 7 _INBOX.x 5", want: op{kind: opMsg, subject: []byte("notify.user.1"), size: 5}},
		{line: "MSG  notify.user.1\t7   0", want: op{kind: opMsg, subject: []byte("notify.user.1"), size: 0}},
		{line: "HMSG notify.user.1 7 22 27", want: op{kind: opMsg, subject: []byte("notify.user.1"), hdr: 22, size: 27}},
		{line: "HMSG notify.user.1 7 r 22 27", want: op{kind: opMsg, subject: []byte("notify.user.1"), hdr: 22, size: 27}},
		{line: "PING", want: op{kind: opPing}},
		{line: "pong", want: op{kind: opPong}},
		{line: "+OK", want: op{kind: opOK}},
		{line: "-ERR 'Permissions Violation for Subscription to \"x\"'", want: op{kind: opErr, arg: []byte(`Permissions Violation for Subscription to "x"`)}},
		{line: `INFO {"max_payload":1048576}`, want: op{kind: opInfo, arg: []byte(`{"max_payload":1048576}`)}},

		{line: "", wantErr: true},
		{line: "HELLO", wantErr: true},
		{line: "PING now", wantErr: true},
		{line: "MSG notify.user.1 7", wantErr: true},
		{line: "MSG notify.user.1 7 a b c", wantErr: true},
		{line: "MSG notify.user.1 7 -5", wantErr: true},
		{line: "MSG notify.user.1 7 5x", wantErr: true},
		{line: "MSG notify.user.1 7 2000", wantErr: true},        // above the body limit
		{line: "MSG notify.user.1 7 99999999999", wantErr: true}, // no overflow
		{line: "HMSG notify.user.1 7 30 27", wantErr: true},      // headers larger than the body
		{line: "HMSG notify.user.1 7 27", wantErr: true},
	} {
		t.Run(tc.line, func(t *testing.T) {
			got, err := parseOp([]byte(tc.line), 1024)
			if tc.wantErr {
				if !errors.Is(err, errProto) {
					t.Fatalf("parseOp(%q) = %+v, %v; want a protocol error", tc.line, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseOp(%q): %v", tc.line, err)
			}
			if got.kind != tc.want.kind || !bytes.Equal(got.subject, tc.want.subject) || got.hdr != tc.want.hdr ||
				got.size != tc.want.size || !bytes.Equal(got.arg, tc.want.arg) {
				t.Errorf("parseOp(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
		})
	}
}

// readerBus returns a subscription connection that is not connected, for
// feeding its reader bytes: what it dispatches lands in the one queue.
func readerBus() (*subConn, chan *message) {
	q := make(chan *message, 64)
	b := &Bus{prefix: "notify", log: zap.NewNop(), seed: maphash.MakeSeed(), queues: []chan *message{q}}
	u, _ := url.Parse("nats://127.0.0.1:4222")
	c := &subConn{b: b, log: b.log, kick: make(chan struct{}, 1), servers: []*natsServer{{url: u}}}
	return c, q
}

func TestReadDispatches(t *testing.T) {
	c, q := readerBus()
	hdr := "NATS/1.0\r\nNats-Stream: NOTIFY\r\nNats-Sequence: 7\r\nNats-Last-Sequence: 5\r\n\r\n"
	in := "PING\r\n" +
		"MSG notify.user.1 1 5\r\nhello\r\n" +
		"HMSG notify.user.2 2 " + strconv.Itoa(len(hdr)) + " " + strconv.Itoa(len(hdr)+2) + "\r\n" + hdr + "{}\r\n" +
		`INFO {"connect_urls":["10.0.0.2:4222","127.0.0.1:4222"]}` + "\r\n" +
		"-ERR 'Permissions Violation'\r\n" +
		"MSG notify 3 0\r\n\r\n" + // no channel: skipped
		"MSG notify.user.3 1 2\r\nxyz\r\n" // the body is longer than announced
	err := c.read(bufio.NewReader(bytes.NewBufferString(in)), 1024, nil)
	if !errors.Is(err, errProto) {
		t.Errorf("read ended with %v, want a protocol error for the bad body", err)
	}
	if m := <-q; m.subject != "notify.user.1" || string(m.data) != "hello" || m.header != nil {
		t.Errorf("first message %q %q %v", m.subject, m.data, m.header)
	}
	if m := <-q; m.subject != "notify.user.2" || string(m.data) != "{}" || m.header.Get("Nats-Sequence") != "7" {
		t.Errorf("second message %q %q %v", m.subject, m.data, m.header)
	}
	if len(q) != 0 {
		t.Errorf("%d more messages dispatched", len(q))
	}
	if got := len(c.servers); got != 2 {
		t.Errorf("%d servers after INFO, want 2 (one new)", got)
	}
}

// FuzzServerOp feeds the subscription connection's reader what a server
// (or something else listening on its port) might send: it must end with
// an error or io.EOF, never panic, and never dispatch a message whose
// body it did not read whole.
func FuzzServerOp(f *testing.F) {
	for _, s := range []string{
		"MSG notify.user.1 1 5\r\nhello\r\n",
		"HMSG notify.user.2 2 12 14\r\nNATS/1.0\r\n\r\n{}\r\n",
		"HMSG notify.user.2 2 40 42\r\nNATS/1.0\r\nNats-Sequence: 7\r\nX: y\r\n\r\n{}\r\n",
		"PING\r\nPONG\r\n+OK\r\n",
		`INFO {"connect_urls":["10.0.0.2:4222"],"ldm":true}` + "\r\n",
		"-ERR 'Stale Connection'\r\n",
		"MSG a 1 3\r\nab",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, q := readerBus()
		c.b.queues[0] = make(chan *message, 1<<10)
		err := c.read(bufio.NewReader(bytes.NewReader(in)), 4096, nil)
		if err == nil {
			t.Fatal("read returned nil")
		}
		if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errProto) {
			t.Fatalf("read: %v", err)
		}
		close(q)
		for m := range q {
			if len(m.subject) <= len("notify.") {
				t.Fatalf("dispatched a message without a channel: %q", m.subject)
			}
		}
	})
}

// Losing its server, the subscription connection moves at once to the
// next seed, well within ReconnectWait (30 s here), and that server has
// every subscription before Connected turns true: a message published
// there right after is delivered.
func TestFailoverToNextSeed(t *testing.T) {
	a, b := natstest.RunWith(t, &server.Options{}), natstest.RunWith(t, &server.Options{})
	urls := a.ClientURL() + "," + b.ClientURL()
	bus, rec := newBus(t, Config{URL: urls, Connect: ConnectOptions{ReconnectWait: 30 * time.Second}}, nil)
	if err := bus.Interest("user.f"); err != nil {
		t.Fatal(err)
	}
	var live, other *server.Server
	for _, s := range []*server.Server{a, b} {
		if serverSubs(t, s, DefaultName) > 0 {
			live = s
		} else {
			other = s
		}
	}
	if live == nil {
		t.Fatal("no server holds the subscription")
	}
	shutdown(live)
	start := time.Now()
	wstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if bus.sc.connects.Load() < 2 || !bus.Connected() {
			return errors.New("not connected again yet")
		}
		return nil
	})
	t.Logf("connected again %v after the server went", time.Since(start))
	if got := serverSubs(t, other, DefaultName); got != 1 {
		t.Fatalf("the other server holds %d subscriptions, want 1", got)
	}
	p := newPublisher(t, other.ClientURL())
	if err := p.User("f", []byte("moved")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.f", payload: "moved"})
}
