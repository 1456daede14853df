package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// CountQuery returns the PromQL that counts every generated sample whose
// timestamp lies in the window (at-window, at].
func CountQuery(window time.Duration) string {
	return fmt.Sprintf(`sum(count_over_time({__name__=~"%s.*"}[%ds]))`, MetricPrefix, int64(window.Seconds()))
}

// apiResponse is the envelope of the Prometheus HTTP API.
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		} `json:"result"`
	} `json:"data"`
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
	if r.Data.ResultType != "vector" {
		return 0, fmt.Errorf("got result type %q; want vector", r.Data.ResultType)
	}
	var sum float64
	for _, s := range r.Data.Result {
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
	v := url.Values{"query": {q}, "start": {formatTime(start)}, "end": {formatTime(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	r, err := c.get(ctx, "/api/v1/query_range", v)
	if err != nil {
		return 0, 0, err
	}
	if r.Data.ResultType != "matrix" {
		return 0, 0, fmt.Errorf("query_range %q: got result type %q; want matrix", q, r.Data.ResultType)
	}
	for _, s := range r.Data.Result {
		points += len(s.Values)
	}
	return len(r.Data.Result), points, nil
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
