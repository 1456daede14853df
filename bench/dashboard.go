package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/bench/peer"
	"github.com/telltale-dev/telltale/bench/refresh"
	"github.com/telltale-dev/telltale/bench/report"
	"github.com/telltale-dev/telltale/bench/scenario"
	"github.com/telltale-dev/telltale/dashboards/board"
)

// dashboardCommand is `go run ./bench dashboard`: what the dashboards'
// recording rules save on a dashboard refresh. It loads a collector with
// -span of a generated fleet (load.Fleet: the instrument library's and the
// agent's names, as the dashboards read them), backfills the dashboards'
// recorded series over the same span (refresh.Backfill: each point the
// rule's expression at that time, as the collector's rules engine records
// it), then refreshes the Service and Hosts dashboards as Grafana does
// (refresh.Dashboard: variables, annotations, every panel query; range
// queries over the span at Grafana's step for it), alternately with the
// panels reading the recorded series and computing from the raw ones
// (board.Options.RawQueries), with nocache=1 so every refresh evaluates,
// and reports the collector's CPU time and the wall time per refresh.
// `go run ./bench run -scenarios refresh` measures the same two ways live:
// with the result cache, while the fleet keeps sending, against the peers.
func dashboardCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench dashboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		services  = fs.Int("services", 5, "services of the generated fleet (each 6 routes, 2 methods, 2 codes, 12 latency buckets per instance)")
		instances = fs.Int("instances", 1, "instances of each service")
		hosts     = fs.Int("hosts", 10, "hosts of the generated fleet (4 CPUs, 8 modes, memory, disks, filesystems, network each)")
		span      = fs.Duration("span", 6*time.Hour, "generated history and dashboard time range (the dashboards' default is 30m)")
		runs      = fs.Int("runs", 10, "refreshes measured per variant and dashboard, alternating")
		out       = fs.String("out", "bench/DASHBOARDS.md", "Markdown report to write")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *services < 1 || *instances < 1 || *hosts < 1 || *runs < 1 || *span < 10*time.Minute {
		return fmt.Errorf("-services, -instances, -hosts and -runs must be at least 1, -span at least 10m: got -services=%d -instances=%d -hosts=%d -runs=%d -span=%s",
			*services, *instances, *hosts, *runs, *span)
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
	// Two minutes before the range, so the first step has a rate window.
	fleet := load.NewFleet(load.FleetSize{Services: *services, Instances: *instances, Hosts: *hosts}, start.Add(-2*time.Minute), 10*time.Second)
	steps := fleet.Step(end) + 1
	fmt.Fprintf(stderr, "bench: sending %s of a fleet of %d series (%d services × %d instances, %d hosts)\n", *span+2*time.Minute, fleet.Len(), *services, *instances, *hosts)
	streams, err := load.Plan{Set: fleet, Senders: 4, Steps: steps, PerRequest: 2000}.Streams()
	if err != nil {
		return err
	}
	st, err := load.Send(ctx, load.Target{URL: p.WriteURL(), Format: load.RemoteWrite}, streams)
	if err != nil {
		return err
	}
	qc := &load.QueryClient{Base: p.URL, Params: p.QueryParams()} // nocache=1: every refresh evaluates
	fmt.Fprintf(stderr, "bench: %d samples sent; backfilling the recorded series\n", st.Samples)
	nrec, err := refresh.Backfill(ctx, qc, p.TextURL(), start, end)
	if err != nil {
		return err
	}

	opts := refresh.Options{Range: *span}
	step := refresh.Step(*span, 0, 0)
	rep := &dashboardReport{Command: "go run ./bench dashboard " + strings.Join(args, " "), Machine: report.DescribeMachine(),
		Series: fleet.Len(), Samples: int(st.Samples), Recorded: nrec, Span: *span, Step: step, Rate: refresh.Vars(opts, step)["__rate_interval"], Runs: *runs}
	uids := []string{board.UIDService, board.UIDHosts}
	rec, err := refresh.Dashboards(opts, uids...)
	if err != nil {
		return err
	}
	opts.Raw = true
	raw, err := refresh.Dashboards(opts, uids...)
	if err != nil {
		return err
	}
	for i := range rec { // in the boards' order, which raw shares; not uids'
		row := dashboardRow{UID: rec[i].UID}
		row.Queries, row.Recorded = rec[i].Queries()
		fmt.Fprintf(stderr, "bench: refreshing %s (%d requests, %d of them over recorded series) %d times each way\n", row.UID, row.Queries, row.Recorded, *runs)
		type variant struct {
			d      *refresh.Dashboard
			cpu    *[]float64
			wall   *[]float64
			points *int
		}
		vs := []variant{{rec[i], &row.RecCPU, &row.RecWall, &row.RecPoints}, {raw[i], &row.RawCPU, &row.RawWall, &row.RawPoints}}
		for range *runs {
			for _, v := range vs {
				u0, err := p.Usage()
				if err != nil {
					return err
				}
				st, err := v.d.Run(ctx, qc, end)
				if err != nil {
					return err
				}
				u1, err := p.Usage()
				if err != nil {
					return err
				}
				*v.cpu, *v.wall, *v.points = append(*v.cpu, u1.RunTime-u0.RunTime), append(*v.wall, st.Wall.Seconds()), st.Points
			}
			slices.Reverse(vs) // A B B A: neither goes first every time
		}
		// Both ways the panels must return the same data: a figure from a
		// recorded dashboard that shows less is no saving.
		if row.RecPoints != row.RawPoints || row.RecPoints == 0 {
			return fmt.Errorf("%s: the recorded panels returned %d points, the raw ones %d; want the same, more than 0", row.UID, row.RecPoints, row.RawPoints)
		}
		row.Values = rec[i].Values()
		rep.Rows = append(rep.Rows, row)
	}
	// What the recorded series cost: one evaluation of every rule, as the
	// rules engine runs them every board.RulesInterval.
	for range *runs {
		u0, err := p.Usage()
		if err != nil {
			return err
		}
		for _, r := range board.Recordings() {
			if _, _, err := qc.Instant(ctx, r.Expr, end); err != nil {
				return err
			}
		}
		u1, err := p.Usage()
		if err != nil {
			return err
		}
		rep.RuleCPU = append(rep.RuleCPU, u1.RunTime-u0.RunTime)
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

// dashboardReport is the result of a dashboard run.
type dashboardReport struct {
	Command                   string
	Machine                   report.Machine
	Series, Samples, Recorded int
	Span, Step                time.Duration
	Rate                      string // $__rate_interval
	Runs                      int
	Rows                      []dashboardRow
	RuleCPU                   []float64 // collector CPU seconds of one evaluation of every rule
}

type dashboardRow struct {
	UID                  string
	Values               string // the variables' values
	Queries, Recorded    int
	RecCPU, RawCPU       []float64 // collector CPU seconds per refresh
	RecWall, RawWall     []float64
	RecPoints, RawPoints int
}

// median is the median of v.
func median(v []float64) float64 { return scenario.Quantile(v, 0.5) }

func (r *dashboardReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Dashboard refresh with and without the dashboards' recording rules\n\n")
	fmt.Fprintf(&b, "`%s` on %s.\n\n", strings.TrimSpace(r.Command), r.Machine)
	fmt.Fprintf(&b, "A collector holds %s of a generated fleet (%d series, %d samples: `load.Fleet`, the instrument library's request counters and latency histograms, runtime metrics, the agent's node_exporter names) and the dashboards' recorded series backfilled over the same span (%d samples, one per rule evaluation every %s). "+
		"A refresh asks what Grafana asks, one request after another (`bench/refresh`): the variables' label-values lookups, the annotations and every panel query, range queries over %s at a %s step (Grafana's $__interval for a 1200 px panel), $__rate_interval %s, instant queries for stat and table panels; all with `nocache=1`, so every refresh evaluates. "+
		"*Recorded* is the dashboard as generated (the heaviest panels read the recorded series); *raw* is the same dashboard computing from the raw series (`board.Options{RawQueries: true}`, what the console does). "+
		"The two alternate, %d refreshes each; CPU is the collector's on-CPU time over the refresh (schedstat of all its threads), so it holds on a busy machine where wall time does not. Medians. "+
		"`go run ./bench run -scenarios refresh` measures the same two ways with the result cache on while the fleet keeps sending, against VictoriaMetrics and Prometheus (RESULTS.md).\n\n",
		r.Span, r.Series, r.Samples, r.Recorded, board.RulesInterval, r.Span, r.Step, r.Rate, r.Runs)
	fmt.Fprintf(&b, "| dashboard | variables | requests (recorded) | CPU-ms raw | CPU-ms recorded | CPU raw / recorded | wall-ms raw | wall-ms recorded | points (both) |\n")
	fmt.Fprintf(&b, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, row := range r.Rows {
		rc, wc := median(row.RecCPU)*1e3, median(row.RawCPU)*1e3
		fmt.Fprintf(&b, "| %s | `%s` | %d (%d) | %.0f | %.0f | %.1f× | %.0f | %.0f | %d / %d |\n", row.UID, row.Values, row.Queries, row.Recorded,
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
