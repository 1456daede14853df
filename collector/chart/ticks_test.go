package chart

import (
	"strings"
	"testing"
	"time"
)

func TestFormatValue(t *testing.T) {
	f := func(lo, hi float64, unit, want string) {
		t.Helper()
		_, _, ticks := unitRange(lo, hi, unit)
		var got []string
		for _, v := range ticks {
			got = append(got, formatValue(v, unit, ticks))
		}
		if g := strings.Join(got, " | "); g != want {
			t.Fatalf("ticks of [%g, %g] in %q: got %q; want %q", lo, hi, unit, g, want)
		}
	}
	f(0, 100, "", "0 | 50 | 100")
	f(0, 1, "percentunit", "0 | 50% | 100%")
	f(0.0015, 0.0042, "s", "0 | 2 ms | 4 ms | 6 ms")
	f(0, 3<<30, "bytes", "0 | 1 GiB | 2 GiB | 3 GiB")
	f(0, 2500, "reqps", "0 | 1k req/s | 2k req/s | 3k req/s")
	f(5, 5, "", "4.5 | 5.0 | 5.5")
	f(-1, 1, "", "-1.0 | -0.5 | 0 | 0.5 | 1.0")
}

func TestTimeTicks(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 3, 0, 0, time.UTC)
	f := func(span time.Duration, n int, want string) {
		t.Helper()
		var got []string
		for _, ms := range timeTicks(t0.UnixMilli(), t0.Add(span).UnixMilli(), n) {
			got = append(got, formatTime(ms, span.Milliseconds()))
		}
		if g := strings.Join(got, " "); g != want {
			t.Fatalf("ticks of %s (%d): got %q; want %q", span, n, g, want)
		}
	}
	f(time.Hour, 6, "12:15 12:30 12:45 13:00")
	f(5*time.Minute, 5, "12:04:00 12:06:00 12:08:00")
	f(7*24*time.Hour, 4, "May 3 00:00 May 5 00:00 May 7 00:00")
}
