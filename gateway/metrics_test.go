package gateway

import dto "github.com/prometheus/client_model/go"

// slowConsumerCount reads the slow consumer counter.
func (m *metrics) slowConsumerCount() float64 {
	var out dto.Metric
	m.slowConsumers.Write(&out)
	return out.GetCounter().GetValue()
}
