package main

import "context"

// addDeploys wires this extension into the app (see extensions.go).
func (a *app) addDeploys(ctx context.Context) error {
	return nil
}
