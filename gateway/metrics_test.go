package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// slowConsumerCount reads the slow consumer counter.
func (m *metrics) slowConsumerCount() float64 { return counterValue(m.slowConsumers) }

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var out dto.Metric
	c.Write(&out)
	return out.GetCounter().GetValue()
}
