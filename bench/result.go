package bench

import (
	"fmt"
	"time"

	"github.com/wsgate/wsgate/bench/internal/config"
	"github.com/wsgate/wsgate/bench/internal/engine"
	"github.com/wsgate/wsgate/bench/internal/hist"
	"github.com/wsgate/wsgate/bench/internal/report"
)

// Result is everything one run measured (see package report: it is
// written with --json and read by compare).
type Result = report.Result

// result puts the run's Result together: the workers' results merged, the
// servers' figures over the ramp and over the window w, which ended with
// the sample end, and wsbench's own, whose CPU was clientCPU at the end.
func (r *runner) result(msgs []workerMsg, w window, end serverSample, clientCPU float64) *Result {
	cfg := &r.cfg
	res := &Result{
		Label:     cfg.Label,
		Scenario:  cfg.Scenario,
		StartedAt: r.start.UTC(),
		Config:    *cfg,
		Machine:   machine(),
	}
	r.merge(res, msgs, w.start)
	res.Delivery.Published = w.published
	res.Server = r.serverFigures(res, w, end)
	if w.resume != nil {
		res.Resume = r.resumeFigures(msgs, w.resume, res.Server)
	}
	res.Scale = w.scale
	res.Revocations = r.revoked
	if w.control != nil {
		res.Control = r.controlFigures(msgs, w.control, res.Conns)
	}
	if w.floor != nil {
		f := &report.Floor{Writes: w.floor.Writes, ShortWrites: w.floor.ShortWrites, CPUSeconds: w.floor.CPUSeconds,
			FrameBytes: w.floor.FrameBytes, ServerRSSPerConnByte: res.Server.RSSPerConn}
		if f.Writes > 0 {
			f.CPUPerMillionWrites = f.CPUSeconds / float64(f.Writes) * 1e6
		}
		res.Floor = f
	}
	delivered := float64(res.Delivery.Delivered)
	cl := &res.Client
	cl.MeasuredCPUSeconds, cl.CPUPerMillionDeliv = -1, -1
	if !w.start.IsZero() {
		cl.MeasuredCPUSeconds = clientCPU - w.clientCPU
		if delivered > 0 {
			cl.CPUPerMillionDeliv = cl.MeasuredCPUSeconds / delivered * 1e6
		}
	}
	if w.upstream != nil {
		res.Upstream = r.upstreamFigures(msgs, w, res, clientCPU)
	}
	res.DurationS = time.Since(r.start).Seconds()
	r.mu.Lock()
	res.Timeline = r.timeline
	r.checks(res)
	res.Warnings = r.warnings
	r.mu.Unlock()
	return res
}

// serverFigures are the servers' figures: memory and goroutines per
// connection and CPU per connect over the ramp, and CPU and bytes written
// per delivered message over the window w (the floor servers' own CPU for
// floor, which has no ramp CPU). res holds the merged workers' results.
func (r *runner) serverFigures(res *Result, w window, end serverSample) report.Server {
	before, after := r.before, r.after
	s := report.Server{RSSBefore: before.RSS, RSSAfter: after.RSS, RSSPerConn: -1,
		GoroutinesBefore: before.Goroutines, GoroutinesAfter: after.Goroutines, GoroutinesPerConn: -1,
		CPUSeconds: -1, CPUPerMillionDeliv: -1, RampCPUSeconds: -1, CPUPerConnectUs: -1,
		WrittenBytes: -1, WrittenPerDeliv: -1}
	if before.CPU >= 0 && after.CPU >= 0 && w.floor == nil {
		s.RampCPUSeconds = after.CPU - before.CPU
		if n := float64(res.Conns.Established); n > 0 {
			s.CPUPerConnectUs = s.RampCPUSeconds / n * 1e6
		}
	}
	if n := float64(res.Conns.Established); n > 0 {
		if before.RSS >= 0 {
			s.RSSPerConn = float64(after.RSS-before.RSS) / n
		}
		if before.Goroutines >= 0 {
			s.GoroutinesPerConn = float64(after.Goroutines-before.Goroutines) / n
		}
	}
	switch {
	case w.floor != nil:
		s.CPUSeconds = w.floor.CPUSeconds
	case !w.start.IsZero() && end.CPU >= 0:
		s.CPUSeconds = end.CPU - w.server.CPU
	}
	delivered := float64(res.Delivery.Delivered)
	if s.CPUSeconds >= 0 && delivered > 0 {
		s.CPUPerMillionDeliv = s.CPUSeconds / delivered * 1e6
	}
	s.NATSCPUSeconds = -1
	if !w.start.IsZero() && w.natsCPU >= 0 && w.natsEnd >= 0 {
		s.NATSCPUSeconds = w.natsEnd - w.natsCPU
	}
	if w.floor == nil && !w.start.IsZero() && w.server.Written >= 0 && end.Written >= 0 {
		s.WrittenBytes = end.Written - w.server.Written
		if delivered > 0 {
			s.WrittenPerDeliv = float64(s.WrittenBytes) / delivered
		}
	}
	return s
}

// merge folds the workers' results into res.
func (r *runner) merge(res *Result, msgs []workerMsg, pubStart time.Time) {
	cfg := &r.cfg
	hs, dl, rc := hist.New(), hist.New(), hist.New()
	c := report.Connections{Target: cfg.Conns, FailedByReason: map[string]int64{}, DroppedByReason: map[string]int64{}}
	var (
		seq                     engine.SeqTotals
		delivered, misrouted    int64
		frameBytes, compressed  int64
		reconnects, reconnFail  int64
		firstDial, lastWelcome  int64
		lastDelivery, heapBytes int64
		cl                      = report.Client{Workers: cfg.Workers, ConnStructBytes: engine.ConnStructBytes}
	)
	for _, m := range msgs {
		w := m.Result
		if w == nil {
			continue
		}
		for name, err := range map[string]error{
			"handshake": hist.MergeEncoded(hs, w.Handshakes),
			"delivery":  hist.MergeEncoded(dl, w.Deliveries),
			"reconnect": hist.MergeEncoded(rc, w.Reconnect),
		} {
			if err != nil {
				r.warn("a worker's %s histogram could not be decoded: %v", name, err)
			}
		}
		c.Established += w.Established
		c.DeflateAccepted += w.DeflateAccepted
		c.Failed += w.Failed
		for k, v := range w.Failures {
			c.FailedByReason[k] += v
		}
		for k, v := range w.Dropped {
			c.DroppedByReason[k] += v
		}
		for k, v := range w.Retried {
			if c.RetriedByReason == nil {
				c.RetriedByReason = map[string]int64{}
			}
			c.RetriedByReason[k] += v
		}
		seq.Merge(w.Seq)
		delivered += w.Delivered
		frameBytes += w.FrameBytes
		compressed += w.Compressed
		misrouted += w.Misrouted
		reconnects += w.Reconnects
		reconnFail += w.ReconnectFailed
		if w.FirstDialNS != 0 && (firstDial == 0 || w.FirstDialNS < firstDial) {
			firstDial = w.FirstDialNS
		}
		lastWelcome = max(lastWelcome, w.LastWelcomeNS)
		lastDelivery = max(lastDelivery, w.LastDeliveryNS)
		heapBytes += w.HeapBytes
		cl.CPUSeconds += w.CPUSeconds
		cl.MaxRSSBytes += w.MaxRSSBytes
		cl.PollErrors += w.PollErrors
		if w.Unsequenced > 0 {
			r.warn("%d message frames without a seq and ts in the payload were ignored", w.Unsequenced)
		}
	}
	cpu, rss := selfUsage()
	if cfg.Workers == 1 { // the worker ran in this process: its figures are the process's
		cl.CPUSeconds, cl.MaxRSSBytes = cpu-r.cpu0, rss
	} else {
		cl.CPUSeconds += cpu - r.cpu0
		cl.MaxRSSBytes += rss
	}
	if c.Established > 0 {
		cl.HeapPerConn = float64(heapBytes) / float64(c.Established)
	}
	if lastWelcome > firstDial && firstDial > 0 {
		c.RampSeconds = float64(lastWelcome-firstDial) / 1e9
		c.ConnectRatePerS = float64(c.Established) / c.RampSeconds
	}
	c.HandshakeLatency = report.PercentilesOf(hs)
	res.Conns = c
	res.Client = cl
	d := report.Delivery{Expected: seq.Expected, Delivered: delivered, Lost: seq.Lost, Duplicated: seq.Duplicated,
		Reordered: seq.Reordered, Misrouted: misrouted, Latency: report.PercentilesOf(dl),
		FrameBytes: frameBytes, Compressed: compressed}
	if delivered > 0 {
		d.FrameBytesPerMsg = float64(frameBytes) / float64(delivered)
		d.CompressedShare = float64(compressed) / float64(delivered)
	}
	if !pubStart.IsZero() && lastDelivery > pubStart.UnixNano() {
		d.WindowS = float64(lastDelivery-pubStart.UnixNano()) / 1e9
		d.PerS = float64(delivered) / d.WindowS
	}
	res.Delivery = d
	if cfg.Scenario == ScenarioChurn {
		res.Churn = &report.Churn{Reconnects: reconnects, ReconnectFailed: reconnFail, ReconnectLatency: report.PercentilesOf(rc)}
	}
}

// resumeFigures puts the resume scenario's figures together from the
// workers' totals, what the scenario measured (rw) and the server's CPU
// over the resumes (s.CPUSeconds, from the window's start).
func (r *runner) resumeFigures(msgs []workerMsg, rw *resumeWindow, s report.Server) *report.Resume {
	var t engine.ResumeTotals
	rec, res := hist.New(), hist.New()
	for _, m := range msgs {
		if m.Result == nil || m.Result.Resume == nil {
			continue
		}
		t.Merge(*m.Result.Resume)
		if err := hist.MergeEncoded(rec, m.Result.Resume.Recovery); err != nil {
			r.warn("a worker's recovery histogram could not be decoded: %v", err)
		}
		if err := hist.MergeEncoded(res, m.Result.Resume.ResumeLatency); err != nil {
			r.warn("a worker's resume histogram could not be decoded: %v", err)
		}
	}
	out := &report.Resume{
		Cut: "client", CutCmd: r.cfg.CutCmd, CutConnections: rw.cut, Missed: r.cfg.Missed,
		Published: rw.published, PublishS: rw.publishS,
		Reconnected: rw.reconnected, ReconnectFail: rw.cut - rw.reconnected,
		Resumed: t.Resumed, Unrecovered: t.Unrecovered, ResumeErrors: t.ResumeErrors, Complete: t.Complete,
		Expected: t.Expected, Applied: t.Applied, Lost: t.Lost, Stray: t.Stray, DupApplied: t.DupApplied,
		DupDropped: t.DupDropped, GapDropped: t.GapDropped, DroppedInResume: t.DroppedInResume,
		RecoveryLatency: report.PercentilesOf(rec), ResumeLatency: report.PercentilesOf(res),
		RequestsPerResume: -1, ServerReplayed: -1, ServerCPUSeconds: s.CPUSeconds, CPUPerResumeUs: -1,
	}
	if r.cfg.CutCmd != "" {
		out.Cut = "server"
	}
	if rw.publishS > 0 {
		out.PublishPerS = float64(rw.published) / rw.publishS
	}
	if t.LastReconnNS > t.FirstReconnNS && t.FirstReconnNS > 0 {
		out.ReconnectRatePerS = float64(rw.reconnected) / (float64(t.LastReconnNS-t.FirstReconnNS) / 1e9)
	}
	if t.LastCompleteNS > 0 && t.CutNS > 0 {
		out.RecoveryS = float64(t.LastCompleteNS-t.CutNS) / 1e9
	}
	if t.LastCompleteNS > t.FirstResumeNS && t.FirstResumeNS > 0 {
		out.StormS = float64(t.LastCompleteNS-t.FirstResumeNS) / 1e9
		out.ReplayedPerS = float64(t.Applied) / out.StormS
	}
	if rw.before != nil && rw.after != nil {
		out.HistoryRequests = byLabel(rw.before, rw.after, historyRequestsMetric)
		out.ServerResumes = byLabel(rw.before, rw.after, resumesMetric)
		out.ServerReplayed = rw.after[replayedMetric] - rw.before[replayedMetric]
		if t.Resumed > 0 {
			var sum float64
			for _, v := range out.HistoryRequests {
				sum += v
			}
			out.RequestsPerResume = sum / float64(t.Resumed)
		}
	}
	if s.CPUSeconds >= 0 && t.Resumed > 0 {
		out.CPUPerResumeUs = s.CPUSeconds / float64(t.Resumed) * 1e6
	}
	out.NATSCPUSeconds, out.NATSCPUPerResumeUs = s.NATSCPUSeconds, -1
	if s.NATSCPUSeconds >= 0 && t.Resumed > 0 {
		out.NATSCPUPerResumeUs = s.NATSCPUSeconds / float64(t.Resumed) * 1e6
	}
	if out.Complete < out.CutConnections {
		r.warn("%d of %d cut connections did not get every notification published while they were away", out.CutConnections-out.Complete, out.CutConnections)
	}
	return out
}

// checks adds warnings about figures that should not be trusted. r.mu
// must be held.
func (r *runner) checks(res *Result) {
	cfg := &r.cfg
	if cpus := float64(res.Machine.CPUs); cpus > 0 && res.DurationS > 0 {
		if share := res.Client.CPUSeconds / (res.DurationS * cpus); share > 0.5 {
			r.warnings = append(r.warnings, fmt.Sprintf("wsbench used %.0f%% of this machine's CPU over the run: on a shared host the client may limit the server", share*100))
		}
	}
	if c := res.Conns; c.ConnectRatePerS > 0 && c.ConnectRatePerS < 0.8*cfg.Rate && c.Established > int64(cfg.Rate) {
		r.warnings = append(r.warnings, fmt.Sprintf("the ramp reached %.0f/s of the %.0f/s asked: the server (or the dialers, --dialers %d per worker) set the pace", c.ConnectRatePerS, cfg.Rate, cfg.Dialers))
	}
	if s := res.Server; s.RSSPerConn >= 0 && s.RSSPerConn < 512 && res.Conns.Established >= 1000 {
		r.warnings = append(r.warnings, fmt.Sprintf("server RSS grew only %.0f B per connection: the server probably kept memory from an earlier run; restart it before measuring memory", s.RSSPerConn))
	}
	for _, s := range cfg.URLs {
		if t, err := config.ParseTarget(s); err == nil && t.Loopback() && cfg.Scenario != ScenarioFloor && res.Client.CPUSeconds > 0 {
			r.warnings = append(r.warnings, "client and server share this host: their CPU figures compete")
			break
		}
	}
}
