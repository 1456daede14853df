package main

import "context"

// addInflux wires this extension into the app (see extensions.go).
func (a *app) addInflux(ctx context.Context) error {
	return nil
}
