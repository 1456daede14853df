package scenario

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/bench/refresh"
	"github.com/telltale-dev/telltale/dashboards/board"
	"github.com/telltale-dev/telltale/retry"
)

// refreshDashboards are the provisioned dashboards a refresh covers, with
// the short names of their figures.
var refreshDashboards = []struct{ uid, short, title string }{
	{board.UIDHosts, "hosts", "Hosts"},
	{board.UIDService, "service", "Service"},
	{board.UIDDeploys, "deploys", "Deploys"},
	{board.UIDSelf, "self", "Telltale (self)"},
}

// refreshScenario is a full refresh of every provisioned dashboard over a
// fleet's series while the fleet keeps sending: once cold, then every
// RefreshEvery for RefreshFor, with the result caches on. With rules it is
// `refresh`: Telltale as shipped, evaluating the dashboards' recording
// rules, its dashboards reading the recorded series. Without, it is
// `refresh-norules`: Telltale with -rules.dashboards=false and the
// dashboards computing from the raw series, compared with the same peer
// runs. The peers always get the raw dashboards: neither evaluates
// Telltale's rules.
func refreshScenario(sz Sizes, rules bool, peers []peer.Kind) Scenario {
	name, title := "refresh", "Dashboard refresh while ingesting, Telltale with its dashboards' recording rules (the default)"
	if !rules {
		name, title = "refresh-norules", "Dashboard refresh while ingesting, Telltale without recording rules (-rules.dashboards=false)"
	}
	history := sz.RefreshRange + 10*time.Minute
	step := refresh.Step(sz.RefreshRange, 0, 0)
	opts := refresh.Options{Range: sz.RefreshRange}
	var what strings.Builder
	fmt.Fprintf(&what, "A fleet of %d series shaped like what the provisioned dashboards read (%d services × %d instances of the instrument library's "+
		"request counters and 12-bucket latency histograms by route, method and code, runtime gauges, build info and switches; %d hosts of the agent's "+
		"node_exporter names and its own counters; a collector's self metrics) is loaded for the last %v at 10 s resolution, "+
		"the same series and values for every system, the timestamps those of each run's present. Then the fleet keeps sending: every 10 s one "+
		"sample per series at the current time (remote write, as agents and apps push). "+
		"A **refresh** asks everything Grafana asks when it refreshes each provisioned dashboard (%s) with the dashboards' default range of %v: "+
		"the label-values lookup of every variable (the first value of a single-value variable, All for a multi-value one, as Grafana picks them), "+
		"every PromQL annotation and panel target with the variables expanded: range queries at Grafana's step (%v for %v; $__rate_interval %s), "+
		"aligned to it as Grafana aligns them, and instant queries for stat and table panels; one request after another. "+
		"One cold refresh right after the load, then one every %v for %v (%d refreshes): the result caches are on (Telltale's default flags, "+
		"VictoriaMetrics' defaults; Prometheus has none). "+
		"*Wall ms* is the time of a whole refresh (all dashboards) at the client; *server CPU-ms* the server process' on-CPU time over it "+
		"(/proc/<pid>/task/*/schedstat), which includes whatever it does at the same time (the ingest, Telltale's rule evaluations); "+
		"*CPU-s over the window* is all of it from the cold refresh to the last. "+
		"Every sample sent, history and live, is counted back at the end.",
		sz.Fleet.Series(), sz.Fleet.Services, sz.Fleet.Instances, sz.Fleet.Hosts, refresh.Duration(history), dashboardTitles(), refresh.Duration(sz.RefreshRange),
		refresh.Duration(step), refresh.Duration(sz.RefreshRange), refresh.Vars(opts, step)["__rate_interval"], refresh.Duration(sz.RefreshEvery),
		refresh.Duration(sz.RefreshFor), int(sz.RefreshFor/sz.RefreshEvery))
	if rules {
		fmt.Fprintf(&what, "\n\nTelltale runs as shipped (its default flags: range queries in time slices over every core, `-query.parallel`, and the result cache, `-query.cache-size`), with its built-in recording rules for the dashboards (`-rules.dashboards`, every %v) and the dashboards as generated, whose "+
			"heaviest panels read the recorded series; the recorded series are backfilled over the loaded history first (each rule's expression as a range query at "+
			"its interval, imported), as if the collector had been running. VictoriaMetrics and Prometheus get the dashboards computing from the raw series "+
			"(`board.Options{RawQueries: true}`): they do not evaluate Telltale's rules (Prometheus could load `dashboards/rules/`; VictoriaMetrics would need vmalert).",
			refresh.Duration(board.RulesInterval))
	} else {
		what.WriteString("\n\nTelltale runs with `-rules.dashboards=false` and the dashboards computing from the raw series, the same queries as the peers. " +
			"The peers' figures are those of their runs in `refresh` (the same work; they are not run twice).")
	}
	metrics := []Metric{
		{Key: "cold_ms", Label: "cold refresh: wall ms", Lower: true},
		{Key: "cold_cpu_ms", Label: "cold refresh: server CPU-ms", Lower: true},
		{Key: "warm_p50_ms", Label: fmt.Sprintf("refresh every %s: median wall ms", refresh.Duration(sz.RefreshEvery)), Lower: true},
		{Key: "warm_p90_ms", Label: fmt.Sprintf("refresh every %s: p90 wall ms", refresh.Duration(sz.RefreshEvery)), Lower: true},
		{Key: "warm_cpu_ms", Label: fmt.Sprintf("refresh every %s: median server CPU-ms", refresh.Duration(sz.RefreshEvery)), Lower: true},
	}
	for _, d := range refreshDashboards {
		metrics = append(metrics, Metric{Key: "warm_cpu_ms_" + d.short, Label: fmt.Sprintf("%s dashboard alone: median server CPU-ms per refresh", d.title), Lower: true})
	}
	metrics = append(metrics, Metric{Key: "window_cpu_s", Label: fmt.Sprintf("server CPU-s over the %s (refreshes, ingest, rules)", refresh.Duration(sz.RefreshFor)), Lower: true})
	s := Scenario{Name: name, Group: "refresh", Title: title, What: what.String(), Metrics: metrics, Subject: peer.Telltale, Peers: peers}
	if !rules {
		s.PeersFrom = "refresh"
	}
	s.run = func(ctx context.Context, env *Env, k peer.Kind) (Result, error) {
		var r Result
		withRules := rules && k == peer.Telltale
		steps := int(history / (10 * time.Second))
		start := time.Now().Truncate(10 * time.Second).Add(-time.Duration(steps-1) * 10 * time.Second)
		fleet := load.NewFleet(sz.Fleet, start, 10*time.Second)
		streams, err := load.Plan{Set: fleet, Senders: env.Sizes.Senders, Steps: steps, PerRequest: env.Sizes.PerRequest}.Streams()
		if err != nil {
			return r, err
		}
		var args []string
		if withRules {
			args = append(args, "-rules.dashboards=true")
		}
		p, err := env.load(ctx, name, k, [][]load.Stream{streams}, &r, args...)
		if err != nil {
			return r, err
		}
		defer p.Stop()
		// VictoriaMetrics makes new series searchable a moment after it
		// takes them, and a query in that moment leaves them out of its
		// series-lookup cache for good; a system running for a while has
		// long registered its series, so the history is flushed first.
		if err := p.Flush(ctx); err != nil {
			return r, err
		}
		feed := &liveFeed{fleet: fleet, url: p.WriteURL(), senders: env.Sizes.Senders, per: env.Sizes.PerRequest, next: steps,
			stop: make(chan struct{}), done: make(chan error, 1)}
		go func() { feed.done <- feed.run(ctx) }()
		stopped := false
		stopFeed := func() error {
			if stopped {
				return nil
			}
			stopped = true
			close(feed.stop)
			return <-feed.done
		}
		defer stopFeed()
		if withRules {
			// The recorded series over the history, as a collector that had
			// been running would hold them (nocache: the rules' expressions
			// are no panel's, and stay out of the result cache).
			qc := &load.QueryClient{Base: p.URL, Params: p.QueryParams()}
			n, err := refresh.Backfill(ctx, qc, p.TextURL(), time.UnixMilli(fleet.Time(0)), time.UnixMilli(fleet.Time(steps-1)))
			if err != nil {
				return r, err
			}
			r.Notes = append(r.Notes, fmt.Sprintf("recorded series backfilled over the history: %d samples (not counted in sent/stored)", n))
		}
		if _, err := waitIdle(ctx, p, 20*time.Second); err != nil {
			return r, err
		}
		dashboards, err := refresh.Dashboards(refresh.Options{Range: sz.RefreshRange, Raw: !withRules})
		if err != nil {
			return r, err
		}
		qc := &load.QueryClient{Base: p.URL} // the caches on, as Grafana asks
		u0, err := p.Usage()
		if err != nil {
			return r, err
		}
		t0 := time.Now()
		cold, err := refreshAll(ctx, qc, p, dashboards)
		if err != nil {
			return r, fmt.Errorf("cold refresh: %w", err)
		}
		var warm []refreshed
		late := 0
		for i := 1; ; i++ {
			at := t0.Add(time.Duration(i) * sz.RefreshEvery)
			if at.Sub(t0) > sz.RefreshFor {
				break
			}
			if time.Now().After(at) {
				late++ // the previous refresh overran: this one starts at once
			} else if err := retry.Sleep(ctx, time.Until(at)); err != nil {
				return r, err
			}
			w, err := refreshAll(ctx, qc, p, dashboards)
			if err != nil {
				return r, fmt.Errorf("refresh %d: %w", i, err)
			}
			warm = append(warm, w)
		}
		u1, err := p.Usage()
		if err != nil {
			return r, err
		}
		if err := stopFeed(); err != nil {
			return r, fmt.Errorf("live ingest: %w", err)
		}
		r.Sent += feed.sent
		r.Values = map[string]float64{
			"cold_ms":      cold.wall * 1e3,
			"cold_cpu_ms":  cold.cpu * 1e3,
			"window_cpu_s": u1.RunTime - u0.RunTime,
		}
		var walls, cpus []float64
		per := map[string][]float64{}
		for _, w := range warm {
			walls, cpus = append(walls, w.wall*1e3), append(cpus, w.cpu*1e3)
			for d, c := range w.perCPU {
				per[d] = append(per[d], c*1e3)
			}
		}
		if len(warm) > 0 {
			r.Values["warm_p50_ms"], r.Values["warm_p90_ms"] = Quantile(walls, 0.5), Quantile(walls, 0.9)
			r.Values["warm_cpu_ms"] = Quantile(cpus, 0.5)
			for _, d := range refreshDashboards {
				r.Values["warm_cpu_ms_"+d.short] = Quantile(per[d.uid], 0.5)
			}
		}
		var vals []string
		for _, d := range dashboards {
			if v := d.Values(); v != "" {
				vals = append(vals, v)
			}
		}
		r.Notes = append(r.Notes, fmt.Sprintf("a refresh: %d requests; the cold one returned %d series, %d points; variables %s",
			cold.stats.Requests, cold.stats.Series, cold.stats.Points, strings.Join(vals, ", ")))
		r.Notes = append(r.Notes, fmt.Sprintf("%d refreshes after the cold one (%d started late: the one before overran), %d live samples", len(warm), late, feed.sent))
		if n := cacheNote(ctx, p); n != "" {
			r.Notes = append(r.Notes, n)
		}
		return r, verify(ctx, p, fleet, feed.next, &r)
	}
	return s
}

func dashboardTitles() string {
	var t []string
	for _, d := range refreshDashboards {
		t = append(t, d.title)
	}
	return strings.Join(t, ", ")
}

// refreshed is one refresh of every dashboard.
type refreshed struct {
	wall, cpu float64            // seconds
	perCPU    map[string]float64 // CPU seconds by dashboard uid
	stats     refresh.Stats
}

// refreshAll refreshes each dashboard once, one after another, and
// measures the server's CPU time around each.
func refreshAll(ctx context.Context, qc *load.QueryClient, p *peer.Process, ds []*refresh.Dashboard) (refreshed, error) {
	out := refreshed{perCPU: map[string]float64{}}
	u, err := p.Usage()
	if err != nil {
		return out, err
	}
	for _, d := range ds {
		st, err := d.Run(ctx, qc, time.Now())
		if err != nil {
			return out, err
		}
		v, err := p.Usage()
		if err != nil {
			return out, err
		}
		out.perCPU[d.UID] = v.RunTime - u.RunTime
		out.cpu += v.RunTime - u.RunTime
		out.wall += st.Wall.Seconds()
		out.stats.Add(st)
		u = v
	}
	return out, nil
}

// cacheNote reads what the system's result cache did from its /metrics.
func cacheNote(ctx context.Context, p *peer.Process) string {
	var b strings.Builder
	if err := p.Get(ctx, "/metrics", &b); err != nil {
		return ""
	}
	text := []byte(b.String())
	switch p.Kind {
	case peer.Telltale:
		hit, ok1 := metricValue(text, `telltale_query_cache_steps_total{source="cache"}`)
		miss, ok2 := metricValue(text, `telltale_query_cache_steps_total{source="computed"}`)
		inv, _ := metricValue(text, `telltale_query_cache_invalidations_total{reason="late_write"}`)
		if ok1 && ok2 {
			return fmt.Sprintf("result cache over the run: %.0f steps from the cache, %.0f computed (telltale_query_cache_steps_total), %.0f late-write invalidations", hit, miss, inv)
		}
	case peer.VictoriaMetrics:
		req, ok1 := metricValue(text, `vm_cache_requests_total{type="promql/rollupResult"}`)
		miss, ok2 := metricValue(text, `vm_cache_misses_total{type="promql/rollupResult"}`)
		if ok1 && ok2 {
			return fmt.Sprintf("rollup result cache over the run: %.0f requests, %.0f misses (vm_cache_requests_total, vm_cache_misses_total)", req, miss)
		}
	}
	return ""
}

// liveFeed sends one step of the fleet, one sample per series, as soon as
// the step's time has come, until stopped: what agents and apps keep
// pushing while the dashboards refresh.
type liveFeed struct {
	fleet        *load.Fleet
	url          string
	senders, per int
	next         int   // the next step to send; after run, one past the last sent
	sent         int64 // samples delivered
	stop         chan struct{}
	done         chan error
}

// run sends steps until stop is closed; a step once begun is sent whole,
// so what was sent can be counted back exactly. next and sent are for the
// caller to read after done.
func (f *liveFeed) run(ctx context.Context) error {
	client := load.NewClient(f.senders)
	for {
		due := time.UnixMilli(f.fleet.Time(f.next))
		select {
		case <-f.stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(due)):
		}
		streams, err := load.Plan{Set: f.fleet, Senders: f.senders, FromStep: f.next, Steps: 1, PerRequest: f.per}.Streams()
		if err != nil {
			return err
		}
		st, err := load.Send(ctx, load.Target{URL: f.url, Format: load.RemoteWrite, Client: client}, streams)
		f.sent += st.Samples
		if err != nil {
			return fmt.Errorf("step %d: %w", f.next, err)
		}
		f.next++
	}
}
