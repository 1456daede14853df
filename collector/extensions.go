package main

import "context"

// addExtensions wires the parts beyond the core, each in its own ext_*.go
// file: host metrics, self metrics, live tail, the change log, rules and
// alerts, Influx and OTLP ingest, the web console. Rules come after the
// tail (so the tail sees rule results) and the change log (alerts name
// their service's changes).
func (a *app) addExtensions(ctx context.Context) error {
	for _, add := range []func(context.Context) error{
		a.addHostMetrics,
		a.addSelfMetrics,
		a.addTail,
		a.addChanges,
		a.addRules,
		a.addOTLP,
		a.addInflux,
		a.addConsole,
	} {
		if err := add(ctx); err != nil {
			return err
		}
	}
	return nil
}
