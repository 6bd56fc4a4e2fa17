package gateway

import (
	"testing"
	"time"
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
