package bench

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/payload"
	"github.com/wsgate/wsgate/bench/internal/report"
	"github.com/wsgate/wsgate/bus"
)

// A scenario is what a run does between the ramp and the finish, which
// every scenario shares (see runner.run).
type scenario interface {
	// start prepares what the scenario needs before the workers start (a
	// NATS publisher, floor servers) and may add to the workers' spec.
	// stop releases it; the runner calls it even when start failed.
	start(r *runner, spec *engine.Spec) error
	stop()
	// run is the scenario proper, after the ramp and the settle.
	run(ctx context.Context, r *runner) (window, error)
}

// window is what a scenario measured between the ramp and the finish.
type window struct {
	expect    *engine.Expectation // what each channel was sent, for the finish; nil: count gaps (churn) or nothing sent (connect)
	published int64
	start     time.Time    // the first publish; zero when the scenario measures no window (connect)
	server    serverSample // the servers at start, for their CPU and bytes written over the window
	clientCPU float64      // wsbench's CPU seconds at start
	natsCPU   float64      // the NATS server's CPU seconds at start (--nats-pid), -1 without
	natsEnd   float64      // and at the end
	floor     *floorReport // floor: what the floor servers measured
	resume    *resumeWindow
	control   *controlWindow
	upstream  *upstreamWindow
	scale     *report.Scale
}

func newScenario(name string) scenario {
	switch name {
	case ScenarioBroadcast:
		return &deliveryScenario{to: toBroadcast}
	case ScenarioTopic:
		return &deliveryScenario{to: toTopics}
	case ScenarioUnicast:
		return &deliveryScenario{to: toUsers}
	case ScenarioChurn:
		return &churnScenario{}
	case ScenarioFloor:
		return &floorScenario{}
	case ScenarioResume:
		return &resumeScenario{}
	case ScenarioControl:
		return &controlScenario{}
	case ScenarioUpstream:
		return &upstreamScenario{}
	case ScenarioScale:
		return &scaleScenario{}
	}
	return connectScenario{}
}

// measure opens the measured window of a publishing scenario: it samples
// the servers (keeping the sample after the settle when that fails) and
// wsbench's CPU, and starts the clock.
func (r *runner) measure(ctx context.Context) window {
	w := window{server: r.after}
	if s, err := r.probe.sample(ctx); err == nil {
		w.server = s
	}
	w.clientCPU = r.clientCPU()
	w.natsCPU = r.natsCPU()
	w.start = time.Now()
	return w
}

// natsCPU is the CPU seconds of the --nats-pid process, -1 without one.
func (r *runner) natsCPU() float64 {
	if r.cfg.NATSPID == 0 {
		return -1
	}
	_, cpu, err := procUsage(r.cfg.NATSPID)
	if err != nil {
		return -1
	}
	return cpu
}

// connectScenario holds the connections for --hold; the ramp is the
// measurement.
type connectScenario struct{}

func (connectScenario) start(*runner, *engine.Spec) error { return nil }
func (connectScenario) stop()                             {}

func (connectScenario) run(ctx context.Context, r *runner) (window, error) {
	r.phase.Store("hold")
	return window{}, sleep(ctx, r.cfg.Hold.D())
}

// deliveryScenario is broadcast, topic and unicast: publish where to says,
// then wait until every open connection has what its channel was sent.
type deliveryScenario struct {
	publisher
	to channels
}

func (d *deliveryScenario) run(ctx context.Context, r *runner) (window, error) {
	r.phase.Store("publish")
	w := r.measure(ctx)
	var err error
	if w.expect, w.published, err = d.publish(ctx, d.to); err != nil {
		return w, err
	}
	return w, r.drain(ctx, w.expect)
}

// churnScenario closes and reopens --churn-share of the connections every
// second for --hold while it broadcasts, then waits until deliveries stop.
type churnScenario struct {
	publisher
}

func (c *churnScenario) run(ctx context.Context, r *runner) (window, error) {
	r.phase.Store("churn")
	w := r.measure(ctx)
	var pubErr error
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		_, w.published, pubErr = c.publish(ctx, c.broadcasts)
	}()
	_, err := r.all(ctx, workerCmd{Cmd: "churn", Churn: r.cfg.Hold}, "churned")
	pubWG.Wait()
	if err != nil {
		return w, err
	}
	if pubErr != nil {
		return w, pubErr
	}
	r.phase.Store("drain")
	return w, r.settleDeliveries(ctx)
}

// broadcasts are the churn scenario's messages: broadcasts at --msg-rate
// for as long as it churns.
func (c *churnScenario) broadcasts(p *publisher, x *engine.Expectation) (int, func(int) error) {
	_, send := toBroadcast(p, x)
	return max(1, int(math.Ceil(p.cfg.Hold.D().Seconds()*p.cfg.MsgRate))), send
}

// publisher publishes a scenario's payloads through NATS with bus.Dial and
// bus.Publisher, as a storage service would. It is used by one goroutine.
type publisher struct {
	cfg *Config
	nc  *nats.Conn
	pub *bus.Publisher
	buf []byte // payload scratch
}

func (p *publisher) start(r *runner, _ *engine.Spec) error {
	nc, err := bus.Dial(r.cfg.NATS, "wsbench")
	if err != nil {
		return err
	}
	p.cfg, p.nc, p.pub = &r.cfg, nc, bus.NewPublisher(nc, r.cfg.SubjectPrefix)
	return nil
}

func (p *publisher) stop() {
	if p.nc != nil {
		p.nc.Close()
	}
}

// channels says where a scenario's messages go: it returns how many
// messages to publish in all, and the function that publishes message i
// and counts it in x.
type channels func(p *publisher, x *engine.Expectation) (n int, send func(i int) error)

// toBroadcast publishes --messages to <prefix>.broadcast. With --durable
// the channels publish through JetStream and wait for each ack (within
// the bus's 5 seconds): the payload's ts is taken before the publish, so
// the latency includes storing it and the stream's republish.
func toBroadcast(p *publisher, x *engine.Expectation) (int, func(int) error) {
	return p.cfg.Messages, func(int) error {
		x.Broadcast++
		if p.cfg.Durable {
			return p.send(x.Broadcast, func(b []byte) error {
				_, err := p.pub.DurableBroadcast(context.Background(), b)
				return err
			})
		}
		return p.send(x.Broadcast, p.pub.Broadcast)
	}
}

// toTopics publishes --messages to each topic, round-robin over the
// topics.
func toTopics(p *publisher, x *engine.Expectation) (int, func(int) error) {
	cfg := p.cfg
	x.Topics = make([]uint32, cfg.Topics)
	return cfg.Messages * cfg.Topics, func(i int) error {
		t := i % cfg.Topics
		x.Topics[t]++
		return p.send(x.Topics[t], func(b []byte) error {
			if p.cfg.Durable {
				_, err := p.pub.DurableTopic(context.Background(), "t"+strconv.Itoa(t), b)
				return err
			}
			return p.pub.Topic("t"+strconv.Itoa(t), b)
		})
	}
}

// toUsers publishes --messages in all, each to a random user (--seed).
func toUsers(p *publisher, x *engine.Expectation) (int, func(int) error) {
	cfg := p.cfg
	x.Users = make([]uint32, cfg.Conns)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x756e69))
	return cfg.Messages, func(int) error {
		u := rng.IntN(cfg.Conns)
		x.Users[u]++
		return p.send(x.Users[u], func(b []byte) error {
			if cfg.Durable {
				_, err := p.pub.DurableUser(context.Background(), cfg.UserPrefix+strconv.Itoa(u), b)
				return err
			}
			return p.pub.User(cfg.UserPrefix+strconv.Itoa(u), b)
		})
	}
}

// publish sends the messages of to at --msg-rate and returns what each
// channel was sent and how many messages went out.
func (p *publisher) publish(ctx context.Context, to channels) (*engine.Expectation, int64, error) {
	x := &engine.Expectation{}
	n, err := p.publishInto(ctx, x, to)
	if err != nil {
		return nil, n, err
	}
	return x, n, nil
}

// publishInto is publish counting into x, which may hold what earlier
// phases sent.
func (p *publisher) publishInto(ctx context.Context, x *engine.Expectation, to channels) (int64, error) {
	n, send := to(p, x)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / p.cfg.MsgRate * float64(time.Second)))
		if err := sleep(ctx, time.Until(due)); err != nil {
			return int64(i), err
		}
		if err := send(i); err != nil {
			return int64(i), err
		}
	}
	if err := p.pub.Flush(0); err != nil {
		return int64(n), err
	}
	return int64(n), nil
}

// send publishes one payload with seq, stamped now.
func (p *publisher) send(seq uint32, publish func([]byte) error) error {
	if t := p.cfg.Template(); t != nil {
		p.buf = payload.AppendTemplate(p.buf[:0], seq, time.Now().UnixNano(), t)
	} else {
		p.buf = payload.Append(p.buf[:0], seq, time.Now().UnixNano(), p.cfg.PayloadSize)
	}
	return publish(p.buf)
}
