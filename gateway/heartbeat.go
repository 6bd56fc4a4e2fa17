package gateway

import (
	"time"
)

// One goroutine keeps every connection's timers: no timer per connection.
// Every tick it walks the hub's connection shards and, per connection,
// drops it when its upgrade request is not complete after HandshakeTimeout
// (slowloris), sends an RFC 6455 ping when it has been silent for
// PingInterval, closes it when silent for IdleTimeout (4001), when its
// token expired (1008), when its write queue has not moved for
// WriteTimeout (slow consumer), and drops it when it was closing for longer
// than CloseTimeout.

// sweepPeriod is how often the sweeper runs: a quarter of the shortest of
// WriteTimeout, CloseTimeout, HandshakeTimeout and, when enabled,
// PingInterval and IdleTimeout, within [10ms, 1s]. A timer fires at the
// first tick after it is due, so timers are as precise as one period.
func (c Config) sweepPeriod() time.Duration {
	d := min(c.WriteTimeout, c.CloseTimeout, c.HandshakeTimeout)
	if c.PingInterval > 0 {
		d = min(d, c.PingInterval)
	}
	if c.IdleTimeout > 0 {
		d = min(d, c.IdleTimeout)
	}
	return min(max(d/4, 10*time.Millisecond), time.Second)
}

func (s *Server) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.sweepPeriod())
	defer t.Stop()
	var batch []*Conn
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		wall := time.Now()
		s.checkHealth(wall)
		now, unix := s.clock(), uint32(wall.Unix())
		for i := 0; i < shardCount; i++ {
			batch = s.hub.appendShard(i, batch[:0])
			for _, c := range batch {
				c.tick(now, unix)
			}
			clear(batch)
		}
	}
}

// tick applies the timers to c at server clock now (ms) and unix seconds.
func (c *Conn) tick(now, unix uint32) {
	cfg := &c.srv.cfg
	switch c.state.Load() {
	case stateHandshake:
		if elapsed(now, c.since.Load()) > cfg.HandshakeTimeout {
			c.srv.refuse(c, resultTimeout, errHandshakeTimeout, nil)
		}
	case stateClosing:
		if elapsed(now, c.since.Load()) > cfg.CloseTimeout {
			c.srv.metrics.closeTimeouts.Inc()
			c.finishClose()
		}
	case stateOpen:
		silent := elapsed(now, c.lastRead.Load())
		switch since := c.since.Load(); {
		case c.expires != 0 && unix >= c.expires:
			c.close(ReasonAuthExpired)
		case cfg.IdleTimeout > 0 && silent > cfg.IdleTimeout:
			c.close(ReasonIdleTimeout)
		case since != 0 && elapsed(now, since) > cfg.WriteTimeout:
			c.close(ReasonSlowConsumer)
		case cfg.PingInterval > 0 && silent >= cfg.PingInterval && elapsed(now, c.lastPing.Load()) >= cfg.PingInterval:
			c.lastPing.Store(now)
			c.write(pingFrame)
		}
	}
}

// elapsed returns the time from server clock reading then to now, or 0
// when then is later (another goroutine stamped it after the sweep read the
// clock). The difference is taken as int32, so the clock's wrap after 49
// days is harmless for intervals under 24 days.
func elapsed(now, then uint32) time.Duration {
	return time.Duration(max(int32(now-then), 0)) * time.Millisecond
}
