package deploys

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// serviceMetrics are the self metrics of the deploy API and its deliveries.
type serviceMetrics struct {
	set      *metrics.Set
	recorded *metrics.Counter
	updated  *metrics.Counter
	pending  *metrics.Gauge
}

func newServiceMetrics(set *metrics.Set) *serviceMetrics {
	return &serviceMetrics{
		set:      set,
		recorded: set.GetOrCreateCounter(`telltale_deploys_recorded_total`),
		updated:  set.GetOrCreateCounter(`telltale_deploys_updated_total`),
		pending:  set.GetOrCreateGauge(`telltale_deploy_outbox_pending`, nil),
	}
}

// rejected counts a rejected request by reason (a short fixed word).
func (m *serviceMetrics) rejected(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_deploys_rejected_total{reason=%q}`, reason))
}

// delivery counts a delivery attempt outcome: delivered, retry or failed.
// target is series, grafana or webhook.
func (m *serviceMetrics) delivery(target, outcome string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_deploy_deliveries_total{target=%q,outcome=%q}`, target, outcome))
}
