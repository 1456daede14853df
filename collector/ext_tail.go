package main

import "context"

// addTail wires this extension into the app (see extensions.go).
func (a *app) addTail(ctx context.Context) error {
	return nil
}
