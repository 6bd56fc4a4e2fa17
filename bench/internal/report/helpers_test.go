package report

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/bench/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func syntheticResult(label, scenario string, rate, p99, cpu float64) *Result {
	r := &Result{
		Label: label, Scenario: scenario, StartedAt: time.Unix(1700000000, 0).UTC(), DurationS: 12,
		Conns: Connections{Target: 1000, Established: 1000, ConnectRatePerS: rate,
			HandshakeLatency: Percentiles{Count: 1000, P50: 900, P90: 1500, P99: 3000, P999: 5000, Max: 9000}},
		Delivery: Delivery{Published: 20, Expected: 20000, Delivered: 20000, PerS: 4000,
			Latency: Percentiles{Count: 20000, P50: 2000, P90: 8000, P99: int64(p99), P999: int64(p99) * 2, Max: int64(p99) * 3}},
		Server: Server{RSSBefore: 10 << 20, RSSAfter: 12 << 20, RSSPerConn: 2097, GoroutinesBefore: -1, GoroutinesAfter: -1,
			GoroutinesPerConn: -1, CPUSeconds: cpu * 0.02, CPUPerMillionDeliv: cpu},
		Client:   Client{Workers: 1, CPUSeconds: 1, HeapPerConn: 700, ConnStructBytes: 88},
		Timeline: []Sample{{T: 1, Connections: 500, ServerRSS: 11 << 20, ClientRSS: 30 << 20}, {T: 2, Connections: 1000, Delivered: 10000, ServerRSS: 12 << 20, ClientRSS: 31 << 20}, {T: 3, Connections: 1000, Delivered: 20000, ServerRSS: 12 << 20, ClientRSS: 31 << 20}},
	}
	if scenario == config.ScenarioFloor {
		r.Floor = &Floor{Writes: 20000, CPUSeconds: cpu * 0.02, CPUPerMillionWrites: cpu, FrameBytes: 252}
	}
	return r
}
