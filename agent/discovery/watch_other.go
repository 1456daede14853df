//go:build !linux

package discovery

import (
	"context"
	"log/slog"
)

// watchDirs has no change events outside Linux: the refresh interval
// re-reads the files.
func watchDirs(ctx context.Context, dirs []string, logger *slog.Logger) (<-chan struct{}, func()) {
	return make(chan struct{}), func() {}
}
