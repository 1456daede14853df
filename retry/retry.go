// Package retry holds the two pieces every Telltale component that retries
// a delivery needs: the wait before the next attempt (exponential backoff
// with jitter) and a sleep that ends early when its context is done.
//
// It has no dependencies, so the agent may import it too.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff returns the wait after attempt n (1-based): minWait·2^(n-1),
// capped at maxWait, with ±20% jitter so many senders do not retry in
// lockstep. It is never below minWait.
func Backoff(n int, minWait, maxWait time.Duration) time.Duration {
	d := minWait
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	jitter := time.Duration(float64(d) * 0.2 * (2*rand.Float64() - 1))
	return max(d+jitter, minWait)
}

// Sleep waits d or until ctx is done, whichever comes first, and returns
// ctx.Err() in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
