package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/enginetest"
	"github.com/telltale-dev/telltale/samples"
)

// forwardArgs are the flags of a collector forwarding to prom.
func forwardArgs(write, api string) []string {
	return []string{"-storage.remote-write-url=" + write, "-storage.query-url=" + api, "-forward.sync-interval=1s"}
}

// waitQuery polls an instant query against base (a Prometheus API) until
// its single value is want.
func waitQuery(t *testing.T, base, q string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		v, err := queryValue(t.Context(), base, q)
		if err == nil && v == want {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprint(v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s at %s: last %s; want %v", q, base, last, want)
}

// queryValue runs an instant query and returns its one value (0 when the
// result is empty).
func queryValue(ctx context.Context, base, q string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+url.Values{"query": {q}}.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	s := string(b)
	i := strings.Index(s, `"value":[`)
	if i < 0 {
		return 0, nil
	}
	rest := s[i+len(`"value":[`):]
	rest = rest[strings.Index(rest, `"`)+1:]
	return strconv.ParseFloat(rest[:strings.Index(rest, `"`)], 64)
}

func TestForwardModeAgainstPrometheus(t *testing.T) {
	t.Parallel()
	prom := enginetest.StartPrometheus(t)
	in := collectortest.Start(t, forwardArgs(prom.Write, prom.API)...)
	now := time.Now().Truncate(time.Second)
	b := testBatch("fwd_e2e", 5, 30, now)
	if status, body, _ := postRemoteWrite(t, in, b, 2); status != http.StatusNoContent {
		t.Fatalf("remote write 2.0 to a forward-mode collector: %d %s", status, body)
	}
	status, body := in.Post(t.Context(), "/api/v1/import/prometheus", []byte("fwd_text{job=\"e2e\"} 42\n"), nil)
	if status != http.StatusNoContent {
		t.Fatalf("text import: %d %s", status, body)
	}
	// The engine has them, and the collector answers from the engine.
	waitQuery(t, prom.API, "sum(count_over_time(fwd_e2e[1h]))", 150)
	checkStored(t, in, b, now)
	waitQuery(t, in.URL, "fwd_text", 42)
	if v, err := queryValue(t.Context(), in.URL, `count({__name__=~"fwd_.*"})`); err != nil || v != 6 {
		t.Errorf("series through the collector: %v, %v; want 6", v, err)
	}
	// Label APIs come from the engine too.
	res, err := http.Get(in.URL + "/api/v1/label/instance/values")
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(lb), `"host-4"`) {
		t.Errorf("label values through the collector: %s; want host-0..host-4", lb)
	}
	// The admin API belongs to the engine.
	if status, body := in.Post(t.Context(), "/api/v1/admin/tsdb/snapshot", nil, nil); status != http.StatusNotImplemented || !strings.Contains(body, "forward mode") {
		t.Errorf("snapshot in forward mode: %d %s; want 501 naming forward mode", status, body)
	}
	target := strings.NewReplacer(".", "_", ":", "_").Replace(strings.TrimPrefix(strings.TrimSuffix(prom.Write, "/api/v1/write"), "http://"))
	if got := in.Metric(t.Context(), `telltale_forward_samples_sent_total{target="`+target+`"}`); got != 151 {
		t.Errorf("telltale_forward_samples_sent_total = %v; want 151", got)
	}
}

// TestForwardModeKill9KeepsAcknowledged: writes acknowledged while the
// engine is down are on the queue; a kill -9 of the collector loses none
// of them; after the restart they all reach the engine.
func TestForwardModeKill9KeepsAcknowledged(t *testing.T) {
	t.Parallel()
	engineAddr := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	base := "http://" + engineAddr
	dir := t.TempDir()
	addr := collectortest.FreeAddr(t)
	args := forwardArgs(base+"/api/v1/write", base)
	in := collectortest.StartOn(t, addr, dir, args...)
	now := time.Now().Truncate(time.Second)
	const writes = 20
	for i := range writes {
		b := testBatch("fwd_kill", 10, 10, now.Add(-time.Duration(writes-i)*time.Minute))
		if status, body, _ := postRemoteWrite(t, in, b, 1); status != http.StatusNoContent {
			t.Fatalf("write %d: %d %s", i, status, body)
		}
	}
	in.Kill()
	prom := enginetest.StartPrometheusAt(t, engineAddr)
	in = collectortest.StartOn(t, addr, dir, args...)
	waitQuery(t, prom.API, "sum(count_over_time(fwd_kill[2h]))", writes*10*10)
	waitQuery(t, in.URL, "sum(count_over_time(fwd_kill[2h]))", writes*10*10)
}

// TestForwardModeCacheSeesLateWrites: the query result cache stays exact
// in forward mode: a sample written late (older than -query.cache-freshness)
// drops the cached steps it changes once the engine has it.
func TestForwardModeCacheSeesLateWrites(t *testing.T) {
	t.Parallel()
	prom := enginetest.StartPrometheus(t)
	in := collectortest.Start(t, append(forwardArgs(prom.Write, prom.API), "-query.cache-freshness=1m")...)
	checkCacheSeesLateWrite(t, prom.API, in, in, "fwd_cache")
}

// checkCacheSeesLateWrite writes a series name with one sample a minute
// from 2h to 10m ago through reader, has reader cache a range query over
// it, writes a late sample (50m ago) through writer, and checks that once
// the engine has it reader's cache dropped what it changes and reader
// answers what the engine answers.
func checkCacheSeesLateWrite(t *testing.T, engineAPI string, reader, writer *collectortest.Instance, name string) {
	t.Helper()
	now := time.Now().Truncate(time.Minute)
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", name)
	b.AddLabel("job", "e2e")
	for ts := now.Add(-2 * time.Hour); !ts.After(now.Add(-10 * time.Minute)); ts = ts.Add(time.Minute) {
		b.AddSample(ts.UnixMilli(), 1)
	}
	if status, body, _ := postRemoteWrite(t, reader, &b, 1); status != http.StatusNoContent {
		t.Fatalf("write: %d %s", status, body)
	}
	waitQuery(t, engineAPI, "count_over_time("+name+"[3h])", 111)
	q := "sum_over_time(" + name + "[10m])"
	start, end := now.Add(-100*time.Minute), now.Add(-20*time.Minute)
	first := reader.QueryRange(t.Context(), q, start, end, time.Minute)
	again := reader.QueryRange(t.Context(), q, start, end, time.Minute)
	if fmt.Sprint(first) != fmt.Sprint(again) {
		t.Fatalf("cached answer differs: %v vs %v", first, again)
	}
	if reader.Metric(t.Context(), `telltale_query_cache_steps_total{source="cache"}`) <= 0 {
		t.Fatal("the second range query was not answered from the cache")
	}
	var late samples.Batch
	late.StartSeries(nil)
	late.AddLabel("__name__", name)
	late.AddLabel("job", "e2e")
	late.AddSample(now.Add(-50*time.Minute+30*time.Second).UnixMilli(), 100)
	if status, body, _ := postRemoteWrite(t, writer, &late, 1); status != http.StatusNoContent {
		t.Fatalf("late write: %d %s", status, body)
	}
	waitQuery(t, engineAPI, "count_over_time("+name+"[3h])", 112)
	deadline := time.Now().Add(time.Minute)
	for reader.Metric(t.Context(), `telltale_query_cache_invalidations_total{reason="late_write"}`) <= 0 {
		if time.Now().After(deadline) {
			t.Fatal("the late sample reached the engine but dropped nothing from the cache")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := reader.QueryRange(t.Context(), q, start, end, time.Minute)
	if fmt.Sprint(got) == fmt.Sprint(first) {
		t.Fatalf("after the late write the answer is unchanged: the cache kept stale steps")
	}
	direct := queryRangeAt(t, engineAPI, q, start, end, time.Minute)
	if fmt.Sprint(got) != fmt.Sprint(direct) {
		t.Errorf("through the collector after the late write:\n%v\nthe engine itself:\n%v", got, direct)
	}
}

// queryRangeAt runs a range query against any Prometheus API.
func queryRangeAt(t *testing.T, base, q string, start, end time.Time, step time.Duration) []collectortest.Result {
	t.Helper()
	v := url.Values{"query": {q},
		"start": {strconv.FormatFloat(float64(start.UnixMilli())/1e3, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1e3, 'f', 3, 64)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	resp, err := http.Get(base + "/api/v1/query_range?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			Result []collectortest.Result `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	return env.Data.Result
}

func TestForwardModeAgainstCortexSmoke(t *testing.T) {
	cx := enginetest.StartCortex(t, 3, 3)
	in := collectortest.Start(t, forwardArgs(cx.Write, cx.API)...)
	now := time.Now().Truncate(time.Second)
	b := testBatch("fwd_cortex", 5, 30, now)
	if status, body, _ := postRemoteWrite(t, in, b, 1); status != http.StatusNoContent {
		t.Fatalf("write: %d %s", status, body)
	}
	waitQuery(t, cx.API, "sum(count_over_time(fwd_cortex[1h]))", 150)
	checkStored(t, in, b, now)
}
