package query

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/telltale-dev/telltale/collector/storage"
)

// TestCacheEndOffTheStepGrid: a range query whose end is not on its step
// grid (Grafana's and the compat test's sub-millisecond times round to an
// end a millisecond short of the next step) is cached up to its last step,
// not up to its end: a later query of the same grid whose end reaches that
// next step gets it computed (it used to come back without its last step).
func TestCacheEndOffTheStepGrid(t *testing.T) {
	st, err := storage.Open(storage.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	app := st.Appender(t.Context())
	for ts := int64(1_000_000); ts <= 1_400_000; ts += 15_000 {
		if _, err := app.Append(0, labels.FromStrings("__name__", "x", "job", "a"), ts, float64(ts/1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(st, Options{}).Handler())
	t.Cleanup(srv.Close)
	for _, c := range []struct{ start, end string }{
		{"1000.001", "1300.0004"}, // ends at 1300.000: last step 1285.001, cached
		{"1000.001", "1300.0009"}, // ends at 1300.001: its last step is 1300.001
		{"1000.001", "1330.001"},
		{"1015.001", "1300.001"},
	} {
		params := url.Values{"query": {"max_over_time(x[1m]) * 1000"}, "start": {c.start}, "end": {c.end}, "step": {"15"}}
		_, _, got := get(t, srv, "/api/v1/query_range", params)
		params.Set("nocache", "1")
		_, _, want := get(t, srv, "/api/v1/query_range", params)
		if got != want {
			t.Errorf("start=%s end=%s: cached answer\n%s\nwant the engine's\n%s", c.start, c.end, got, want)
		}
	}
}
