package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/bench/report"
	"github.com/telltale-dev/telltale/dashboards/board"
)

// dashboardCommand is `go run ./bench dashboard`: what the dashboards'
// recording rules save on a dashboard refresh. It loads a collector with
// -span of generated app and host metrics (the instrument library's and
// the agent's names), backfills the dashboards' recorded series over the
// same span (each point the rule's expression at that time, as the
// collector's rules engine records it), then refreshes the Service and
// Hosts dashboards as Grafana does (every panel query; range queries over
// the span at Grafana's step for it) alternately with the panels reading
// the recorded series and computing from the raw ones
// (board.Options.RawQueries), and reports the collector's CPU time and the
// wall time per refresh.
func dashboardCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench dashboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		services = fs.Int("services", 5, "services of generated traffic (each 6 routes, 2 methods, 2 codes, 12 latency buckets)")
		hosts    = fs.Int("hosts", 10, "hosts of generated CPU metrics (4 CPUs, 8 modes each)")
		span     = fs.Duration("span", 6*time.Hour, "generated history and dashboard time range (the dashboards' default is 6h)")
		runs     = fs.Int("runs", 10, "refreshes measured per variant and dashboard, alternating")
		out      = fs.String("out", "bench/DASHBOARDS.md", "Markdown report to write")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *services < 1 || *hosts < 1 || *runs < 1 || *span < 10*time.Minute {
		return fmt.Errorf("-services, -hosts and -runs must be at least 1, -span at least 10m: got -services=%d -hosts=%d -runs=%d -span=%s", *services, *hosts, *runs, *span)
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "telltale-bench-dashboard-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "telltale-collector")
	fmt.Fprintln(stderr, "bench: building the collector")
	if err := peer.Build(ctx, root, "./collector", bin); err != nil {
		return err
	}
	// The rules engine stays off: the recorded series are backfilled over
	// the whole span instead, so both variants read the same history.
	p, err := peer.Start(ctx, peer.Spec{Kind: peer.Telltale, Binary: bin, Dir: filepath.Join(work, "collector"),
		Args: []string{"-rules.dashboards=false", "-storage.out-of-order-window=" + (*span + time.Hour).String(), "-query.max-samples=500000000"}})
	if err != nil {
		return err
	}
	defer p.Stop()

	end := time.Now().Add(-time.Minute).Truncate(time.Minute)
	start := end.Add(-*span)
	c := &promClient{base: p.URL, http: &http.Client{Timeout: 10 * time.Minute}}
	fmt.Fprintf(stderr, "bench: importing %s of metrics of %d services and %d hosts\n", *span, *services, *hosts)
	n, err := importTraffic(ctx, c, *services, *hosts, start.Add(-2*time.Minute), end)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: %d samples imported; backfilling the recorded series\n", n)
	nrec, err := backfillRecordings(ctx, c, start, end)
	if err != nil {
		return err
	}

	rec, err := board.All(board.Options{})
	if err != nil {
		return err
	}
	raw, err := board.All(board.Options{RawQueries: true})
	if err != nil {
		return err
	}
	// Grafana's $__interval for the span on a 1200 px wide panel, and its
	// $__rate_interval: max(interval + scrape interval, 4 × scrape interval)
	// with the data source's 15s scrape interval.
	step := max((*span / 1200).Round(time.Second), 15*time.Second)
	rate := max(step+15*time.Second, time.Minute)
	vars := board.TestVars()
	vars["__interval"], vars["__rate_interval"], vars["__range"] = step.String(), rate.String(), span.String()
	vars["service"], vars["env"], vars["host"] = "svc0", "prod", ".+"

	rep := &dashboardReport{Command: "go run ./bench dashboard " + strings.Join(args, " "), Machine: report.DescribeMachine(),
		Samples: n, Recorded: nrec, Span: *span, Step: step, Rate: rate, Runs: *runs}
	for _, uid := range []string{board.UIDService, board.UIDHosts} {
		qr, err := panelQueries(rec, uid, vars)
		if err != nil {
			return err
		}
		qw, err := panelQueries(raw, uid, vars)
		if err != nil {
			return err
		}
		row := dashboardRow{UID: uid, Queries: len(qr)}
		for _, q := range qr {
			if q.recorded {
				row.Recorded++
			}
		}
		fmt.Fprintf(stderr, "bench: refreshing %s (%d panel queries, %d of them over recorded series) %d times each way\n", uid, len(qr), row.Recorded, *runs)
		type variant struct {
			qs     []panelQuery
			cpu    *[]float64
			wall   *[]float64
			points *int
		}
		vs := []variant{{qr, &row.RecCPU, &row.RecWall, &row.RecPoints}, {qw, &row.RawCPU, &row.RawWall, &row.RawPoints}}
		for range *runs {
			for _, v := range vs {
				cpu, wall, points, err := refresh(ctx, c, p, v.qs, start, end, step)
				if err != nil {
					return err
				}
				*v.cpu, *v.wall, *v.points = append(*v.cpu, cpu), append(*v.wall, wall), points
			}
			slices.Reverse(vs) // A B B A: neither goes first every time
		}
		// Both ways the panels must return the same data: a figure from a
		// recorded dashboard that shows less is no saving.
		if row.RecPoints != row.RawPoints || row.RecPoints == 0 {
			return fmt.Errorf("%s: the recorded panels returned %d points, the raw ones %d; want the same, more than 0", uid, row.RecPoints, row.RawPoints)
		}
		rep.Rows = append(rep.Rows, row)
	}
	// What the recorded series cost: one evaluation of every rule, as the
	// rules engine runs them every board.RulesInterval.
	var evals []panelQuery
	for _, r := range board.Recordings() {
		evals = append(evals, panelQuery{expr: r.Expr, instant: true})
	}
	for range *runs {
		cpu, _, _, err := refresh(ctx, c, p, evals, start, end, step)
		if err != nil {
			return err
		}
		rep.RuleCPU = append(rep.RuleCPU, cpu)
	}
	md := rep.markdown()
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stderr, md)
	return nil
}

// panelQuery is one panel target as Grafana sends it.
type panelQuery struct {
	expr     string
	instant  bool
	recorded bool // reads a recorded series
}

func panelQueries(boards []board.Board, uid string, vars map[string]string) ([]panelQuery, error) {
	qs, err := board.Queries(boards)
	if err != nil {
		return nil, err
	}
	var out []panelQuery
	for _, q := range qs {
		if q.Dashboard != uid || q.Kind != board.KindPanel {
			continue
		}
		e, err := board.Expand(q.Expr, vars)
		if err != nil {
			return nil, err
		}
		pq := panelQuery{expr: e, instant: q.Instant}
		for _, r := range board.Recordings() {
			pq.recorded = pq.recorded || strings.Contains(e, r.Record)
		}
		out = append(out, pq)
	}
	return out, nil
}

// refresh runs every query once, one after the other, and returns the
// collector's CPU seconds and the wall seconds it took, and the points
// returned.
func refresh(ctx context.Context, c *promClient, p *peer.Process, qs []panelQuery, start, end time.Time, step time.Duration) (cpu, wall float64, points int, err error) {
	u0, err := p.Usage()
	if err != nil {
		return 0, 0, 0, err
	}
	t0 := time.Now()
	for _, q := range qs {
		v := url.Values{"query": {q.expr}, "time": {unix(end)}}
		path := "/api/v1/query"
		if !q.instant {
			path = "/api/v1/query_range"
			v = url.Values{"query": {q.expr}, "start": {unix(start)}, "end": {unix(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
		}
		res, err := c.get(ctx, path, v)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%s: %w", q.expr, err)
		}
		for _, r := range res {
			points += max(len(r.Values), 1)
		}
	}
	wall = time.Since(t0).Seconds()
	u1, err := p.Usage()
	if err != nil {
		return 0, 0, 0, err
	}
	return u1.RunTime - u0.RunTime, wall, points, nil
}

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1e3, 'f', 3, 64) }

// importTraffic imports the generated metrics every 15 s from start to
// end, in order, and returns the samples sent.
func importTraffic(ctx context.Context, c *promClient, services, hosts int, start, end time.Time) (int, error) {
	les := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	routes := []string{"/", "/api/products", "/api/products/{id}", "/api/search", "/api/checkout", "/api/cart"}
	var b bytes.Buffer
	n := 0
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		err := c.post(ctx, "/api/v1/import/prometheus", b.Bytes())
		b.Reset()
		return err
	}
	for ts := start; !ts.After(end); ts = ts.Add(15 * time.Second) {
		sec := ts.Sub(start).Seconds()
		ms := ts.UnixMilli()
		for s := range services {
			for ri, route := range routes {
				for mi, method := range []string{"GET", "POST"} {
					for ci, code := range []string{"200", "500"} {
						rps := float64((s+1)*(ri+1)*(mi+1)) * (1 + 0.2*math.Sin(sec/900+float64(ri)))
						if ci == 1 {
							rps /= 50
						}
						count := math.Floor(rps * sec)
						lbl := fmt.Sprintf(`service="svc%d",env="prod",instance="svc%d-1",route=%q,method=%q,code=%q`, s, s, route, method, code)
						fmt.Fprintf(&b, "http_requests_total{%s} %g %d\n", lbl, count, ms)
						for li, le := range les {
							fmt.Fprintf(&b, "http_request_duration_seconds_bucket{%s,le=%q} %g %d\n", lbl, le, math.Floor(count*float64(li+1)/float64(len(les))), ms)
						}
						n += 1 + len(les)
					}
				}
			}
		}
		for h := range hosts {
			for cpu := range 4 {
				for mi, mode := range []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"} {
					fmt.Fprintf(&b, "node_cpu_seconds_total{job=\"node\",instance=\"host%d\",cpu=\"%d\",mode=%q} %g %d\n", h, cpu, mode, sec*float64(8-mi)/36*(1+0.05*float64(h)), ms)
					n++
				}
			}
		}
		if b.Len() > 4<<20 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}

// backfillRecordings writes each recording rule's value at every rule
// evaluation time (every board.RulesInterval) over [start, end]: its
// expression as a range query, imported under the rule's name.
func backfillRecordings(ctx context.Context, c *promClient, start, end time.Time) (int, error) {
	n := 0
	for _, r := range board.Recordings() {
		for from := start; from.Before(end); from = from.Add(time.Hour) {
			to := from.Add(time.Hour - board.RulesInterval)
			if to.After(end) {
				to = end
			}
			res, err := c.get(ctx, "/api/v1/query_range", url.Values{"query": {r.Expr}, "start": {unix(from)}, "end": {unix(to)},
				"step": {strconv.FormatFloat(board.RulesInterval.Seconds(), 'f', -1, 64)}})
			if err != nil {
				return n, fmt.Errorf("backfill %s: %w", r.Record, err)
			}
			var b bytes.Buffer
			for _, s := range res {
				keys := make([]string, 0, len(s.Metric))
				for k := range s.Metric {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				var lb []string
				for _, k := range keys {
					lb = append(lb, fmt.Sprintf("%s=%q", k, s.Metric[k]))
				}
				for _, v := range s.Values {
					t, _ := v[0].(float64)
					val, _ := v[1].(string)
					fmt.Fprintf(&b, "%s{%s} %s %d\n", r.Record, strings.Join(lb, ","), val, int64(math.Round(t*1000)))
					n++
				}
			}
			if err := c.post(ctx, "/api/v1/import/prometheus", b.Bytes()); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// promClient is the least Prometheus API client the command needs.
type promClient struct {
	base string
	http *http.Client
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

func (c *promClient) get(ctx context.Context, path string, v url.Values) ([]promSeries, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Status, Error string
		Data          struct {
			Result []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		return nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	return env.Data.Result, nil
}

func (c *promClient) post(ctx context.Context, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, msg)
	}
	return nil
}

// dashboardReport is the result of a dashboard run.
type dashboardReport struct {
	Command           string
	Machine           report.Machine
	Samples, Recorded int
	Span, Step, Rate  time.Duration
	Runs              int
	Rows              []dashboardRow
	RuleCPU           []float64 // collector CPU seconds of one evaluation of every rule
}

type dashboardRow struct {
	UID                  string
	Queries, Recorded    int
	RecCPU, RawCPU       []float64 // collector CPU seconds per refresh
	RecWall, RawWall     []float64
	RecPoints, RawPoints int
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *dashboardReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Dashboard refresh with and without the dashboards' recording rules\n\n")
	fmt.Fprintf(&b, "`%s` on %s.\n\n", strings.TrimSpace(r.Command), r.Machine)
	fmt.Fprintf(&b, "A collector holds %s of generated metrics (%d samples: the instrument library's request counters and latency histograms, the agent's CPU counters) and the dashboards' recorded series backfilled over the same span (%d samples, one per rule evaluation every %s). "+
		"A refresh runs every panel query of the dashboard one after the other, as Grafana asks them: range queries over %s at a %s step ($__interval for a 1200 px panel), $__rate_interval %s, stats at the end. "+
		"*Recorded* is the dashboard as generated (the heaviest panels read the recorded series); *raw* is the same dashboard computing from the raw series (`board.Options{RawQueries: true}`, what the console does). "+
		"The two alternate, %d refreshes each; CPU is the collector's on-CPU time over the refresh (schedstat of all its threads), so it holds on a busy machine where wall time does not. Medians.\n\n",
		r.Span, r.Samples, r.Recorded, board.RulesInterval, r.Span, r.Step, r.Rate, r.Runs)
	fmt.Fprintf(&b, "| dashboard | panel queries (recorded) | CPU-ms raw | CPU-ms recorded | CPU raw / recorded | wall-ms raw | wall-ms recorded | points (both) |\n")
	fmt.Fprintf(&b, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, row := range r.Rows {
		rc, wc := median(row.RecCPU)*1e3, median(row.RawCPU)*1e3
		fmt.Fprintf(&b, "| %s | %d (%d) | %.0f | %.0f | %.1f× | %.0f | %.0f | %d / %d |\n", row.UID, row.Queries, row.Recorded,
			wc, rc, wc/math.Max(rc, 1e-9), median(row.RawWall)*1e3, median(row.RecWall)*1e3, row.RawPoints, row.RecPoints)
	}
	saved := 0.0 // CPU-ms one refresh of every dashboard above saves
	for _, row := range r.Rows {
		saved += (median(row.RawCPU) - median(row.RecCPU)) * 1e3
	}
	rule := median(r.RuleCPU) * 1e3
	fmt.Fprintf(&b, "\nThe recorded series cost one evaluation of the %d rules every %s: %.0f CPU-ms here (median of %d; on a running collector `prometheus_rule_group_last_duration_seconds{rule_group=~\".*telltale-dashboards\"}`). ",
		len(board.Recordings()), board.RulesInterval, rule, len(r.RuleCPU))
	if saved > 0 && rule > 0 {
		fmt.Fprintf(&b, "One refresh of both dashboards saves %.0f CPU-ms, so the rules pay for themselves once both are refreshed at least once every %s (one viewer at the dashboards' 30 s refresh: %.0f× what they cost).\n",
			saved, (time.Duration(saved/rule) * board.RulesInterval).Round(time.Second), saved/rule)
	} else {
		b.WriteString("\n")
	}
	return b.String()
}
