package gateway

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A zero Config gets the exported defaults, and the sweep period the
// comments quote.
func TestDefaults(t *testing.T) {
	c, err := Config{Bus: nopBus{}, Auth: InsecureAuth{}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"Path", c.Path, DefaultPath},
		{"PingInterval", c.PingInterval, DefaultPingInterval},
		{"IdleTimeout", c.IdleTimeout, DefaultIdleTimeout},
		{"WriteTimeout", c.WriteTimeout, DefaultWriteTimeout},
		{"WriteQueueLimit", c.WriteQueueLimit, DefaultWriteQueueLimit},
		{"MaxMessageSize", c.MaxMessageSize, DefaultMaxMessageSize},
		{"HandshakeTimeout", c.HandshakeTimeout, DefaultHandshakeTimeout},
		{"MaxHandshakeSize", c.MaxHandshakeSize, DefaultMaxHandshakeSize},
		{"CloseTimeout", c.CloseTimeout, DefaultCloseTimeout},
		{"MaxSubscriptions", c.MaxSubscriptions, DefaultMaxSubscriptions},
		{"PoolSize", c.PoolSize, DefaultPoolSize},
		{"PoolQueue", c.PoolQueue, DefaultPoolSize},
		{"UpgradeScheduleTimeout", c.UpgradeScheduleTimeout, DefaultUpgradeScheduleTimeout},
		{"FanoutChunk", c.FanoutChunk, DefaultFanoutChunk},
		{"ReadyConnsRatio", c.ReadyConnsRatio, DefaultReadyConnsRatio},
		{"MessageRate", c.MessageRate, float64(DefaultMessageRate)},
		{"MessageBurst", c.MessageBurst, 2*DefaultMaxSubscriptions + 10},
		{"AcceptBurst", c.AcceptBurst, 1},
		{"DrainDelay", c.DrainDelay, DefaultDrainDelay},
		{"DrainTimeout", c.DrainTimeout, DefaultDrainTimeout},
		{"SaturationTimeout", c.SaturationTimeout, DefaultSaturationTimeout},
		{"StallTimeout", c.StallTimeout, DefaultStallTimeout},
		{"CompressThreshold", c.CompressThreshold, DefaultCompressThreshold},
		{"sweep period", c.sweepPeriod(), 750 * time.Millisecond},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// Settings that are valid but close clients that did nothing wrong are
// said at New, once: server pings off with an idle timeout on (browsers
// never send on their own), or pings that come too late for their pong.
func TestHeartbeatWarning(t *testing.T) {
	for _, tt := range []struct {
		name       string
		ping, idle time.Duration
		warn       bool
	}{
		{"defaults", 0, 0, false},
		{"pings off, idle on", -1, 0, true},
		{"both off", -1, -1, false},
		{"idle off", 0, -1, false},
		{"ping as long as idle", time.Minute, time.Minute, true},
		{"ping shorter", 10 * time.Second, time.Minute, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			s, err := New(Config{Bus: nopBus{}, Auth: InsecureAuth{}, Logger: zap.New(core), PingInterval: tt.ping, IdleTimeout: tt.idle})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if got := logs.FilterMessageSnippet("idle timeout").Len(); got != map[bool]int{false: 0, true: 1}[tt.warn] {
				t.Fatalf("%d warnings about the idle timeout, want warn=%v: %v", got, tt.warn, logs.All())
			}
		})
	}
}
