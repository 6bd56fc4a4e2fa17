package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/hist"
	"github.com/wsgate/wsgate/bench/internal/report"
	"github.com/wsgate/wsgate/bench/internal/token"
	"github.com/wsgate/wsgate/bus"
	"github.com/wsgate/wsgate/control"
)

// controlScenario asks the fleet through NATS, as a service would with
// control.Client on a NATS connection of its own: --queries presence
// queries of random users, then --disconnects disconnects of distinct
// random users, one request at a time. Each request waits for --gateways
// answers (Expect) or the client's 2 s timeout, never for a stall.
type controlScenario struct {
	nc *nats.Conn
	cl *control.Client
}

// controlWindow is what the control scenario measured before the finish;
// the close frames' arrival comes with the workers' results.
type controlWindow struct {
	fig      report.Control
	presence time.Duration // the queries, one after the other
	sentAt   map[int]int64 // disconnected user's index → unix ns of its Disconnect call
	pres     *hdrhistogram.Histogram
	disc     *hdrhistogram.Histogram
}

func (c *controlScenario) start(r *runner, _ *engine.Spec) error {
	nc, err := bus.Dial(r.cfg.NATS, "wsbench-control")
	if err != nil {
		return err
	}
	c.nc = nc
	c.cl = control.NewClient(nc, r.cfg.SubjectPrefix)
	c.cl.Expect, c.cl.Stall = r.cfg.Gateways, -1
	return nil
}

func (c *controlScenario) stop() {
	if c.nc != nil {
		c.nc.Close()
	}
}

func (c *controlScenario) run(ctx context.Context, r *runner) (window, error) {
	cfg := &r.cfg
	w := r.measure(ctx)
	cw := &controlWindow{pres: hist.New(), disc: hist.New(), sentAt: map[int]int64{}}
	cw.fig = report.Control{Gateways: cfg.Gateways, Reason: cfg.DisconnectReason}
	w.control = cw
	fig := &cw.fig
	fail := func(what string, err error) {
		if len(fig.Errors) < 10 {
			fig.Errors = append(fig.Errors, what+": "+err.Error())
		}
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x63746c))

	r.phase.Store("presence")
	start := time.Now()
	for range cfg.Queries {
		user := cfg.UserPrefix + strconv.Itoa(rng.IntN(cfg.Conns))
		t0 := time.Now()
		p, err := c.cl.Presence(ctx, control.PresenceQuery{User: user})
		hist.Record(cw.pres, time.Since(t0).Microseconds())
		fig.Queries++
		if err != nil {
			if ctx.Err() != nil {
				return w, ctx.Err()
			}
			fig.QueryErrors++
			fail("presence "+user, err)
			continue
		}
		if len(p.Gateways) == cfg.Gateways {
			fig.QueriesComplete++
		}
		if p.Online {
			fig.QueriesOnline++
		}
	}
	cw.presence = time.Since(start)

	r.phase.Store("disconnect")
	open0 := r.open()
	for _, u := range rng.Perm(cfg.Conns)[:cfg.Disconnects] {
		user := cfg.UserPrefix + strconv.Itoa(u)
		t0 := time.Now()
		res, err := c.cl.Disconnect(ctx, control.Disconnect{User: user, Reason: cfg.DisconnectReason})
		hist.Record(cw.disc, time.Since(t0).Microseconds())
		cw.sentAt[u] = t0.UnixNano()
		fig.Disconnects++
		if err != nil {
			if ctx.Err() != nil {
				return w, ctx.Err()
			}
			fig.DisconnectErrors++
			fail("disconnect "+user, err)
		}
		if len(res.Gateways) == cfg.Gateways {
			fig.DisconnectsComplete++
		}
		fig.SocketsClosed += int64(res.Sockets)
	}
	// Wait until the clients have read the close frames of the sockets the
	// gateways closed (the workers' progress, at most 250 ms old).
	deadline := time.Now().Add(cfg.Timeout.D())
	for open0-r.open() < fig.SocketsClosed {
		if time.Now().After(deadline) {
			r.warn("control: %d of %d closed sockets still open after --timeout %s", fig.SocketsClosed-(open0-r.open()), fig.SocketsClosed, cfg.Timeout)
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return w, err
		}
	}
	return w, nil
}

// open sums the workers' open connections.
func (r *runner) open() int64 {
	var n int64
	for _, w := range r.workers {
		n += w.progress().Open
	}
	return n
}

// controlFigures completes the control window with the close frames the
// workers read: each disconnected user's call → its close frame.
func (r *runner) controlFigures(msgs []workerMsg, cw *controlWindow, conns report.Connections) *report.Control {
	fig := cw.fig
	if cw.presence > 0 && fig.Queries > 0 {
		fig.QueriesPerS = float64(fig.Queries) / cw.presence.Seconds()
	}
	fig.PresenceLatency = report.PercentilesOf(cw.pres)
	fig.DisconnectLatency = report.PercentilesOf(cw.disc)
	closes := hist.New()
	for _, m := range msgs {
		if m.Result == nil {
			continue
		}
		for g, at := range m.Result.ServerCloses {
			sent, ok := cw.sentAt[g]
			if !ok {
				continue // closed by the server for another reason
			}
			hist.Record(closes, (at-sent)/1000)
		}
	}
	fig.CloseLatency = report.PercentilesOf(closes)
	fig.CloseFrames = closes.TotalCount()
	fig.CloseCodes = conns.DroppedByReason
	if fig.CloseFrames < fig.SocketsClosed {
		r.warn("control: %d close frames read for %d sockets the gateways closed", fig.CloseFrames, fig.SocketsClosed)
	}
	return &fig
}

// revokedPrefix names the users --revocations revokes: rv0, rv1, …; they
// never connect in a run (the users are --user-prefix, default u).
const revokedPrefix = "rv"

// revokers is how many revocations are stored at once.
const revokers = 32

// revoke stores --revocations revocations, each of a user not in the run
// until an hour from now, with control.Client.Revoke (KV compare-and-set,
// revokers at once), then waits until every --url refuses the last one:
// the gateways apply the bucket's entries in order, so they then hold all
// of them.
func (r *runner) revoke(ctx context.Context) error {
	n := r.cfg.Revocations
	if n == 0 {
		return nil
	}
	r.phase.Store("revoke")
	nc, err := bus.Dial(r.cfg.NATS, "wsbench-revoke")
	if err != nil {
		return err
	}
	defer nc.Close()
	cl := control.NewClient(nc, r.cfg.SubjectPrefix)
	until := time.Now().Add(time.Hour)
	start := time.Now()
	var next atomic.Int64
	errs := make(chan error, revokers)
	var wg sync.WaitGroup
	for range revokers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := cl.Revoke(ctx, control.Revocation{User: revokedPrefix + strconv.FormatInt(i, 10), Until: until}); err != nil {
					errs <- fmt.Errorf("revocation %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	stored := time.Now()
	last := revokedPrefix + strconv.Itoa(n-1)
	deadline := stored.Add(time.Minute)
	for _, u := range r.cfg.URLs {
		for {
			status, err := r.upgradeStatus(ctx, u, last)
			if err == nil && status == 401 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("--revocations: %s still accepts %s a minute after the revocations were stored (status %d, %v)", u, last, status, err)
			}
			if err := sleep(ctx, 20*time.Millisecond); err != nil {
				return err
			}
		}
	}
	r.revoked = &report.Revocations{Stored: n, StoreS: stored.Sub(start).Seconds(), VisibleS: time.Since(stored).Seconds()}
	return nil
}

// upgradeStatus tries to upgrade at target as user and returns the HTTP
// status: 101 (the connection is closed at once) or the refusal's.
func (r *runner) upgradeStatus(ctx context.Context, target, user string) (int, error) {
	u, err := url.Parse(target)
	if err != nil {
		return 0, err
	}
	q := u.Query()
	if r.cfg.Auth == "jwt" {
		s, err := token.New([]byte(r.cfg.JWTSecret), r.cfg.JWTKey, r.cfg.JWTKid)
		if err != nil {
			return 0, err
		}
		tok, err := s.Sign(user, time.Now().Add(time.Hour))
		if err != nil {
			return 0, err
		}
		q.Set("token", tok)
	} else {
		q.Set("user", user)
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dialer{}.Dial(ctx, u.String())
	if err == nil {
		conn.Close()
		return 101, nil
	}
	var se ws.StatusError
	if errors.As(err, &se) {
		return int(se), nil
	}
	return 0, err
}
