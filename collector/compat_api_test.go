package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestPrometheusAPIEndpoints asks the collector and Prometheus' own API,
// holding the same data, the requests the query-correctness review found
// answered differently, and requires the same answer byte for byte; where
// an answer describes the server itself (flags, runtime, build), the same
// JSON shape.
func TestPrometheusAPIEndpoints(t *testing.T) {
	coll := startInProcess(t)
	defer coll.Close()
	ref := newReference(t, t.TempDir(), 6*time.Hour, nil)
	defer ref.Close()

	// Two metrics of job x for an hour, and one with a control character
	// in a label value.
	base := time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()
	var load []loadSeries
	for i, name := range []string{"api_a_total", "api_b_total"} {
		for inst := range 5 - 3*i { // unique top entries for status/tsdb?limit=1
			s := loadSeries{lset: labels.FromStrings("__name__", name, "job", "x", "instance", fmt.Sprint(inst))}
			for k := range 240 {
				s.pts = append(s.pts, point{T: base + int64(k)*15_000, V: float64(k*(i+1) + inst)})
			}
			load = append(load, s)
		}
	}
	load = append(load, loadSeries{lset: labels.FromStrings("__name__", "api_ctl", "v", "a\x01b\tc"), pts: []point{{T: base, V: 1}}})
	loadBoth(t, t.Context(), "endpoints", coll.URL, ref, load)

	mid := secs(base+30*60_000, 0.5) // half a millisecond: Prometheus rounds, never truncates
	end := secs(base+59*60_000, 0.4999)
	// client_golang's api.MinTime/MaxTime, as its Series and LabelNames send them.
	minTime := time.Unix(-62135596801, 0).UTC().Format(time.RFC3339Nano)
	maxTime := time.Unix(253402300799, 0).UTC().Format(time.RFC3339Nano)
	same := []struct {
		path   string
		params url.Values
	}{
		{"/api/v1/query", url.Values{"query": {"sum(count_over_time({job=\"x\"}[1h]))"}, "time": {end}}}, // 422 without delayed name removal
		{"/api/v1/query", url.Values{"query": {"rate(api_a_total[5m])"}, "time": {mid}}},
		{"/api/v1/query", url.Values{"query": {"time()"}, "time": {secs(base, 0.5)}}},
		{"/api/v1/query", url.Values{"query": {"api_a_total"}, "time": {mid}, "stats": {"all"}}},
		{"/api/v1/query", url.Values{"query": {"api_a_total"}, "time": {secs(base+60*60_000+90_000, 0)}, "lookback_delta": {"1m"}}},
		{"/api/v1/query", url.Values{"query": {"sort(api_a_total)"}, "time": {mid}, "limit": {"2"}}},
		{"/api/v1/query", url.Values{"query": {"\"a\\u0001b\\u001fc\""}, "time": {mid}}}, // a string result with control characters
		{"/api/v1/query", url.Values{"query": {"api_ctl"}, "time": {secs(base, 1)}}},
		{"/api/v1/query", url.Values{"query": {"1"}, "time": {"1e16"}}},
		{"/api/v1/query", url.Values{"query": {"1"}, "time": {"yesterday"}}},
		{"/api/v1/query", url.Values{"query": {"sum("}}},
		{"/api/v1/query", url.Values{}},
		{"/api/v1/query_range", url.Values{"query": {"rate(api_b_total[1m])"}, "start": {secs(base, 0.5)}, "end": {end}, "step": {"60"}, "limit": {"2"}}},
		{"/api/v1/query_range", url.Values{"query": {"stdvar_over_time(api_a_total[5m])"}, "start": {secs(base, 0.7)}, "end": {end}, "step": {"15s"}, "stats": {"all"}}},
		{"/api/v1/query_range", url.Values{"query": {"up"}, "start": {"10"}, "end": {"5"}, "step": {"1"}}},
		{"/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"100000"}, "step": {"1"}}},
		{"/api/v1/query_range", url.Values{"query": {"up"}, "start": {"0"}, "end": {"100"}, "step": {"0"}}},
		{"/api/v1/series", url.Values{"match[]": {`{job=~".*"}`}}},
		{"/api/v1/series", url.Values{"match[]": {`{job="x"}`}, "start": {minTime}, "end": {maxTime}}},
		{"/api/v1/series", url.Values{"match[]": {`{job="x"}`}, "limit": {"2"}}},
		{"/api/v1/series", url.Values{}},
		{"/api/v1/labels", url.Values{"start": {minTime}, "end": {maxTime}}},
		{"/api/v1/labels", url.Values{"match[]": {`api_ctl`}}},
		{"/api/v1/label/instance/values", url.Values{"match[]": {`api_a_total`}, "limit": {"2"}}},
		{"/api/v1/label/__name__/values", url.Values{}},
		{"/api/v1/query_exemplars", url.Values{"query": {"api_a_total"}, "start": {secs(base, 0)}, "end": {end}}},
		{"/api/v1/query_exemplars", url.Values{"query": {"sum("}, "start": {secs(base, 0)}, "end": {end}}},
		{"/api/v1/format_query", url.Values{"query": {"sum(rate(x[5m]))by(job)"}}},
		{"/api/v1/parse_query", url.Values{"query": {"sum by (job) (rate(x{a=\"b\"}[5m] offset 1m)) > 2"}}},
		{"/api/v1/parse_query", url.Values{"query": {"sum("}}},
		{"/api/v1/status/tsdb", url.Values{}},
		{"/api/v1/status/tsdb", url.Values{"limit": {"1"}}},
		{"/api/v1/rules", url.Values{}},
		{"/api/v1/alerts", url.Values{}},
		{"/api/v1/targets", url.Values{}},
		{"/api/v1/alertmanagers", url.Values{}},
	}
	for _, c := range same {
		for _, post := range []bool{false, true} {
			if post && (strings.HasPrefix(c.path, "/api/v1/label/") || strings.HasPrefix(c.path, "/api/v1/status/") ||
				c.path == "/api/v1/rules" || c.path == "/api/v1/alerts" || c.path == "/api/v1/targets" || c.path == "/api/v1/alertmanagers") {
				continue // GET only in Prometheus too; the 405 is compared below
			}
			got, err := ask(t.Context(), compatClient, coll.URL, c.path, c.params, post)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ask(t.Context(), compatClient, ref.URL, c.path, c.params, post)
			if err != nil {
				t.Fatal(err)
			}
			if c.path == "/api/v1/status/tsdb" {
				// Prometheus orders each top list by count alone, so equal
				// counts come in map order, differently from run to run.
				got.Body, want.Body = sortTies(t, got.Body), sortTies(t, want.Body)
			}
			if got != want {
				t.Errorf("%s %v (post %v):\n got  %s\n want %s", c.path, c.params, post, got, want)
			}
			if strings.Contains(want.ContentType, "json") && !json.Valid([]byte(want.Body)) {
				t.Errorf("%s %v: not valid JSON: %s", c.path, c.params, want.Body)
			}
		}
	}

	// Answers about the server itself: the same fields of the same types.
	for _, path := range []string{"/api/v1/status/buildinfo", "/api/v1/status/runtimeinfo", "/api/v1/status/flags",
		"/api/v1/status/config", "/api/v1/status/walreplay"} {
		got, err := ask(t.Context(), compatClient, coll.URL, path, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ask(t.Context(), compatClient, ref.URL, path, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != want.Status || got.ContentType != want.ContentType {
			t.Errorf("%s: got %d %s; want %d %s", path, got.Status, got.ContentType, want.Status, want.ContentType)
		}
		gs, ws := jsonShape(t, got.Body), jsonShape(t, want.Body)
		if path == "/api/v1/status/flags" {
			// Other flags, the same shape: every name maps to a string.
			var f struct{ Data map[string]any }
			_ = json.Unmarshal([]byte(got.Body), &f)
			for k, v := range f.Data {
				if _, ok := v.(string); !ok {
					t.Errorf("%s: flag %s is %T; want a string", path, k, v)
				}
			}
			if len(f.Data) < 20 {
				t.Errorf("%s: %d flags; want every flag of the collector", path, len(f.Data))
			}
			continue
		}
		if !reflect.DeepEqual(gs, ws) {
			t.Errorf("%s: shape\n got  %v\n want %v", path, gs, ws)
		}
	}

	// Prometheus' probes.
	for _, p := range []struct{ path, want string }{{"/-/healthy", "Prometheus Server is Healthy.\n"}, {"/-/ready", "Prometheus Server is Ready.\n"}} {
		got, err := ask(t.Context(), compatClient, coll.URL, p.path, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != 200 || got.Body != p.want {
			t.Errorf("%s: got %s; want 200 %q", p.path, got, p.want)
		}
	}
}

// sortTies orders the entries of status/tsdb's top lists by count and
// then name.
func sortTies(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		Status string
		Data   map[string]json.RawMessage
	}
	if json.Unmarshal([]byte(body), &v) != nil || v.Data == nil {
		return body
	}
	for k, raw := range v.Data {
		var list []struct {
			Name  string `json:"name"`
			Value uint64 `json:"value"`
		}
		if json.Unmarshal(raw, &list) != nil {
			continue
		}
		sort.SliceStable(list, func(i, j int) bool {
			if list[i].Value != list[j].Value {
				return list[i].Value > list[j].Value
			}
			return list[i].Name < list[j].Name
		})
		v.Data[k], _ = json.Marshal(list)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

// TestQueryMaxSamples: over -query.max-samples the answer is Prometheus'
// own 422 for --query.max-samples.
func TestQueryMaxSamples(t *testing.T) {
	coll := startInProcess(t, "-query.max-samples=100")
	defer coll.Close()
	ref := newReferenceWith(t, t.TempDir(), 6*time.Hour, nil, 100)
	defer ref.Close()
	base := time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()
	s := loadSeries{lset: labels.FromStrings("__name__", "many_samples")}
	for k := range 240 {
		s.pts = append(s.pts, point{T: base + int64(k)*15_000, V: float64(k)})
	}
	loadBoth(t, t.Context(), "max samples", coll.URL, ref, []loadSeries{s})
	for _, q := range []string{"sum_over_time(many_samples[1h])", "many_samples[30m]"} {
		params := url.Values{"query": {q}, "time": {secs(base+59*60_000, 0)}}
		got, err := ask(t.Context(), compatClient, coll.URL, "/api/v1/query", params, false)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ask(t.Context(), compatClient, ref.URL, "/api/v1/query", params, false)
		if err != nil {
			t.Fatal(err)
		}
		if got != want || got.Status != 422 || !strings.Contains(got.Body, "too many samples") {
			t.Errorf("%s:\n got  %s\n want %s (422, too many samples)", q, got, want)
		}
	}
}

// jsonShape maps a JSON document to its keys and value types, so two
// answers about different servers can be compared.
func jsonShape(t *testing.T, body string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	var shape func(any) any
	shape = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			out := map[string]any{}
			for _, k := range keys {
				out[k] = shape(x[k])
			}
			return out
		case []any:
			if len(x) == 0 {
				return "[]"
			}
			return []any{shape(x[0])}
		case string:
			return "string"
		case float64:
			return "number"
		case bool:
			return "bool"
		}
		return "null"
	}
	return shape(v)
}
