package main

import "context"

// addHostMetrics wires this extension into the app (see extensions.go).
func (a *app) addHostMetrics(ctx context.Context) error {
	return nil
}
