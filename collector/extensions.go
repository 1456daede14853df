package main

import "context"

// addExtensions wires the parts beyond the core, each in its own ext_*.go
// file: host metrics, self metrics, live tail, the change log, Influx and OTLP ingest, the web
// console.
func (a *app) addExtensions(ctx context.Context) error {
	for _, add := range []func(context.Context) error{
		a.addHostMetrics,
		a.addSelfMetrics,
		a.addTail,
		a.addFanout,
		a.addChanges,
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
