package gateway

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// A burst of 2,000 durable notifications of 4 KiB to a topic. A client
// that stops reading after the first is closed as a slow consumer; it
// reconnects, subscribes the topic again and resumes from its last
// position, and gets every one of the 2,000 in order, once (the replay
// comes in two parts: the limit is 1,000). The healthy readers of the same
// burst keep their positions the same way: whether the write-queue limit
// closes them too or not, each ends with every notification, at the cost
// of a reconnect at most.
func TestSlowDurableConsumerResumes(t *testing.T) {
	const burst, size, readers = 2000, 4 << 10, 4
	obs, closes := observer.New(zapcore.DebugLevel)
	e := newEnvBus(t, bus.Config{StoreDir: t.TempDir()}, func(c *Config) {
		c.Logger = zap.New(zapcore.NewTee(c.Logger.Core(), obs))
	})
	// The stream keeps the whole burst: at its default of 1,000 per
	// channel, the notifications the slow client missed first are evicted
	// before it resumes (and the resume says so).
	if _, err := bus.ApplyStream(t.Context(), e.bus.Conn(), bus.StreamConfig{MaxMsgsPerChannel: 2 * burst}); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.ApplyAckBucket(t.Context(), e.bus.Conn(), bus.AckBucketConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.TrackStream(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	const ch = "topic.burst"
	first := storeTopic(t, e, 1, size, 0)

	// Healthy readers: they read as fast as they can, and reconnect and
	// resume if the gateway closes them.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	positions := make([]*wstest.Positions, readers)
	conns := make([]atomic.Int32, readers)
	errs := make(chan error, readers)
	var clients sync.WaitGroup
	for i := range readers {
		positions[i] = wstest.NewPositions()
		url := e.url + "?token=" + token(t, fmt.Sprint("h", i), time.Hour, ch)
		clients.Add(1)
		go func() {
			defer clients.Done()
			positionsClient(ctx, url, ch, positions[i], &conns[i], errs)
		}()
	}

	// The slow client takes the first notification, then stops reading;
	// its receive buffer is tiny, so the kernel holds little for it.
	slowPos := wstest.NewPositions()
	slow := e.dialSmallBuffer("sloth", ch)
	slow.send(map[string]any{"op": "subscribe", "channel": ch, "ref": 1})
	if m := slow.next(); m["type"] != "subscribed" {
		t.Fatalf("got %v, want subscribed", m)
	}
	slow.send(slowPos.Resume(ch, 2))
	for len(slowPos.Applied(ch)) == 0 {
		if _, err := slowPos.Handle(slow.next()); err != nil {
			t.Fatal(err)
		}
	}
	wstest.CheckFor(t, 10*time.Second, poll, func() error {
		for i, pos := range positions {
			if got := pos.Applied(ch); !slices.Equal(got, first) {
				return fmt.Errorf("reader %d applied %v, want %v", i, got, first)
			}
		}
		return nil
	})

	want := append(first, storeTopic(t, e, burst, size, 1)...)
	slices.Sort(want)
	wstest.CheckFor(t, 20*time.Second, poll, func() error {
		for _, entry := range closes.FilterMessage("connection closed").AllUntimed() {
			f := entry.ContextMap()
			if f["user"] == "sloth" && f["reason"] == ReasonSlowConsumer.String() && e.srv.metrics.slowConsumerCount() >= 1 {
				return nil
			}
		}
		return fmt.Errorf("the slow client was not closed as a slow consumer (%v slow consumer closes)", e.srv.metrics.slowConsumerCount())
	})
	slow.Close()

	slow = e.connect("sloth", ch)
	slow.send(map[string]any{"op": "subscribe", "channel": ch, "ref": 3})
	if m := slow.next(); m["type"] != "subscribed" {
		t.Fatalf("got %v, want subscribed", m)
	}
	ref := 4
	slow.send(slowPos.Resume(ch, ref))
	var answers []string
	for got := 0; got < len(want); got = len(slowPos.Applied(ch)) {
		m, err := slow.read(wstest.NextTimeout)
		if err != nil {
			t.Fatalf("after %d of %d notifications and the answers %v: %v", got, len(want), answers, err)
		}
		if _, err := slowPos.Handle(m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == "resumed" {
			answers = append(answers, fmt.Sprint(m["recovered"], " ", m["reason"]))
		}
		// A replay cut at the limit: once its frames are in, resume from
		// the last one for the next.
		if m["type"] == "message" && len(answers) == 1 && len(slowPos.Applied(ch)) == 1+DefaultReplayLimit {
			ref++
			slow.send(slowPos.Resume(ch, ref))
		}
	}
	if got := slowPos.Applied(ch); !slices.Equal(got, want) {
		t.Fatalf("the slow client applied %d notifications, want the %d stored, in order", len(got), len(want))
	}
	if got, wantAnswers := strings.Join(answers, ", "), "false limit, true <nil>"; got != wantAnswers {
		t.Errorf("resume answers %q, want %q", got, wantAnswers)
	}
	slow.silent(100 * time.Millisecond)

	wstest.CheckFor(t, 30*time.Second, poll, func() error {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		for i, pos := range positions {
			if got := pos.Applied(ch); !slices.Equal(got, want) {
				return fmt.Errorf("reader %d applied %d of %d notifications", i, len(got), len(want))
			}
		}
		return nil
	})
	cancel()
	clients.Wait()
	dropped := 0
	for i := range conns {
		dropped += int(conns[i].Load()) - 1
	}
	t.Logf("write queue limit %d KiB: %d of %d healthy readers reconnected; %v slow consumer closes in all",
		DefaultWriteQueueLimit>>10, dropped, readers, e.srv.metrics.slowConsumerCount())
}

// storeTopic publishes n durable notifications of size bytes to
// topic.burst, {"i":from,...}…, from 16 goroutines, and returns their
// sequences in the order the stream stored them.
func storeTopic(t *testing.T, e *env, n, size, from int) []uint64 {
	t.Helper()
	const workers = 16
	var (
		mu   sync.Mutex
		seqs []uint64
		wg   sync.WaitGroup
	)
	errs := make(chan error, workers)
	next := atomic.Int64{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				head := fmt.Sprintf(`{"i":%d,"pad":"`, from+i)
				payload := head + strings.Repeat("x", size-len(head)-2) + `"}`
				st, err := e.pub.DurableTopic(t.Context(), "burst", []byte(payload))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seqs = append(seqs, st.Sequence)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	slices.Sort(seqs)
	return seqs
}

// dialSmallBuffer connects as user, allowed channels, with a receive buffer
// so small that the kernel holds little for it once it stops reading, and
// reads the welcome.
func (e *env) dialSmallBuffer(user string, channels ...string) *client {
	e.t.Helper()
	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}
	c, err := e.dial(d, e.url+"?token="+token(e.t, user, time.Hour, channels...))
	if err != nil {
		e.t.Fatal(err)
	}
	c.welcomed(user)
	return c
}
