package board

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
)

func mustAll(t testing.TB) []Board {
	t.Helper()
	bs, err := All(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

func mustQueries(t testing.TB) []Query {
	t.Helper()
	qs, err := Queries(mustAll(t))
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

var promParser = parser.NewParser(parser.Options{})

// Every panel target, annotation and variable query is valid PromQL once
// Grafana's variables are substituted, with several variable values a
// user can pick (one host, several hosts joined by Grafana, All).
func TestQueriesParseAsPromQL(t *testing.T) {
	qs := mustQueries(t)
	if len(qs) < 60 {
		t.Fatalf("got %d queries; want the four dashboards' 60 or more", len(qs))
	}
	variants := []map[string]string{TestVars(), TestVars(), TestVars()}
	for k, v := range map[string]string{"host": "web-1.example.com:9100", "service": "demo", "env": "dev", "route": "GET /api/v1/items"} {
		variants[1][k] = v
	}
	for k, v := range map[string]string{"host": "(web-1|web-2)", "service": "(demo|shop)", "env": "(dev|prod)", "route": "(/a|/b/{id})",
		"__rate_interval": "40s", "__interval": "15s", "__range": "86400s"} {
		variants[2][k] = v
	}
	for _, q := range qs {
		for i, vars := range variants {
			expr, err := Expand(q.Expr, vars)
			if err != nil {
				t.Errorf("%s: %v", q, err)
				continue
			}
			if q.Kind == KindVariable {
				if _, err := promParser.ParseMetricSelector(expr); err != nil {
					t.Errorf("%s (vars %d): selector %q does not parse: %v", q, i, expr, err)
				}
				continue
			}
			if _, err := promParser.ParseExpr(expr); err != nil {
				t.Errorf("%s (vars %d): %q does not parse: %v", q, i, expr, err)
			}
		}
	}
}

// metricNames lists the metric names an expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promParser.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// The dashboards cover the metrics the agent, the instrument library and
// the collector emit, under their exact names.
func TestDashboardsUseTheEmittedMetrics(t *testing.T) {
	used := map[string]map[string]bool{}
	for _, q := range mustQueries(t) {
		if used[q.Dashboard] == nil {
			used[q.Dashboard] = map[string]bool{}
		}
		expr, err := Expand(q.Expr, TestVars())
		if err != nil {
			t.Fatal(err)
		}
		if q.Kind == KindVariable {
			m, err := promParser.ParseMetricSelector(expr)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range m {
				if l.Name == "__name__" {
					used[q.Dashboard][l.Value] = true
				}
			}
			continue
		}
		for _, n := range metricNames(t, expr) {
			used[q.Dashboard][n] = true
		}
	}
	want := map[string][]string{
		UIDHosts: {"node_cpu_seconds_total", "node_load1", "node_load5", "node_load15", "node_memory_MemTotal_bytes",
			"node_memory_MemAvailable_bytes", "node_memory_SwapTotal_bytes", "node_memory_SwapFree_bytes",
			"node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_disk_io_time_seconds_total",
			"node_filesystem_size_bytes", "node_filesystem_avail_bytes", "node_network_receive_bytes_total",
			"node_network_transmit_bytes_total", "node_procs_running", "node_context_switches_total",
			"node_boot_time_seconds", "node_uname_info", "telltale_deploy_info"},
		UIDService: {"http_requests_total", "http_request_duration_seconds_bucket", "http_requests_in_flight",
			"telltale_build_info", "go_goroutines", "process_resident_memory_bytes", "telltale_switch_on", "telltale_deploy_info"},
		UIDDeploys: {"telltale_deploys_total", "telltale_deploy_info", "telltale_build_info"},
		UIDSelf: {"telltale_ingest_samples_total", "telltale_ingest_rejected_total", "telltale_ingest_failed_requests_total",
			"telltale_query_request_duration_seconds", "telltale_storage_head_series", "telltale_tail_clients",
			"telltale_agent_spool_bytes", "telltale_agent_spool_dropped_total", "telltale_agent_samples_sent_total",
			"telltale_agent_send_retries_total", "telltale_deploy_info"},
	}
	for uid, names := range want {
		for _, n := range names {
			if !used[uid][n] {
				t.Errorf("dashboard %s does not query %s", uid, n)
			}
		}
	}
}

func isDatasourceVar(ref *string) bool { return ref != nil && *ref == "${datasource}" }

// Shared invariants of every dashboard: uid, data source variable used
// everywhere, both deploy annotations on, last deploy at the top, unique
// panel ids, a grid that fits.
func TestDashboardInvariants(t *testing.T) {
	bs := mustAll(t)
	var uids []string
	for _, b := range bs {
		uids = append(uids, b.UID)
		t.Run(b.UID, func(t *testing.T) { checkDashboard(t, b) })
	}
	if want := []string{UIDHosts, UIDService, UIDDeploys, UIDSelf}; !slices.Equal(uids, want) {
		t.Fatalf("got uids %v; want %v", uids, want)
	}
}

func checkDashboard(t *testing.T, b Board) {
	d := b.Dashboard
	// Grafana 11.0-12.1 do not know schemaVersion 42, the SDK's; see
	// SchemaVersion for why 39 loads unchanged in 11.x and 12.x.
	if d.SchemaVersion != 39 {
		t.Errorf("schemaVersion %d; want 39, which Grafana 11.0 through 12.x all load", d.SchemaVersion)
	}
	if d.Time == nil || d.Time.From != "now-30m" || d.Time.To != "now" {
		t.Errorf("default time range %+v; want now-30m to now, where a fresh install's data is more than a sliver", d.Time)
	}
	if d.Uid == nil || *d.Uid != b.UID {
		t.Errorf("got dashboard uid %v; want %s", d.Uid, b.UID)
	}
	if d.Title == nil || *d.Title != b.Title {
		t.Errorf("got title %v; want %s", d.Title, b.Title)
	}

	// The datasource variable comes first, is of type prometheus and
	// defaults to Telltale.
	if len(d.Templating.List) == 0 {
		t.Fatal("no variables; want the datasource variable first")
	}
	ds := d.Templating.List[0]
	if ds.Type != dashboard.VariableTypeDatasource || ds.Name != "datasource" || ds.Query == nil || ds.Query.String == nil || *ds.Query.String != "prometheus" {
		t.Errorf("first variable is %s %q; want datasource variable \"datasource\" of type prometheus", ds.Type, ds.Name)
	}
	if ds.Current == nil || ds.Current.Value.String == nil || *ds.Current.Value.String != DatasourceUID {
		t.Errorf("datasource variable default is %+v; want %q", ds.Current, DatasourceUID)
	}
	for _, v := range d.Templating.List {
		if v.Type == dashboard.VariableTypeQuery && (v.Datasource == nil || !isDatasourceVar(v.Datasource.Uid)) {
			t.Errorf("variable %s does not use ${datasource}", v.Name)
		}
	}

	// Both deploy annotations, enabled; the PromQL one on ${datasource}
	// with the value as time; the Grafana one filtered by tag deploy.
	var promAnn, grafAnn *dashboard.AnnotationQuery
	for i, a := range d.Annotations.List {
		switch {
		case a.Expr != nil:
			promAnn = &d.Annotations.List[i]
		case a.Datasource != nil && a.Datasource.Uid != nil && *a.Datasource.Uid == "-- Grafana --":
			grafAnn = &d.Annotations.List[i]
		}
	}
	if promAnn == nil {
		t.Error("no PromQL deploy annotation")
	} else {
		if !promAnn.Enable || !isDatasourceVar(promAnn.Datasource.Uid) {
			t.Errorf("PromQL deploy annotation: enable=%v datasource=%v; want enabled on ${datasource}", promAnn.Enable, promAnn.Datasource.Uid)
		}
		if promAnn.UseValueForTime == nil || !*promAnn.UseValueForTime {
			t.Error("PromQL deploy annotation does not use the series value as time")
		}
		if !strings.Contains(*promAnn.Expr, DeployInfoMetric) {
			t.Errorf("PromQL deploy annotation %q does not query %s", *promAnn.Expr, DeployInfoMetric)
		}
		if promAnn.TitleFormat == nil || !strings.Contains(*promAnn.TitleFormat, "{{who}}") || !strings.Contains(*promAnn.TitleFormat, "{{version}}") {
			t.Errorf("PromQL deploy annotation title %v; want who and version in it", promAnn.TitleFormat)
		}
		if promAnn.TagKeys == nil || *promAnn.TagKeys != "service,env" {
			t.Errorf("PromQL deploy annotation tag keys %v; want service,env", promAnn.TagKeys)
		}
	}
	if grafAnn == nil {
		t.Error("no Grafana-annotations deploy query")
	} else {
		tgt, _ := grafAnn.Target.(variants.UnknownDataquery)
		tags, _ := tgt["tags"].([]string)
		if !grafAnn.Enable || tgt["type"] != "tags" || len(tags) == 0 || tags[0] != DeployTag {
			t.Errorf("Grafana deploy annotation: enable=%v target=%v; want enabled, type tags, tags starting with %s", grafAnn.Enable, tgt, DeployTag)
		}
		for _, tag := range tags {
			expanded, err := Expand(tag, TestVars())
			if err != nil {
				t.Errorf("Grafana deploy annotation tag %q: %v", tag, err)
			}
			if name, _, ok := strings.Cut(tag, ":"); ok && name != "service" && name != "env" {
				t.Errorf("Grafana deploy annotation tag %q (%s): want deploy, service:<service> or env:<env>, the tags the collector writes", tag, expanded)
			}
		}
	}

	// The last deploy sits at the top left.
	panels := Panels(d)
	if len(panels) < 3 {
		t.Fatalf("got %d panels; want the last deploy, the deploy log and content", len(panels))
	}
	top := panels[0]
	if top.Type != "table" || top.GridPos == nil || top.GridPos.X != 0 || top.GridPos.Y != 0 || *top.Title != "Last deploy" {
		t.Errorf("first panel is %s %q at %+v; want the Last deploy table at 0,0", top.Type, *top.Title, top.GridPos)
	}
	if pq := top.Targets[0].(prometheus.Dataquery); !strings.Contains(pq.Expr, "topk(1,") || !strings.Contains(pq.Expr, DeployInfoMetric) {
		t.Errorf("last deploy query %q; want topk(1, ...) over %s", pq.Expr, DeployInfoMetric)
	}
	if panels[1].Type != "text" || panels[1].GridPos.Y != 0 {
		t.Errorf("second panel is %s at %+v; want the deploy log text beside the last deploy", panels[1].Type, panels[1].GridPos)
	}
	raw, _ := json.Marshal(panels[1].Options)
	if !bytes.Contains(raw, []byte("${collector_url}/api/v1/deploys")) {
		t.Errorf("deploy log text %s does not link to the deploy log", raw)
	}

	ids := map[uint32]bool{}
	type cell struct{ x, y uint32 }
	used := map[cell]string{}
	graphs := 0
	for _, p := range panels {
		if p.Id == nil || ids[*p.Id] {
			t.Errorf("panel %q has no id or a duplicate one (%v)", *p.Title, p.Id)
		} else {
			ids[*p.Id] = true
		}
		g := p.GridPos
		if g == nil || g.W == 0 || g.H == 0 || g.X+g.W > 24 {
			t.Errorf("panel %q at %+v: want a size inside the 24-column grid", *p.Title, g)
			continue
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Fatalf("panel %q overlaps panel %q at %d,%d", *p.Title, other, x, y)
				}
				used[cell{x, y}] = *p.Title
			}
		}
		if p.Type == "text" {
			continue
		}
		if p.Datasource == nil || !isDatasourceVar(p.Datasource.Uid) {
			t.Errorf("panel %q does not use ${datasource}", *p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", *p.Title)
		}
		for _, tg := range p.Targets {
			pq, ok := tg.(prometheus.Dataquery)
			if !ok || pq.Datasource == nil || !isDatasourceVar(pq.Datasource.Uid) || pq.RefId == nil {
				t.Errorf("panel %q: target %+v is not a Prometheus query on ${datasource} with a refId", *p.Title, tg)
				continue
			}
			checkLegend(t, *p.Title, pq)
		}
		if p.Type == "timeseries" {
			graphs++
		}
	}
	if graphs == 0 {
		t.Error("no time series panel")
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	a, b := mustAll(t), mustAll(t)
	for i := range a {
		ja, err := a[i].JSON()
		if err != nil {
			t.Fatal(err)
		}
		jb, _ := b[i].JSON()
		if !bytes.Equal(ja, jb) {
			t.Fatalf("dashboard %s renders differently on a second build", a[i].UID)
		}
	}
}

func TestCollectorURLOption(t *testing.T) {
	bs, err := All(Options{CollectorURL: "https://telltale.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	j, _ := bs[0].JSON()
	if !bytes.Contains(j, []byte(`"https://telltale.example.com"`)) {
		t.Error("collector_url variable does not default to the given URL")
	}
	for _, bad := range []string{"localhost:9470", "ftp://x", "http://"} {
		if _, err := All(Options{CollectorURL: bad}); err == nil || !strings.Contains(err.Error(), "http://localhost:9470") {
			t.Errorf("All(CollectorURL=%q): got error %v; want one that shows the expected form", bad, err)
		}
	}
}

// checkLegend holds every query to a legend that reads like "{{route}}" or
// "p99 {{route}}": never empty (Grafana and the console then show the raw
// PromQL or the full label set), never the expression itself, "__auto" only
// for tables (which have no legend), and no bare "or vector(0)" in a graph,
// whose zero series has none of the legend's labels (orZero labels it).
func checkLegend(t *testing.T, panel string, pq prometheus.Dataquery) {
	t.Helper()
	legend := ""
	if pq.LegendFormat != nil {
		legend = *pq.LegendFormat
	}
	table := pq.Format != nil && *pq.Format == prometheus.PromQueryFormatTable
	switch {
	case legend == "":
		t.Errorf("panel %q: query %q has no legendFormat; want one like \"{{route}}\"", panel, pq.Expr)
	case legend == "__auto" && !table:
		t.Errorf("panel %q: query %q has legendFormat __auto; want one like \"{{route}}\"", panel, pq.Expr)
	case legend == pq.Expr:
		t.Errorf("panel %q: legendFormat is the query itself", panel)
	}
	if strings.Contains(legend, "{{") && strings.HasSuffix(strings.TrimSpace(pq.Expr), "or vector(0)") {
		t.Errorf("panel %q: query %q ends in \"or vector(0)\" whose series lacks the labels of legend %q; use orZero", panel, pq.Expr, legend)
	}
}
