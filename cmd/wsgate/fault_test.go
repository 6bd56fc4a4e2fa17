package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/internal/wstest"
)

// freeAddr returns a loopback address with a port free right now, for a
// process that must listen on the same address again after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// durableClient is a client that keeps its channel across whatever happens
// to the gateway: it reconnects with jittered backoff, resumes from its
// positions, and resumes again whenever a frame shows a gap, until ctx
// ends.
func durableClient(ctx context.Context, url, ch string, pos *wstest.Positions) {
	ref := 0
	for ctx.Err() == nil {
		c, err := dialWelcome(ctx, ws.DefaultDialer, url, time.Now().Add(2*time.Second))
		if err != nil {
			sleepCtx(ctx, time.Duration(50+rand.IntN(150))*time.Millisecond)
			continue
		}
		ref++
		if err := sendJSON(c, pos.Resume(ch, ref)); err != nil {
			c.Close()
			continue
		}
		// No read deadline: one that expired mid-frame would lose the rest
		// of it. The context's end closes the socket instead.
		stop := context.AfterFunc(ctx, func() { c.Close() })
		for ctx.Err() == nil {
			m, err := c.Read(time.Time{})
			if err != nil {
				break // the gateway went away: reconnect
			}
			again, err := pos.Handle(m)
			if err != nil {
				panic(err) // a broken promise; the test reads it in the log
			}
			for _, ch := range again {
				ref++
				if err = sendJSON(c, pos.Resume(ch, ref)); err != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		stop()
		c.Close()
	}
}

func sendJSON(c *wstest.Client, v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.WriteText(p)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// publishUntilStored publishes a durable notification with a message id,
// retrying while JetStream is away, and returns its sequence: the
// duplicate window makes the retries of one that was stored harmless.
func publishUntilStored(ctx context.Context, p *bus.Publisher, user, id string) (uint64, error) {
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := p.DurableUser(pctx, user, fmt.Appendf(nil, `{"id":%q}`, id), bus.WithMsgID(id))
		cancel()
		if err == nil {
			return st.Sequence, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

// A gateway killed with SIGKILL while durable notifications flow, and
// started again on the same JetStream files: its clients reconnect and
// resume, and each ends up with every notification stored for its user,
// once and in order. The publisher retries what was refused while the
// gateway (and its embedded NATS) was down.
func TestDurableSurvivesKill(t *testing.T) {
	bin := buildBinary(t)
	store, listen, natsAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	start := func() *gatewayProc {
		g := startGateway(t, bin, "--durable", "--nats-store-dir", store, "--embedded-nats-listen", natsAddr, "--listen", listen)
		g.waitLog(t, "durable stream ready")
		return g
	}
	g := start()
	natsURL := "nats://" + natsAddr

	const users, rounds = 10, 60
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	positions := make([]*wstest.Positions, users)
	var clients sync.WaitGroup
	for i := range users {
		positions[i] = wstest.NewPositions()
		clients.Add(1)
		go func() {
			defer clients.Done()
			durableClient(ctx, fmt.Sprintf("ws://%s/ws?user=k%d", listen, i), fmt.Sprintf("user.k%d", i), positions[i])
		}()
	}

	nc, err := bus.Dial(natsURL, "fault-publisher")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p := bus.NewPublisher(nc, "")
	stored := make([][]uint64, users)
	killed := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		for r := range rounds {
			if r == rounds/3 {
				close(killed)
			}
			if err := publishRound(ctx, p, "k", r, stored); err != nil {
				published <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		published <- nil
	}()

	<-killed
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-g.exited
	time.Sleep(300 * time.Millisecond) // publishes fail meanwhile
	start()

	if err := <-published; err != nil {
		t.Fatal(err)
	}
	channels := make([]string, users)
	for i := range channels {
		channels[i] = fmt.Sprintf("user.k%d", i)
	}
	expectApplied(t, positions, channels, stored)
	cancel()
	clients.Wait()
	expectRecovered(t, positions)
}

// publishRound stores round r of durable notifications, one to each user
// <prefix><i> of stored, and appends each acked sequence to stored[i].
func publishRound(ctx context.Context, p *bus.Publisher, prefix string, r int, stored [][]uint64) error {
	for i := range stored {
		seq, err := publishUntilStored(ctx, p, fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("%s%d-%d", prefix, i, r))
		if err != nil {
			return err
		}
		stored[i] = append(stored[i], seq)
	}
	return nil
}

// expectApplied waits until client i has applied exactly want[i] on
// channels[i]: every acked notification, once, in order.
func expectApplied(t *testing.T, positions []*wstest.Positions, channels []string, want [][]uint64) {
	t.Helper()
	wstest.CheckFor(t, 30*time.Second, pollEvery, func() error {
		for i, pos := range positions {
			if got := pos.Applied(channels[i]); !slices.Equal(got, want[i]) {
				return fmt.Errorf("%s applied %d of %d notifications; last %v, want %v", channels[i], len(got), len(want[i]), tail(got), tail(want[i]))
			}
		}
		return nil
	})
}

// expectRecovered checks that no client's resume was answered
// recovered:false.
func expectRecovered(t *testing.T, positions []*wstest.Positions) {
	t.Helper()
	for i, pos := range positions {
		if n := pos.Unrecovered(); n != 0 {
			t.Errorf("client %d: %d resumes answered recovered:false", i, n)
		}
	}
}

func tail(s []uint64) []uint64 { return s[max(len(s)-3, 0):] }
