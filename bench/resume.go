package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/payload"
	"github.com/wsgate/wsgate/bus"
)

// Metrics the resume scenario reads from --server-metrics.
const (
	historyRequestsMetric = "wsgate_history_requests_total"
	resumesMetric         = "wsgate_resumes_total"
	replayedMetric        = "wsgate_replayed_total"
)

// resumeScenario is a reconnect storm with durable notifications missed:
//
//  1. prime: one durable notification to every user, so that every
//     connection has a position (the seq of its user channel);
//  2. cut: every worker closes all its connections at once, from the
//     client side, without a close frame; or, with --cut-cmd, the command
//     makes the gateway close them (a restart) and the workers wait until
//     it has;
//  3. publish: --missed durable notifications to every user, --publishers
//     at once, each waiting for its ack; the acked sequences are kept;
//  4. resume: every connection reconnects at --rate and sends resume with
//     its seq and epoch; the run waits until each has applied every acked
//     sequence of its user, or --timeout.
//
// The gateway's CPU and history requests are measured over step 4.
type resumeScenario struct {
	publisher
	runID string // makes message ids unique across runs on one stream
}

// resumeWindow is what the resume scenario measured, for the result.
type resumeWindow struct {
	cut         int64
	published   int64
	publishS    float64
	reconnected int64
	before      map[string]float64 // the server's series before the resumes
	after       map[string]float64
}

func (s *resumeScenario) start(r *runner, spec *engine.Spec) error {
	s.runID = strconv.FormatInt(time.Now().UnixNano(), 36)
	return s.publisher.start(r, spec)
}

func (s *resumeScenario) run(ctx context.Context, r *runner) (window, error) {
	cfg := &r.cfg
	x := &engine.Expectation{Users: make([]uint32, cfg.Conns)}

	if !cfg.NoResume {
		r.phase.Store("prime")
		if _, err := s.publishDurable(ctx, 1, x, nil); err != nil {
			return window{}, err
		}
		if err := r.drain(ctx, x); err != nil {
			return window{}, err
		}
	}

	r.phase.Store("cut")
	rw := &resumeWindow{}
	cut := workerCmd{Cmd: "cut"}
	if cfg.CutCmd != "" {
		cut.CutAt = time.Now().UnixNano()
		cmd := exec.CommandContext(ctx, "sh", "-c", cfg.CutCmd)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return window{}, fmt.Errorf("--cut-cmd: %w", err)
		}
	}
	replies, err := r.all(ctx, cut, "cut")
	if err != nil {
		return window{}, err
	}
	for _, m := range replies {
		rw.cut += m.N
	}

	r.phase.Store("publish")
	start := time.Now()
	x.Durable = make([][]uint64, cfg.Conns)
	if rw.published, err = s.publishDurable(ctx, cfg.Missed, x, x.Durable); err != nil {
		return window{}, err
	}
	rw.publishS = time.Since(start).Seconds()

	r.phase.Store("resume")
	if rw.before, err = r.probe.series(ctx, historyRequestsMetric, resumesMetric, replayedMetric); err != nil {
		r.warn("server metrics before the resumes: %v", err)
	}
	w := r.measure(ctx)
	w.published = rw.published
	if !cfg.NoResume {
		w.published += int64(cfg.Conns) // the positions
	}
	w.expect = &engine.Expectation{Users: x.Users} // finish needs no sequences
	w.resume = rw
	if replies, err = r.all(ctx, workerCmd{Cmd: "resume", Expect: x}, "resumed"); err != nil {
		return w, err
	}
	for _, m := range replies {
		rw.reconnected += m.N
	}
	deadline := time.Now().Add(cfg.Timeout.D())
	for r.complete() < rw.reconnected {
		if time.Now().After(deadline) {
			r.warn("resumes incomplete after --timeout %s: %d of %d connections have every notification", cfg.Timeout, r.complete(), rw.reconnected)
			break
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return w, err
		}
	}
	// The counters grow before each request is made: once every
	// connection is complete, they are final. With --resume-in-url a
	// connection is complete at its welcome when nothing was missed,
	// before the gateway has looked its position up: wait for the
	// gateway to have answered (or not) every resume.
	for {
		if rw.after, err = r.probe.series(ctx, historyRequestsMetric, resumesMetric, replayedMetric); err != nil {
			r.warn("server metrics after the resumes: %v", err)
			break
		}
		var done float64
		for _, n := range byLabel(rw.before, rw.after, resumesMetric) {
			done += n
		}
		if !cfg.ResumeInURL || int64(done) >= rw.reconnected || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return w, err
		}
	}
	return w, nil
}

// complete is how many connections have every notification, as of the
// workers' last progress reports.
func (r *runner) complete() int64 {
	var n int64
	for _, w := range r.workers {
		n += w.progress().Complete
	}
	return n
}

// publishDurable publishes rounds durable notifications to every user,
// --publishers at once, each waiting for its ack; one goroutine owns each
// user, so a user's notifications are stored in the order of their
// payload seqs. It counts them in x.Users and, when acked is not nil,
// appends each acked stream sequence to acked[user]. It returns how many
// were stored.
func (s *resumeScenario) publishDurable(ctx context.Context, rounds int, x *engine.Expectation, acked [][]uint64) (int64, error) {
	cfg := s.cfg
	n := cfg.Conns
	pubs := min(cfg.Publishers, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // protects total and first
		total int64
		first error
	)
	for j := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			var stored int64
			defer func() {
				mu.Lock()
				total += stored
				mu.Unlock()
			}()
			for range rounds {
				for u := j; u < n; u += pubs {
					seq := x.Users[u] + 1
					if t := cfg.Template(); t != nil {
						buf = payload.AppendTemplate(buf[:0], seq, time.Now().UnixNano(), t)
					} else {
						buf = payload.Append(buf[:0], seq, time.Now().UnixNano(), cfg.PayloadSize)
					}
					user := cfg.UserPrefix + strconv.Itoa(u)
					st, err := s.publishOne(ctx, user, buf, "wsbench-"+s.runID+"-"+user+"-"+strconv.Itoa(int(seq)))
					if err != nil {
						mu.Lock()
						if first == nil {
							first = fmt.Errorf("durable publish to user %s: %w", user, err)
						}
						mu.Unlock()
						cancel()
						return
					}
					x.Users[u] = seq
					stored++
					if acked != nil {
						acked[u] = append(acked[u], st.Sequence)
					}
				}
			}
		}()
	}
	wg.Wait()
	return total, first
}

// publishOne publishes one durable notification, retrying with the same
// message id (the stream stores it once) when no ack came in time.
func (s *resumeScenario) publishOne(ctx context.Context, user string, p []byte, id string) (bus.Stored, error) {
	var err error
	for range 3 {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var st bus.Stored
		st, err = s.pub.DurableUser(pctx, user, p, bus.WithMsgID(id))
		cancel()
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return bus.Stored{}, err
}
