package bench

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/report"
)

// scaleScenario is the capacity run: it holds the connections for --hold,
// counts them on both sides, then unicasts one notification to each of
// --sample distinct random users and waits until each has it, then
// publishes --messages broadcasts and waits until every open connection
// has them. The finish checks every connection's two channels (its user's
// and the broadcast) for losses and duplicates.
type scaleScenario struct {
	publisher
}

func (s *scaleScenario) run(ctx context.Context, r *runner) (window, error) {
	r.phase.Store("hold")
	holdStart := time.Now()
	if err := sleep(ctx, r.cfg.Hold.D()); err != nil {
		return window{}, err
	}
	sc := &report.Scale{HoldSeconds: time.Since(holdStart).Seconds(), HeldConns: r.open(), ServerConns: -1}
	if smp, err := r.probe.sample(ctx); err == nil {
		sc.ServerConns = smp.Conns
	}

	w := r.measure(ctx)
	w.scale = sc
	x := &engine.Expectation{}
	phase := func(name string, p *report.ScalePhase, to channels) error {
		r.phase.Store(name)
		before, start := r.delivered(), time.Now()
		n, err := s.publishInto(ctx, x, to)
		p.Published = n
		if err != nil {
			return err
		}
		want, err := r.drainCount(ctx, x)
		// want counts every delivery due since the start of the window.
		p.Expected, p.Delivered = want-before, r.delivered()-before
		p.Seconds = time.Since(start).Seconds()
		return err
	}
	if err := phase("unicast", &sc.Unicast, toSample); err != nil {
		return w, err
	}
	if err := phase("broadcast", &sc.Broadcast, toBroadcast); err != nil {
		return w, err
	}
	w.expect, w.published = x, sc.Unicast.Published+sc.Broadcast.Published
	return w, nil
}

// toSample publishes one notification to each of --sample distinct users
// drawn at random (--seed).
func toSample(p *publisher, x *engine.Expectation) (int, func(int) error) {
	cfg := p.cfg
	if x.Users == nil {
		x.Users = make([]uint32, cfg.Conns)
	}
	users := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7363616c65)).Perm(cfg.Conns)[:cfg.Sample]
	return len(users), func(i int) error {
		u := users[i]
		x.Users[u]++
		return p.send(x.Users[u], func(b []byte) error {
			return p.pub.User(cfg.UserPrefix+strconv.Itoa(u), b)
		})
	}
}
