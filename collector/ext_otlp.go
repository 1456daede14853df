package main

import "context"

// addOTLP wires this extension into the app (see extensions.go).
func (a *app) addOTLP(ctx context.Context) error {
	return nil
}
