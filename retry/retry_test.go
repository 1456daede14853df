package retry

import (
	"context"
	"net/http"
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
	f(100, 48*time.Second, time.Minute) // never above maxWait
}

func TestBackoffBounds(t *testing.T) {
	f := func(n int, minWait, maxWait, lo, hi time.Duration) {
		t.Helper()
		for range 100 {
			if got := Backoff(n, minWait, maxWait); got < lo || got > hi {
				t.Fatalf("Backoff(%d, %s, %s): got %s; want within [%s, %s]", n, minWait, maxWait, got, lo, hi)
			}
		}
	}
	f(1, 0, time.Second, 0, 0)                                       // no minimum: no wait
	f(3, time.Second, time.Second, time.Second, time.Second)         // min == max
	f(3, 2*time.Second, time.Second, 2*time.Second, 2*time.Second)   // max below min counts as min
	f(1<<30, time.Millisecond, time.Hour, 48*time.Minute, time.Hour) // no overflow
}

func TestAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := func(h string, limit, want time.Duration, wantOK bool) {
		t.Helper()
		got, ok := After(h, now, limit)
		if got != want || ok != wantOK {
			t.Errorf("After(%q, limit %s): got %s, %v; want %s, %v", h, limit, got, ok, want, wantOK)
		}
	}
	const m = 10 * time.Minute
	// absent
	f("", m, 0, false)
	f("  ", m, 0, false)
	// delay-seconds
	f("5", m, 5*time.Second, true)
	f(" 0 ", m, 0, true)
	f("1.5", m, 1500*time.Millisecond, true) // Discord's fractional seconds
	// negative and garbage
	f("-1", m, 0, false)
	f("soon", m, 0, false)
	f("5s", m, 0, false)
	f("1e3", m, 0, false)
	f("0x10", m, 0, false)
	f("Inf", m, 0, false)
	f("NaN", m, 0, false)
	f("1.2.3", m, 0, false)
	f(".5", m, 0, false)
	// HTTP-date
	f(now.Add(30*time.Second).Format(http.TimeFormat), m, 30*time.Second, true)
	f(now.Add(-30*time.Second).Format(http.TimeFormat), m, 0, true)
	f("Sunday, 06-Nov-94 08:49:37 GMT", m, 0, true) // RFC 850, long past
	// cap
	f("99999999", m, m, true)
	f("99999999999999999999999", m, m, true) // no overflow
	f(now.Add(time.Hour).Format(http.TimeFormat), m, m, true)
	f("3600", 0, time.Hour, true) // limit 0: no cap
	f("99999999999999999999999", 0, 1<<63-1, true)
}

func FuzzAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "1.5", "-5", "Wed, 21 Oct 2015 07:28:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "99999999999999999999", "1e400"} {
		f.Add(s)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const limit = 10 * time.Minute
	f.Fuzz(func(t *testing.T, h string) {
		d, ok := After(h, now, limit)
		if d < 0 || d > limit {
			t.Fatalf("After(%q) = %s; want within [0, %s]", h, d, limit)
		}
		if !ok && d != 0 {
			t.Fatalf("After(%q) = %s, false; want 0 when not ok", h, d)
		}
	})
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
