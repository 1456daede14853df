package changelog

import (
	"fmt"
	"slices"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// serviceMetrics are the self metrics of the change API and its deliveries.
type serviceMetrics struct {
	set     *metrics.Set
	updated *metrics.Counter
	pending *metrics.Gauge
}

func newServiceMetrics(set *metrics.Set) *serviceMetrics {
	return &serviceMetrics{
		set:     set,
		updated: set.GetOrCreateCounter(`telltale_changes_updated_total`),
		pending: set.GetOrCreateGauge(`telltale_changes_outbox_pending`, nil),
	}
}

// recorded counts a new change by kind: one of changes.Kinds, or "other"
// for the kinds clients make up (so they cannot grow the label).
func (m *serviceMetrics) recorded(kind string) *metrics.Counter {
	if !slices.Contains(changes.Kinds, kind) {
		kind = "other"
	}
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_changes_recorded_total{kind=%q}`, kind))
}

// rejected counts a rejected request by reason (a short fixed word).
func (m *serviceMetrics) rejected(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_changes_rejected_total{reason=%q}`, reason))
}

// warned counts a change accepted with a warning, by reason.
func (m *serviceMetrics) warned(reason string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_changes_warnings_total{reason=%q}`, reason))
}

// delivery counts a delivery attempt outcome: delivered, retry or failed;
// or claim_lost, an entry not attempted because its claim passed to
// another replica (PostgreSQL). target is series, grafana, webhook, impact
// or other.
func (m *serviceMetrics) delivery(target, outcome string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_change_deliveries_total{target=%q,outcome=%q}`, target, outcome))
}
