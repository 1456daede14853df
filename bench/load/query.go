package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// QueryClient calls a Prometheus-compatible query API (Telltale,
// Prometheus, VictoriaMetrics).
type QueryClient struct {
	// Base is the API root, e.g. http://127.0.0.1:9470 (the client appends
	// /api/v1/query and /api/v1/query_range).
	Base string
	// Params are added to every call, e.g. nocache=1 for VictoriaMetrics.
	Params url.Values
	Client *http.Client // nil means http.DefaultClient
}

// CountQuery returns the PromQL that counts every sample of the series
// selector matches whose timestamp lies in the window (at-window, at].
func CountQuery(selector string, window time.Duration) string {
	return fmt.Sprintf(`sum(count_over_time(%s[%ds]))`, selector, int64(window.Seconds()))
}

// apiResponse is the envelope of the Prometheus HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// queryData is the data of a query or query_range answer.
type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// seriesResult is one series of a vector or matrix.
type seriesResult struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

// result decodes the data of a query answer: its type and, for a vector or
// a matrix, its series.
func (r *apiResponse) result() (string, []seriesResult, error) {
	var d queryData
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return "", nil, fmt.Errorf("not a query answer: %w", err)
	}
	switch d.ResultType {
	case "vector", "matrix":
		var ss []seriesResult
		if err := json.Unmarshal(d.Result, &ss); err != nil {
			return "", nil, fmt.Errorf("%s result: %w", d.ResultType, err)
		}
		return d.ResultType, ss, nil
	case "scalar", "string":
		return d.ResultType, nil, nil
	}
	return "", nil, fmt.Errorf("unknown result type %q", d.ResultType)
}

// Sum evaluates q as an instant query at time at and returns the sum of the
// values of the vector it returns; an empty vector is 0.
func (c *QueryClient) Sum(ctx context.Context, q string, at time.Time) (float64, error) {
	v := url.Values{"query": {q}, "time": {formatTime(at)}}
	r, err := c.get(ctx, "/api/v1/query", v)
	if err != nil {
		return 0, err
	}
	sum, err := r.vectorSum()
	if err != nil {
		return 0, fmt.Errorf("query %q: %w", q, err)
	}
	return sum, nil
}

// vectorSum returns the sum of the values of a vector result.
func (r *apiResponse) vectorSum() (float64, error) {
	typ, ss, err := r.result()
	if err != nil {
		return 0, err
	}
	if typ != "vector" {
		return 0, fmt.Errorf("got result type %q; want vector", typ)
	}
	var sum float64
	for _, s := range ss {
		f, err := sampleValue(s.Value)
		if err != nil {
			return 0, err
		}
		sum += f
	}
	return sum, nil
}

// Range runs q as a range query and returns the number of series and of
// points in the result.
func (c *QueryClient) Range(ctx context.Context, q string, start, end time.Time, step time.Duration) (series, points int, err error) {
	ss, err := c.Matrix(ctx, q, start, end, step)
	if err != nil {
		return 0, 0, err
	}
	for _, s := range ss {
		points += len(s.Points)
	}
	return len(ss), points, nil
}

// Series is one series of a range query's answer.
type Series struct {
	Metric map[string]string
	Points []Point
}

// Point is one point of a series: its time in milliseconds since the epoch
// and its value as the server wrote it.
type Point struct {
	T int64
	V string
}

// Matrix runs q as a range query and returns its series.
func (c *QueryClient) Matrix(ctx context.Context, q string, start, end time.Time, step time.Duration) ([]Series, error) {
	v := url.Values{"query": {q}, "start": {formatTime(start)}, "end": {formatTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	r, err := c.get(ctx, "/api/v1/query_range", v)
	if err != nil {
		return nil, err
	}
	typ, ss, err := r.result()
	if err != nil || typ != "matrix" {
		return nil, fmt.Errorf("query_range %q: got result type %q (%v); want matrix", q, typ, err)
	}
	out := make([]Series, 0, len(ss))
	for _, s := range ss {
		se := Series{Metric: s.Metric, Points: make([]Point, 0, len(s.Values))}
		for _, p := range s.Values {
			if len(p) != 2 {
				return nil, fmt.Errorf("query_range %q: point %v: want [time, value]", q, p)
			}
			t, ok1 := p[0].(float64)
			v, ok2 := p[1].(string)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("query_range %q: point %v: want [number, string]", q, p)
			}
			se.Points = append(se.Points, Point{T: int64(math.Round(t * 1000)), V: v})
		}
		out = append(out, se)
	}
	return out, nil
}

// Instant runs q as an instant query at time at and returns the number of
// series and of points in the result (a scalar or string is one point).
func (c *QueryClient) Instant(ctx context.Context, q string, at time.Time) (series, points int, err error) {
	r, err := c.get(ctx, "/api/v1/query", url.Values{"query": {q}, "time": {formatTime(at)}})
	if err != nil {
		return 0, 0, err
	}
	typ, ss, err := r.result()
	if err != nil {
		return 0, 0, fmt.Errorf("query %q: %w", q, err)
	}
	switch typ {
	case "scalar", "string":
		return 0, 1, nil
	case "vector":
		return len(ss), len(ss), nil
	}
	for _, s := range ss {
		points += len(s.Values)
	}
	return len(ss), points, nil
}

// LabelValues returns the values of label among the series match selects
// with samples in [start, end] (/api/v1/label/<label>/values, what a
// Grafana label_values(match, label) variable asks).
func (c *QueryClient) LabelValues(ctx context.Context, label, match string, start, end time.Time) ([]string, error) {
	v := url.Values{"start": {formatTime(start)}, "end": {formatTime(end)}}
	if match != "" {
		v["match[]"] = []string{match}
	}
	r, err := c.get(ctx, "/api/v1/label/"+url.PathEscape(label)+"/values", v)
	if err != nil {
		return nil, err
	}
	var vals []string
	if err := json.Unmarshal(r.Data, &vals); err != nil {
		return nil, fmt.Errorf("label %s values of %s: not a list of strings: %w", label, match, err)
	}
	return vals, nil
}

func (c *QueryClient) get(ctx context.Context, path string, v url.Values) (*apiResponse, error) {
	for k, vals := range c.Params {
		v[k] = append(v[k], vals...)
	}
	u := strings.TrimRight(c.Base, "/") + path + "?" + v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("bad query URL %q: %w", u, err)
	}
	cl := c.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the answer: %w", path, err)
	}
	r, err := decodeAnswer(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s?query=%s: %s: %w", path, v.Get("query"), resp.Status, err)
	}
	return r, nil
}

// decodeAnswer decodes a Prometheus API answer and turns status "error"
// into an error carrying the server's message.
func decodeAnswer(body []byte) (*apiResponse, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("not a Prometheus API answer (%v): %.200s", err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	return &r, nil
}

// sampleValue reads the value of a [time, "value"] pair.
func sampleValue(p []any) (float64, error) {
	if len(p) != 2 {
		return 0, fmt.Errorf("sample %v: want [time, value]", p)
	}
	s, ok := p[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v: want a string", p[1])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q: %w", s, err)
	}
	return f, nil
}

// formatTime formats t as Unix seconds with millisecond precision.
func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1e3, 'f', 3, 64)
}
