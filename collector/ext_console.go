package main

import "context"

// addConsole wires this extension into the app (see extensions.go).
func (a *app) addConsole(ctx context.Context) error {
	return nil
}
