package bench

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/report"
	"github.com/wsgate/wsgate/bus"
)

// upstreamScenario has the clients send request ops at --msg-rate in
// total for --hold, round-robin over the open connections, and answers
// them itself on NATS as a service would: a subscription to
// <prefix>.up.<channel> that replies with the request's data, which
// carries the send time back to the client.
type upstreamScenario struct {
	nc       *nats.Conn
	sub      *nats.Subscription
	answered atomic.Int64
}

// upstreamWindow is what the upstream scenario measured before the
// finish.
type upstreamWindow struct {
	answered int64     // -1 with --no-responder
	end      time.Time // the replies settled; the servers are sampled right after
}

func (u *upstreamScenario) start(r *runner, _ *engine.Spec) error {
	if r.cfg.NoResponder {
		return nil
	}
	nc, err := bus.Dial(r.cfg.NATS, "wsbench-responder")
	if err != nil {
		return err
	}
	u.nc = nc
	u.sub, err = nc.Subscribe(r.cfg.SubjectPrefix+".up."+r.cfg.UpstreamChannel, func(m *nats.Msg) {
		if m.Respond(m.Data) == nil {
			u.answered.Add(1)
		}
	})
	if err != nil {
		return err
	}
	// Unlimited pending: a responder that falls behind queues, it does
	// not drop (a drop would show as a timeout, not as the responder).
	if err := u.sub.SetPendingLimits(-1, -1); err != nil {
		return err
	}
	return nc.Flush()
}

func (u *upstreamScenario) stop() {
	if u.nc != nil {
		u.nc.Close()
	}
}

func (u *upstreamScenario) run(ctx context.Context, r *runner) (window, error) {
	r.phase.Store("upstream")
	w := r.measure(ctx)
	msgs, err := r.all(ctx, workerCmd{Cmd: "upstream"}, "upstreamed")
	if err != nil {
		return w, err
	}
	for _, m := range msgs {
		w.published += m.N
	}
	r.phase.Store("drain")
	if err := r.settleDeliveries(ctx); err != nil {
		return w, err
	}
	w.upstream = &upstreamWindow{answered: -1, end: time.Now()}
	if !r.cfg.NoResponder {
		w.upstream.answered = u.answered.Load()
	}
	return w, nil
}

// upstreamFigures sums the workers' upstream totals; res has the merged
// deliveries (the replies) and the server's CPU over the window, which
// ended with wsbench's CPU at clientCPU.
func (r *runner) upstreamFigures(msgs []workerMsg, w window, res *Result, clientCPU float64) *report.Upstream {
	u := &report.Upstream{Channel: r.cfg.UpstreamChannel, Connections: res.Conns.Established, RatePerS: r.cfg.MsgRate,
		Errors: map[string]int64{}, Answered: w.upstream.answered, Replies: res.Delivery.Delivered, Latency: res.Delivery.Latency,
		ServerCPUPer1000: -1, NATSCPUPer1000: -1, ClientCPUPer1000: -1}
	var first, last int64
	for _, m := range msgs {
		t := m.Result
		if t == nil || t.Upstream == nil {
			continue
		}
		u.Sent += t.Upstream.Sent
		u.WriteFailed += t.Upstream.WriteFailed
		for k, v := range t.Upstream.Errors {
			u.Errors[k] += v
		}
		if f := t.Upstream.FirstSendNS; f != 0 && (first == 0 || f < first) {
			first = f
		}
		last = max(last, t.Upstream.LastSendNS)
	}
	if last > first && first > 0 {
		u.SendS = float64(last-first) / 1e9
		u.SentPerS = float64(u.Sent) / u.SendS
	}
	if lastReply := res.Delivery.WindowS; lastReply > 0 && first > 0 {
		// Delivery.WindowS runs from the window's start, just before the
		// first request: replies over first request → last reply.
		span := lastReply - float64(first-w.start.UnixNano())/1e9
		if span > 0 {
			u.RepliesPerS = float64(u.Replies) / span
		}
	}
	s := res.Server
	win := w.upstream.end.Sub(w.start).Seconds()
	u.WindowS = win
	per := func(cpu float64) (float64, float64) {
		if cpu < 0 || u.Sent == 0 || win <= 0 {
			return -1, 0
		}
		return cpu / float64(u.Sent) * 1000 * 1000, cpu / win
	}
	u.ServerCPUPer1000, u.ServerCPUShare = per(s.CPUSeconds)
	u.NATSCPUPer1000, u.NATSCPUShare = per(s.NATSCPUSeconds)
	u.ClientCPUPer1000, u.ClientCPUShare = per(clientCPU - w.clientCPU)
	return u
}
