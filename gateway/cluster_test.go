package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/natstest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// positionsClient keeps ch the way docs/protocol.md tells a durable client
// to: it reconnects with jitter, subscribes ch if it is a topic, resumes
// from its positions after every welcome (a topic's after subscribed) and
// on every gap, and resumes again from the last one once a replay cut at
// the limit (reason "limit") has run its DefaultReplayLimit frames, until
// ctx ends. conns counts the connections it made; a broken promise
// (pos.Handle's error) ends it and goes to errs.
func positionsClient(ctx context.Context, url, ch string, pos *wstest.Positions, conns *atomic.Int32, errs chan<- error) {
	ref, topic := 0, strings.HasPrefix(ch, "topic.")
	send := func(c *wstest.Client, v any) error {
		p, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return c.WriteText(p)
	}
	for ctx.Err() == nil {
		c, err := wstest.Dial(ctx, ws.Dialer{Timeout: 2 * time.Second}, url)
		if err == nil {
			if _, err = c.Welcome(time.Now().Add(2 * time.Second)); err != nil {
				c.Close()
			}
		}
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(50+rand.IntN(150)) * time.Millisecond):
			}
			continue
		}
		conns.Add(1)
		// Reads wait without a deadline (one that expired mid-frame would
		// leave the rest of the frame unread): ctx's end closes the socket.
		stop := context.AfterFunc(ctx, func() { c.Close() })
		ref++
		if topic {
			err = send(c, map[string]any{"op": "subscribe", "channel": ch, "ref": ref})
		} else {
			err = send(c, pos.Resume(ch, ref))
		}
		limited := 0 // frames of a replay cut at the limit still to come
		for err == nil && ctx.Err() == nil {
			var m map[string]any
			if m, err = c.Read(time.Time{}); err != nil {
				break // the gateway closed it: reconnect
			}
			if topic && m["type"] == "subscribed" && m["channel"] == ch {
				ref++
				err = send(c, pos.Resume(ch, ref))
				continue
			}
			again, perr := pos.Handle(m)
			if perr != nil {
				stop()
				c.Close()
				errs <- fmt.Errorf("%s: %w", ch, perr)
				return
			}
			switch count, _ := m["count"].(float64); {
			case len(again) > 0:
				limited = 0
			case m["type"] == "resumed" && m["channel"] == ch && count > 0:
				limited = int(count) // the replay stops after count frames
			case limited > 0 && m["type"] == "message" && m["channel"] == ch:
				if limited--; limited == 0 {
					again = []string{ch}
				}
			}
			for _, x := range again {
				ref++
				if err = send(c, pos.Resume(x, ref)); err != nil {
					break
				}
			}
		}
		stop()
		c.Close()
	}
}

// storeUntilAcked publishes a durable notification to user id with message
// id msgID, retrying until JetStream acknowledges it (the duplicate window
// makes a retry of one that was stored harmless), and returns its seq.
func storeUntilAcked(ctx context.Context, p *bus.Publisher, id, msgID string) (uint64, error) {
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := p.DurableUser(pctx, id, fmt.Appendf(nil, `{"id":%q}`, msgID), bus.WithMsgID(msgID))
		cancel()
		if err == nil {
			return st.Sequence, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A three-node NATS cluster keeps the stream and the ack bucket at three
// replicas. The node that is both the stream's leader and the gateway's
// NATS server is shut down while durable notifications flow:
//
//   - every notification JetStream acknowledged (the publisher retries with
//     message ids until it is) reaches every client once and in order;
//   - the gateway's bus reconnects to a survivor and the WebSocket clients
//     stay connected: each made exactly one connection. What the gateway
//     missed while its NATS connection moved (republished messages in
//     flight through the dead node) the clients notice by prev at the next
//     notification of their channel and get back by resume, so the
//     publisher goes on for a few rounds once the bus has reconnected.
func TestDurableClusterNodeLoss(t *testing.T) {
	srvs := natstest.Cluster(t, 3)
	e := newEnvBus(t, bus.Config{URL: natstest.URLs(srvs)}, func(c *Config) {
		h, err := c.Bus.(*bus.Bus).History(bus.HistoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
		c.History = h
	})
	ctx := t.Context()
	if _, err := bus.ApplyStream(ctx, e.bus.Conn(), bus.StreamConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.ApplyAckBucket(ctx, e.bus.Conn(), bus.AckBucketConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.TrackStream(ctx, ""); err != nil {
		t.Fatal(err)
	}

	// The victim is the gateway's server; make it the stream leader too.
	victim := slices.IndexFunc(srvs, func(s *server.Server) bool { return s.Name() == e.bus.Conn().ConnectedServerName() })
	if victim < 0 {
		t.Fatalf("the bus is connected to %q, none of the cluster", e.bus.Conn().ConnectedServerName())
	}
	stepdown, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: srvs[victim].Name()}})
	wstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if srvs[victim].JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, bus.DefaultStreamName) {
			return nil
		}
		e.nc.Request(fmt.Sprintf(server.JSApiStreamLeaderStepDownT, bus.DefaultStreamName), stepdown, time.Second)
		return fmt.Errorf("%s is not the stream leader", srvs[victim].Name())
	})

	const users, before, after = 10, 30, 10
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	positions := make([]*wstest.Positions, users)
	conns := make([]atomic.Int32, users)
	errs := make(chan error, users)
	var clients sync.WaitGroup
	for i := range users {
		positions[i] = wstest.NewPositions()
		url := e.url + "?token=" + token(t, fmt.Sprint("c", i), time.Hour)
		clients.Add(1)
		go func() {
			defer clients.Done()
			positionsClient(cctx, url, fmt.Sprint("user.c", i), positions[i], &conns[i], errs)
		}()
	}
	wstest.CheckFor(t, 10*time.Second, poll, func() error {
		for i := range conns {
			if conns[i].Load() == 0 {
				return fmt.Errorf("client %d not connected yet", i)
			}
		}
		return nil
	})

	stored := make([][]uint64, users)
	kill := make(chan struct{})
	busBack := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		extra := 0
		for r := 0; extra <= after; r++ {
			if r == before {
				close(kill)
			}
			if r > before {
				select {
				case <-busBack:
					extra++
				default:
				}
			}
			for i := range users {
				seq, err := storeUntilAcked(cctx, e.pub, fmt.Sprint("c", i), fmt.Sprintf("c%d-%d", i, r))
				if err != nil {
					published <- err
					return
				}
				stored[i] = append(stored[i], seq)
			}
		}
		published <- nil
	}()

	<-kill
	killed := time.Now()
	srvs[victim].Shutdown()
	srvs[victim].WaitForShutdown()
	wstest.CheckFor(t, 20*time.Second, poll, func() error {
		if e.bus.Reconnects() == 0 || !e.bus.Connected() {
			return errors.New("the bus has not reconnected")
		}
		return nil
	})
	close(busBack)
	t.Logf("killed %s (stream leader, the bus's server); the bus reconnected to %s after %v",
		srvs[victim].Name(), e.bus.Conn().ConnectedServerName(), time.Since(killed).Round(time.Millisecond))
	if err := <-published; err != nil {
		t.Fatal(err)
	}

	wstest.CheckFor(t, 20*time.Second, poll, func() error {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		for i, pos := range positions {
			if got := pos.Applied(fmt.Sprint("user.c", i)); !slices.Equal(got, stored[i]) {
				return fmt.Errorf("user c%d applied %d of %d notifications; last %v, want %v",
					i, len(got), len(stored[i]), got[max(len(got)-3, 0):], stored[i][len(stored[i])-3:])
			}
		}
		return nil
	})
	cancel()
	clients.Wait()
	for i, pos := range positions {
		if n := conns[i].Load(); n != 1 {
			t.Errorf("client c%d connected %d times, want once: the NATS node's loss closed its WebSocket", i, n)
		}
		if n := pos.Unrecovered(); n != 0 {
			t.Errorf("client c%d: %d resumes answered recovered:false", i, n)
		}
	}
}
