// Package retry holds what every Telltale component that retries a
// delivery needs: the wait before the next attempt (exponential backoff
// with jitter), the reading of a receiver's Retry-After header, and a
// sleep that ends early when its context is done.
//
// It has no dependencies outside the standard library, so the agent and
// the instrument library may import it too.
package retry

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff returns the wait after attempt n (1-based; n < 1 counts as 1):
// minWait·2^(n-1), capped at maxWait, with ±20% jitter so many senders do
// not retry in lockstep. The result always lies in [minWait, maxWait]
// (maxWait below minWait counts as minWait), so a flag documented as "the
// longest wait between retries" holds exactly.
func Backoff(n int, minWait, maxWait time.Duration) time.Duration {
	maxWait = max(maxWait, minWait)
	d := minWait
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	jitter := time.Duration(float64(d) * 0.2 * (2*rand.Float64() - 1))
	return min(max(d+jitter, minWait), maxWait)
}

// After reads a Retry-After header value at time now: delay-seconds
// (RFC 9110; a decimal fraction such as Discord's "1.5" is accepted too) or
// an HTTP-date. ok is false when the header is empty, negative or garbage,
// and the wait is then 0. A date in the past is a wait of 0 with ok true.
// The wait is capped at limit (limit <= 0: no cap), so a bogus answer
// cannot stop a sender for days; a huge number never overflows.
func After(header string, now time.Time, limit time.Duration) (wait time.Duration, ok bool) {
	h := strings.TrimSpace(header)
	if h == "" {
		return 0, false
	}
	if h[0] >= '0' && h[0] <= '9' {
		secs, err := strconv.ParseFloat(h, 64)
		if err != nil || !isDecimal(h) {
			return 0, false
		}
		const maxSecs = float64(1<<63-1) / float64(time.Second)
		if secs >= maxSecs {
			wait = 1<<63 - 1
		} else {
			wait = time.Duration(secs * float64(time.Second))
		}
	} else {
		t, err := http.ParseTime(h)
		if err != nil {
			return 0, false
		}
		wait = max(t.Sub(now), 0)
	}
	if limit > 0 {
		wait = min(wait, limit)
	}
	return wait, true
}

// isDecimal reports whether s is digits with at most one '.' among them
// (no sign, exponent, hex, "Inf" or "NaN", which ParseFloat would take).
func isDecimal(s string) bool {
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0:
			dot = true
		default:
			return false
		}
	}
	return true
}

// Sleep waits d or until ctx is done, whichever comes first, and returns
// ctx.Err() in the second case (and when ctx is already done, even for
// d <= 0).
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
