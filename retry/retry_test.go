package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	f := func(n int, lo, hi time.Duration) {
		t.Helper()
		for range 100 {
			got := Backoff(n, time.Second, time.Minute)
			if got < lo || got > hi {
				t.Fatalf("Backoff(%d, 1s, 1m): got %s; want within [%s, %s]", n, got, lo, hi)
			}
		}
	}
	f(0, time.Second, 1200*time.Millisecond)
	f(1, time.Second, 1200*time.Millisecond)
	f(2, 1600*time.Millisecond, 2400*time.Millisecond)
	f(4, 6400*time.Millisecond, 9600*time.Millisecond)
	f(100, 48*time.Second, 72*time.Second)
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a canceled context: got %v; want context.Canceled", err)
	}
	if err := Sleep(t.Context(), 0); err != nil {
		t.Fatalf("Sleep(0): got %v; want nil", err)
	}
}
