package bus

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/internal/wstest"
)

func TestPublisherValidation(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	nc, err := Dial(b.ClientURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Everything the publisher sends, to check that valid names reach the
	// server with the right subject.
	seen := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe("notify.>", seen)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(nc, "")

	maxUser := strings.Repeat("u", 128-len("user."))
	maxTopic := strings.Repeat("t", 128-len("topic."))
	tests := []struct {
		name    string
		publish func() error
		subject string // "" when the publish must fail with ErrInvalidName
	}{
		{name: "user", publish: func() error { return p.User("42", nil) }, subject: "notify.user.42"},
		{name: "user chars", publish: func() error { return p.User("a-B_9", nil) }, subject: "notify.user.a-B_9"},
		{name: "user max length", publish: func() error { return p.User(maxUser, nil) }, subject: "notify.user." + maxUser},
		{name: "user too long", publish: func() error { return p.User(maxUser+"u", nil) }},
		{name: "user empty", publish: func() error { return p.User("", nil) }},
		{name: "user dotted", publish: func() error { return p.User("4.2", nil) }},
		{name: "user star", publish: func() error { return p.User("*", nil) }},
		{name: "user gt", publish: func() error { return p.User(">", nil) }},
		{name: "user star inside", publish: func() error { return p.User("4*", nil) }},
		{name: "user space", publish: func() error { return p.User("4 2", nil) }},
		{name: "user newline", publish: func() error { return p.User("4\r\n2", nil) }},
		{name: "topic", publish: func() error { return p.Topic("sports", nil) }, subject: "notify.topic.sports"},
		{name: "topic dotted", publish: func() error { return p.Topic("news.eu", nil) }, subject: "notify.topic.news.eu"},
		{name: "topic max length", publish: func() error { return p.Topic(maxTopic, nil) }, subject: "notify.topic." + maxTopic},
		{name: "topic too long", publish: func() error { return p.Topic(maxTopic+"t", nil) }},
		{name: "topic empty", publish: func() error { return p.Topic("", nil) }},
		{name: "topic empty token", publish: func() error { return p.Topic("news..eu", nil) }},
		{name: "topic leading dot", publish: func() error { return p.Topic(".news", nil) }},
		{name: "topic trailing dot", publish: func() error { return p.Topic("news.", nil) }},
		{name: "topic star", publish: func() error { return p.Topic("news.*", nil) }},
		{name: "topic gt", publish: func() error { return p.Topic(">", nil) }},
		{name: "topic space", publish: func() error { return p.Topic("news eu", nil) }},
		{name: "topic non-ascii", publish: func() error { return p.Topic("nöws", nil) }},
		{name: "broadcast", publish: func() error { return p.Broadcast(nil) }, subject: "notify.broadcast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.publish()
			if tt.subject == "" {
				if !errors.Is(err, ErrInvalidName) {
					t.Fatalf("err = %v, want ErrInvalidName", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			select {
			case m := <-seen:
				if m.Subject != tt.subject {
					t.Fatalf("subject = %q, want %q", m.Subject, tt.subject)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("nothing published")
			}
		})
	}
	if err := p.Flush(time.Second); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	select {
	case m := <-seen:
		t.Fatalf("an invalid publish reached the server: %q", m.Subject)
	default:
	}
}

func TestPublisherInvalidPrefix(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	p := NewPublisher(b.Conn(), "notify.>")
	for _, err := range []error{p.User("1", nil), p.Topic("a", nil), p.Broadcast(nil)} {
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("publish with an invalid prefix = %v, want ErrInvalidName", err)
		}
	}
}

func TestPublisherInProcess(t *testing.T) {
	b, rec := newBus(t, Config{}, nil)
	if err := b.Interest("user.1"); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(b.Conn(), "")
	if err := p.User("1", []byte("same connection")); err != nil {
		t.Fatal(err)
	}
	rec.expect(t, delivery{channel: "user.1", payload: "same connection"})
}

func TestPublisherClosed(t *testing.T) {
	b, _ := newBus(t, Config{}, nil)
	nc, err := Dial(b.ClientURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	p := NewPublisher(nc, "")
	if err := p.User("1", nil); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("publish on a closed connection = %v, want nats.ErrConnectionClosed", err)
	}
	if err := p.Flush(time.Second); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Flush on a closed connection = %v, want nats.ErrConnectionClosed", err)
	}
}

func TestDialNoServer(t *testing.T) {
	if nc, err := Dial(deadURL(t), "x"); err == nil {
		nc.Close()
		t.Fatal("Dial to a port where nothing listens: no error")
	}
}

// TestPublishDuringOutage pins down what the documentation of Dial says
// volatile publishing does while NATS is away: Publish returns nil and the
// message waits in nats.go's reconnect buffer, Flush fails after its
// timeout, a full buffer fails the publish, and the buffer reaches the
// server after the reconnect only if the connection was not closed first.
func TestPublishDuringOutage(t *testing.T) {
	srv := runServer(t, -1)
	port := srv.Addr().(*net.TCPAddr).Port
	kept := newPublisher(t, srv.ClientURL())
	closed, err := Dial(srv.ClientURL(), "closed-in-outage")
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()

	shutdown(srv)
	wstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !kept.nc.IsReconnecting() || !closed.IsReconnecting() {
			return errors.New("the publishers have not noticed the outage")
		}
		return nil
	})
	if err := kept.User("1", []byte("during the outage")); err != nil {
		t.Fatalf("Publish during an outage = %v, want nil (buffered)", err)
	}
	if err := NewPublisher(closed, "").User("1", []byte("lost")); err != nil {
		t.Fatalf("Publish during an outage = %v, want nil (buffered)", err)
	}
	if err := kept.Flush(100 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Errorf("Flush during an outage = %v, want nats.ErrTimeout", err)
	}
	// Fill the 8 MiB reconnect buffer Dial leaves in place.
	big := make([]byte, 512<<10)
	buffered := 1
	for ; ; buffered++ {
		err := kept.Broadcast(big)
		if errors.Is(err, nats.ErrReconnectBufExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("publish %d: %v", buffered, err)
		}
		if buffered > 2*nats.DefaultReconnectBufSize/len(big) {
			t.Fatalf("%d publishes of %d bytes buffered without ErrReconnectBufExceeded", buffered, len(big))
		}
	}
	closed.Close() // its buffered message goes with it

	srv2 := runServer(t, port)
	if err := kept.Flush(10 * time.Second); err != nil {
		t.Fatalf("Flush after the server is back: %v", err)
	}
	// A PONG can overtake the count when the reconnect replays the buffer
	// under load (seen once as 16 of 17 at the Flush): poll the count.
	wstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		vz, err := srv2.Varz(nil)
		if err != nil {
			return err
		}
		if vz.InMsgs != int64(buffered) {
			return fmt.Errorf("the server got %d messages after the reconnect, want the %d the kept connection buffered (and none from the closed one)", vz.InMsgs, buffered)
		}
		return nil
	})
}
