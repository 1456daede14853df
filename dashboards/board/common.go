package board

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/text"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Grid: 24 columns wide.
const (
	full    = 24
	half    = 12
	third   = 8
	quarter = 6
	tall    = 8 // height of a time series panel
	short   = 4 // height of a stat or the last-deploy row
)

// Colours of the two deploy markers, so a viewer tells them apart.
const (
	colorDeploySeries  = "purple" // PromQL over telltale_deploy_info
	colorDeployGrafana = "blue"   // Grafana annotations tagged "deploy"
)

// DefaultFrom is every dashboard's default time range, last 30 minutes
// (the console defaults to the same). A fresh install has minutes of data:
// in 1h or 6h it is a sliver at the right edge, in 30m it fills a visible
// share within minutes; and 30m holds a deploy with the 15m before and
// after it that the impact analysis compares by default.
const DefaultFrom = "now-30m"

// SchemaVersion is the Grafana dashboard schemaVersion of the generated
// JSON: 39, the newest that Grafana 11.0 (and everything up to 11.2) knows.
// The SDK writes 42, which only Grafana 12.2 and later know (v40 made
// "refresh" a string, v41 dropped timepicker.time_options, v42 hides a
// field hidden from the graph from its tooltip too; see Grafana's
// apps/dashboard/pkg/migration/schemaversion). Older Grafanas silently
// rewrite a newer version down, and Grafana 12's dashboards API v1 refuses
// a version other than its latest ("Schema version N is not supported")
// unless it migrates it up itself, which it does from 39: migrations
// 40-42 change nothing in these dashboards (refresh is the string "30s",
// no time_options, no hideFrom overrides). So 39 loads unchanged in 11.x
// and 12.x.
const SchemaVersion = 39

func ptr[T any](v T) *T { return &v }

// datasource is the reference every panel, query and annotation uses: the
// dashboard's datasource variable.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}
}

// deployFilter selects the deploys a dashboard shows.
type deployFilter struct {
	// matchers are PromQL label matchers on telltale_deploy_info, without
	// braces, e.g. `service=~"$service"`; "" for all deploys.
	matchers string
	// tags are Grafana annotation tags required besides DeployTag, e.g.
	// "service:$service" (the collector tags each deploy annotation with
	// deploy, service:<service> and env:<env>).
	tags []string
}

// newDashboard starts a dashboard with the variables and annotations every
// dashboard shares.
func newDashboard(uid, title, desc string, tags []string, opts Options, deploys deployFilter, vars ...cog.Builder[dashboard.VariableModel]) *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(desc).
		Tags(append([]string{"telltale"}, tags...)).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time(DefaultFrom, "now").
		Timezone("browser").
		WithVariable(datasourceVariable())
	for _, v := range vars {
		b.WithVariable(v)
	}
	b.WithVariable(collectorURLVariable(opts.CollectorURL))
	for _, a := range deployAnnotations(deploys) {
		b.Annotation(a)
	}
	b.Link(dashboard.NewDashboardLinkBuilder("Telltale").
		Type(dashboard.DashboardLinkTypeDashboards).
		Tags([]string{"telltale"}).
		AsDropdown(true).
		IncludeVars(false).
		KeepTime(true))
	b.Link(dashboard.NewDashboardLinkBuilder("Deploy log").
		Type(dashboard.DashboardLinkTypeLink).
		Url("${collector_url}/api/v1/deploys").
		TargetBlank(true))
	lastDeploy(b, deploys.matchers)
	return b
}

func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus").
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: ptr(DatasourceName)},
			Value: dashboard.StringOrArrayOfString{String: ptr(DatasourceUID)},
		})
}

func collectorURLVariable(u string) *dashboard.TextBoxVariableBuilder {
	return dashboard.NewTextBoxVariableBuilder("collector_url").
		Label("Collector URL").
		Description("The collector as your browser reaches it: links to the deploy log and the console use it.").
		DefaultValue(dashboard.StringOrMap{String: ptr(u)}).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: ptr(u)},
			Value: dashboard.StringOrArrayOfString{String: ptr(u)},
		})
}

// labelVariable is a query variable over label_values(selector, label).
func labelVariable(name, label, selector string, multi bool) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", selector, label)
	v := dashboard.NewQueryVariableBuilder(name).
		Label(name).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: ptr(q)}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if multi {
		v.Multi(true).IncludeAll(true).AllValue(".*").Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: ptr("All")},
			Value: dashboard.StringOrArrayOfString{String: ptr("$__all")},
		})
	}
	return v
}

// DeployInfoMetric is the series the collector writes at each deploy's
// time, with the deploy time in unix seconds as value and labels service,
// env, version, commit, who and status.
const DeployInfoMetric = "telltale_deploy_info"

// deploySelector is telltale_deploy_info{matchers}.
func deploySelector(matchers string) string {
	if matchers == "" {
		return DeployInfoMetric
	}
	return DeployInfoMetric + "{" + matchers + "}"
}

// DeployAnnotationExpr is the PromQL deploy-marker query of a dashboard: the
// deploy time in milliseconds (Grafana's "series value as timestamp" wants
// ms) of every deploy sample in each step. max_over_time over the step
// catches the single sample of a deploy whatever the step; a plain selector
// would only see it within the 5m lookback of a step.
func DeployAnnotationExpr(matchers string) string {
	return "max_over_time(" + deploySelector(matchers) + "[$__interval]) * 1000"
}

func deployAnnotations(f deployFilter) []cog.Builder[dashboard.AnnotationQuery] {
	series := dashboard.NewAnnotationQueryBuilder().
		Name("Deploys").
		Datasource(datasource()).
		Enable(true).
		Hide(false).
		IconColor(colorDeploySeries).
		Expr(DeployAnnotationExpr(f.matchers)).
		UseValueForTime(true).
		TitleFormat("{{service}} {{version}} by {{who}}").
		TextFormat("{{env}}: commit {{commit}}, status {{status}}").
		TagKeys("service,env")
	grafana := dashboard.NewAnnotationQueryBuilder().
		Name("Deploys (Grafana annotations)").
		Datasource(common.DataSourceRef{Type: ptr("grafana"), Uid: ptr("-- Grafana --")}).
		Enable(true).
		Hide(false).
		IconColor(colorDeployGrafana).
		Target(variants.NewUnknownDataqueryBuilderFromObject(variants.UnknownDataquery{
			"type":     "tags",
			"tags":     append([]string{DeployTag}, f.tags...),
			"matchAny": false,
			"limit":    100,
		}))
	return []cog.Builder[dashboard.AnnotationQuery]{series, grafana}
}

// lastDeploy adds the top row: the last deploy (who, what, when) and links
// to the deploy log.
func lastDeploy(b *dashboard.DashboardBuilder, matchers string) {
	logURL := "${collector_url}/api/v1/deploys"
	expr := "topk(1, last_over_time(" + deploySelector(matchers) + "[30d])) * 1000"
	b.WithPanel(table.NewPanelBuilder().
		Title("Last deploy").
		Description("The newest deploy in the last 30 days (from telltale_deploy_info): when, who, what. Click a row for its entry in the collector's deploy log, which has the message and the link to the change.").
		Datasource(datasource()).
		WithTarget(instantTable("A", expr)).
		Unit(units.DatetimeISO).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})).
		NoValue("no deploy recorded in 30 days").
		WithTransformation(organize(map[string]bool{"Time": true, "__name__": true},
			map[string]string{"Value": "when"},
			map[string]int{"Value": 0, "who": 1, "service": 2, "env": 3, "version": 4, "commit": 5, "status": 6})).
		DataLinks(deployLogLinks()).
		Span(2 * third).Height(short))
	b.WithPanel(text.NewPanelBuilder().
		Title("Deploy log").
		Mode(text.TextModeMarkdown).
		Content(strings.Join([]string{
			"**Every graph marks deploys**: purple from the deploy series (PromQL), blue from Grafana annotations.",
			"",
			"[Deploy log](" + logURL + ") · [Console](${collector_url}/) · [Deploys dashboard](/d/" + UIDDeploys + ")",
			"",
			"Record a deploy from CI: `POST " + logURL + "`.",
		}, "\n")).
		Span(third).Height(short))
}

// organize is Grafana's "organize fields" transformation.
func organize(exclude map[string]bool, rename map[string]string, order map[string]int) dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{
		Id: "organize",
		Options: map[string]any{
			"excludeByName": exclude,
			"renameByName":  rename,
			"indexByName":   order,
		},
	}
}

// rangeQ is a range query drawn as a time series.
func rangeQ(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		RefId(refID).
		Datasource(datasource()).
		Expr(expr).
		LegendFormat(legend).
		Range()
}

// instantQ is an instant query for stat panels.
func instantQ(refID, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().
		RefId(refID).
		Datasource(datasource()).
		Expr(expr).
		LegendFormat(legend).
		Instant()
}

// instantTable is an instant query whose labels become table columns (a
// table has no legend: Grafana's "__auto").
func instantTable(refID, expr string) *prometheus.DataqueryBuilder {
	return instantQ(refID, expr, "__auto").Format(prometheus.PromQueryFormatTable)
}

// orZero is expr, or a 0 series while expr has none (no failures yet),
// labelled label="none" so a legend such as "{{reason}}" reads "none"
// rather than falling back to the raw PromQL.
func orZero(expr, label string) string {
	return expr + ` or label_replace(vector(0), "` + label + `", "none", "", "")`
}

// series is one query of a time series panel: expr drawn with legend.
type series struct{ expr, legend string }

// graph is a time series panel; its queries get refIds A, B, C ...
func graph(title, desc, unit string, w uint32, qs ...series) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Title(title).
		Description(desc).
		Datasource(datasource()).
		Unit(unit).
		FillOpacity(10).
		LineWidth(1).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending)).
		Span(w).Height(tall)
	for i, q := range qs {
		p.WithTarget(rangeQ(refID(i), q.expr, q.legend))
	}
	return p
}

// stacked makes p a stacked area graph.
func stacked(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).FillOpacity(40)
}

// single is a stat panel of one instant query.
func single(title, desc, unit, expr, legend string, w uint32) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(desc).
		Datasource(datasource()).
		Unit(unit).
		WithTarget(instantQ("A", expr, legend)).
		GraphMode(common.BigValueGraphModeNone).
		Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		Span(w).Height(short)
}

func refID(i int) string { return string(rune('A' + i)) }

// row adds a full-width row header; the panels after it belong to it.
func row(b *dashboard.DashboardBuilder, title string) {
	b.WithRow(dashboard.NewRowBuilder(title))
}

// finish numbers panels and rows 1, 2, 3 ... in order, so links like
// ?viewPanel=N stay stable, and drops the SDK's default placement of
// annotation toggles and links in the controls menu, so they show on the
// dashboard itself.
func finish(d *dashboard.Dashboard) {
	d.SchemaVersion = SchemaVersion
	for i := range d.Annotations.List {
		d.Annotations.List[i].Placement = nil
	}
	for i := range d.Links {
		d.Links[i].Placement = nil
	}
	var id uint32
	number := func(p *dashboard.Panel) {
		id++
		p.Id = ptr(id)
		if p.FieldConfig != nil {
			for i := range p.FieldConfig.Defaults.Links {
				p.FieldConfig.Defaults.Links[i].Placement = nil
			}
		}
	}
	for i := range d.Panels {
		switch p := d.Panels[i]; {
		case p.Panel != nil:
			number(p.Panel)
		case p.RowPanel != nil:
			id++
			p.RowPanel.Id = id
			for j := range p.RowPanel.Panels {
				number(&p.RowPanel.Panels[j])
			}
		}
	}
}
