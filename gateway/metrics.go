package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics, in a registry of its own (no
// globals), served by AdminHandler.
type metrics struct {
	registry       *prometheus.Registry
	connections    prometheus.Gauge
	upgrades       [numResults]prometheus.Counter
	closes         [numReasons]prometheus.Counter
	notifications  prometheus.Counter
	delivered      prometheus.Counter
	slowConsumers  prometheus.Counter
	closeTimeouts  prometheus.Counter
	acceptErrors   prometheus.Counter
	clientMessages [numClientMsgs]prometheus.Counter

	opened, closed  prometheus.Counter
	acceptThrottled prometheus.Counter
	fanout          prometheus.Histogram
	compressed      prometheus.Counter

	// Durable notifications (resume.go, replay.go, ack.go).
	durableDelivered prometheus.Counter
	replayed         prometheus.Counter
	resumes          [numResumeOutcomes]prometheus.Counter
	replaySeconds    prometheus.Histogram
	historyRequests  [numHistoryKinds]prometheus.Counter
	historyErrors    [numHistoryKinds]prometheus.Counter
	acks             prometheus.Counter
	marksWritten     prometheus.Counter
	missed           prometheus.Counter

	// Upstream (upstream.go): [0] publish, [1] request.
	upstream        [2][numUpstreamResults]prometheus.Counter
	upstreamSeconds prometheus.Histogram
}

// busStats is what the metrics read from a bus that offers it.
type busStats interface {
	Subscriptions() int
	Dropped() uint64
	Reconnects() uint64
}

// counter makes a counter without labels.
func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func newMetrics(s *Server) *metrics {
	r := prometheus.NewRegistry()
	m := &metrics{
		registry: r,
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wsgate_connections", Help: "Open WebSocket connections.",
		}),
		notifications:   counter("wsgate_notifications_total", "Notifications received from the bus."),
		delivered:       counter("wsgate_messages_delivered_total", "Message frames written or queued to clients, one per recipient."),
		slowConsumers:   counter("wsgate_slow_consumers_total", "Connections closed because they did not read what was sent."),
		closeTimeouts:   counter("wsgate_close_timeouts_total", "Close handshakes the client did not answer within the close timeout."),
		acceptErrors:    counter("wsgate_accept_errors_total", "Failed accept calls (EMFILE and the like)."),
		opened:          counter("wsgate_connects_total", "WebSocket connections opened (welcomed)."),
		closed:          counter("wsgate_disconnects_total", "WebSocket connections closed, for any reason (see wsgate_closes_total)."),
		acceptThrottled: counter("wsgate_accept_throttled_total", "Accepts that waited for the accept rate limit."),
		compressed:      counter("wsgate_notifications_compressed_total", "Notifications compressed (once each) for recipients that negotiated permessage-deflate."),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wsgate_fanout_seconds",
			Help: "Time from the bus handing a notification to the gateway to its last recipient's write (or queueing), recipient lookup included.",
			// 50µs to about 13s.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 19),
		}),
	}
	m.durableDelivered = counter("wsgate_durable_delivered_total", "Live durable notification frames written or queued to clients (or held behind a replay), one per recipient.")
	m.replayed = counter("wsgate_replayed_total", "Stored durable notifications written to resuming clients.")
	m.acks = counter("wsgate_acks_total", "Acks accepted from clients.")
	m.missed = counter("wsgate_missed_notices_total", "Times every client was told to resume because the bus was away from NATS.")
	m.marksWritten = counter("wsgate_ack_marks_written_total", "Acked watermarks written to the history (acks are merged per user and channel between writes).")
	m.replaySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wsgate_resume_seconds",
		Help: "Time from a resume op to the end of its replay (its answer, when nothing was missed).",
		// 1ms to about 65s.
		Buckets: prometheus.ExponentialBuckets(1e-3, 2, 17),
	})
	// Every label value is resolved here, once: the hot paths index an
	// array, and every series is present at zero, for rate() from the start.
	clientMessages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgate_client_messages_total", Help: "Client messages by op.",
	}, []string{"op"})
	for k := clientMsg(0); k < numClientMsgs; k++ {
		m.clientMessages[k] = clientMessages.WithLabelValues(k.String())
	}
	upgrades := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgate_upgrades_total", Help: "Upgrade attempts by result.",
	}, []string{"result"})
	for r := upgradeResult(1); r < numResults; r++ {
		m.upgrades[r] = upgrades.WithLabelValues(r.String())
	}
	resumes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgate_resumes_total", Help: "Resumes by outcome: recovered (nothing missing), unrecovered (answered recovered:false), failed (history unavailable).",
	}, []string{"outcome"})
	for o := resumeOutcome(0); o < numResumeOutcomes; o++ {
		m.resumes[o] = resumes.WithLabelValues(o.String())
	}
	historyRequests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgate_history_requests_total", Help: "Requests to the durable history (JetStream) by kind: last (batched lookups), read (replay reads), marks (batched watermark lookups), put_mark (watermark writes).",
	}, []string{"kind"})
	historyErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgate_history_errors_total", Help: "Failed requests to the durable history by kind.",
	}, []string{"kind"})
	for k := historyKind(0); k < numHistoryKinds; k++ {
		m.historyRequests[k] = historyRequests.WithLabelValues(k.String())
		m.historyErrors[k] = historyErrors.WithLabelValues(k.String())
	}
	upstream := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgate_upstream_total", Help: "Upstream ops (client messages for services) by op (publish, request) and result: ok, refused (disabled, invalid, forbidden), rate_limited, unavailable, timeout, no_responders, rejected.",
	}, []string{"op", "result"})
	for k, op := range [2]string{"publish", "request"} {
		for r := upstreamResult(0); r < numUpstreamResults; r++ {
			m.upstream[k][r] = upstream.WithLabelValues(op, r.String())
		}
	}
	m.upstreamSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "wsgate_upstream_request_seconds",
		Help: "Time from a request op to the service's reply.",
		// 0.5ms to about 16s.
		Buckets: prometheus.ExponentialBuckets(5e-4, 2, 16),
	})
	closes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgate_closes_total", Help: "Closed connections by reason.",
	}, []string{"reason"})
	for r := CloseReason(1); r < numReasons; r++ {
		m.closes[r] = closes.WithLabelValues(r.String())
	}
	pool := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	poolCounter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	r.MustRegister(
		m.connections, upgrades, closes, m.notifications, m.delivered, m.slowConsumers,
		m.closeTimeouts, m.acceptErrors, clientMessages, m.opened, m.closed, m.acceptThrottled, m.fanout, m.compressed,
		m.durableDelivered, m.replayed, resumes, m.replaySeconds, historyRequests, historyErrors, m.acks, m.marksWritten, m.missed,
		upstream, m.upstreamSeconds,
		pool("wsgate_users", "Distinct users with at least one open connection.", func() float64 { return float64(s.hub.users.Load()) }),
		poolCounter("wsgate_written_bytes_total", "Bytes written to WebSocket sockets.", func() float64 { return float64(s.bytesOut.Load()) }),
		pool("wsgate_write_queue_bytes", "Bytes waiting in the write queues of connections whose socket buffer is full.", func() float64 { return float64(s.queuedBytes.Load()) }),
		pool("wsgate_sockets", "Sockets held, those still in their upgrade included.", func() float64 { return float64(s.hub.count()) }),
		pool("wsgate_max_connections", "The MaxConns limit; 0 means none.", func() float64 { return float64(s.cfg.MaxConns) }),
		pool("wsgate_ready", "1 while /readyz answers 200.", func() float64 { return boolGauge(s.notReady() == "") }),
		pool("wsgate_healthy", "1 while /healthz answers 200.", func() float64 { return boolGauge(s.unhealthy() == "") }),
		pool("wsgate_drain_phase", "Drain phase: 0 serving, 1 delay (not ready, still serving), 2 closing connections, 3 waiting for close handshakes.",
			func() float64 { return float64(s.phase.Load()) }),
		pool("wsgate_pool_workers", "Pool workers started.", func() float64 { return float64(s.pool.Stats().Workers) }),
		pool("wsgate_pool_size", "Pool workers at most.", func() float64 { return float64(s.pool.Stats().Size) }),
		pool("wsgate_pool_busy", "Pool workers running a task.", func() float64 { return float64(s.pool.Stats().Busy) }),
		pool("wsgate_pool_queued", "Tasks waiting for a pool worker.", func() float64 { return float64(s.pool.Stats().Queued) }),
		pool("wsgate_pool_backlog", "Read and flush tasks the poller parked because the pool was saturated.", func() float64 { return float64(s.backlog.len()) }),
		poolCounter("wsgate_pool_saturated_total", "Schedules that found the pool saturated and waited.", func() float64 { return float64(s.pool.Stats().Waits) }),
		poolCounter("wsgate_pool_schedule_timeouts_total", "Upgrades refused because the pool stayed saturated.", func() float64 { return float64(s.pool.Stats().Timeouts) }),
		pool("wsgate_bus_connected", "1 when the bus connection is up.", func() float64 { return boolGauge(s.bus.Connected()) }),
		pool("wsgate_draining", "1 while the gateway drains.", func() float64 { return boolGauge(s.draining.Load()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if rs, ok := s.cfg.Revocations.(interface{ Len() int }); ok {
		r.MustRegister(pool("wsgate_revocations", "Revocations in force in the gateway's denylist.", func() float64 { return float64(rs.Len()) }))
	}
	if us, ok := s.cfg.Upstream.(interface{ Pending() int }); ok {
		r.MustRegister(pool("wsgate_upstream_pending", "Request ops waiting for their reply.", func() float64 { return float64(us.Pending()) }))
	}
	if bs, ok := s.bus.(busStats); ok {
		r.MustRegister(
			pool("wsgate_bus_subscriptions", "Subscriptions held on the bus.", func() float64 { return float64(bs.Subscriptions()) }),
			poolCounter("wsgate_bus_dropped_total", "Bus messages dropped because the dispatch queue was full.", func() float64 { return float64(bs.Dropped()) }),
			poolCounter("wsgate_bus_reconnects_total", "Bus reconnections.", func() float64 { return float64(bs.Reconnects()) }),
		)
	}
	return m
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
