package ingest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/samples"
)

// TestWriterSeriesLimits: with the head at -storage.max-series, samples of
// new series are rejected by name and counted by metric name, existing
// series keep ingesting; -storage.max-hourly-series likewise bounds the
// series created per hour.
func TestWriterSeriesLimits(t *testing.T) {
	f := func(opts storage.Options, wantFlag string) {
		t.Helper()
		opts.Dir = t.TempDir()
		st, err := storage.Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		w := NewWriter(st, Options{})
		now := time.Now().UnixMilli()
		batch := func(name string, from, to int, ts int64) *samples.Batch {
			b := &samples.Batch{}
			for i := from; i < to; i++ {
				b.StartSeries(nil)
				b.AddLabel("__name__", name)
				b.AddLabel("request_id", fmt.Sprint(i))
				b.AddSample(ts, 1)
			}
			return b
		}
		if _, err := w.Write(t.Context(), batch("good", 0, 10, now)); err != nil {
			t.Fatal(err)
		}
		written, err := w.Write(t.Context(), batch("exploding", 0, 50, now))
		var perr *PartialError
		if !errors.As(err, &perr) || !strings.Contains(err.Error(), wantFlag) || !strings.Contains(err.Error(), `exploding{request_id="`) {
			t.Fatalf("got %v; want a partial error naming exploding and %s", err, wantFlag)
		}
		if written.Samples != 10 || perr.Rejected != 40 || perr.RejectedSeries != 40 {
			t.Fatalf("got %d written, %d rejected of %d series; want 10 written up to the limit of 20, 40 rejected", written.Samples, perr.Rejected, perr.RejectedSeries)
		}
		stats, err := st.Stats("__name__", 1)
		if err != nil {
			t.Fatal(err)
		}
		if n := stats.NumSeries; n != 20 {
			t.Fatalf("got %d head series; want 20", n)
		}
		// Existing series keep ingesting.
		if _, err := w.Write(t.Context(), batch("good", 0, 10, now+1000)); err != nil {
			t.Fatalf("existing series: %v", err)
		}
		if n := count(t, st, "good"); n != 20 {
			t.Fatalf("got %d samples of the existing series; want 20", n)
		}
		if got := collectorMetric(w, `telltale_ingest_rejected_total{reason="series_limit"}`); got != 40 {
			t.Fatalf("series_limit rejections: got %v; want 40", got)
		}
		var sb strings.Builder
		w.set.WritePrometheus(&sb)
		if !strings.Contains(sb.String(), `telltale_ingest_series_limit_rejected_samples{metric="exploding"} 40`) {
			t.Fatalf("the top offenders metric does not name exploding:\n%s", sb.String())
		}
	}
	f(storage.Options{MaxSeries: 20}, "-storage.max-series=20")
	f(storage.Options{MaxHourlySeries: 20}, "-storage.max-hourly-series=20")
}

func TestOffendersTop(t *testing.T) {
	o := newOffenders(3)
	for i, n := range []int{5, 1, 3} {
		o.add(fmt.Sprint("m", i), n)
	}
	o.add("m9", 2) // replaces m1 (1), starting from 1: 3
	o.add("m9", 0)
	if got := fmt.Sprint(o.top(2)); got != "[{m0 5} {m2 3}]" {
		t.Fatalf("top 2: got %s; want [{m0 5} {m2 3}]", got)
	}
	if got := fmt.Sprint(o.top(10)); got != "[{m0 5} {m2 3} {m9 3}]" {
		t.Fatalf("top 10: got %s", got)
	}
}
