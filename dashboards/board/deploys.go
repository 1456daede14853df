package board

import (
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// deploySel selects the chosen services and envs; a deploy without env
// (no env label) marks every env.
const deploySel = `service=~"$service",env=~"$env|"`

func depQ(expr string) string { return strings.ReplaceAll(expr, "{D}", deploySel) }

// deploys is the deploy dashboard: history, frequency and what runs now.
func deploys(opts Options) (*dashboard.DashboardBuilder, string, string) {
	const title = "Deploys"
	b := newDashboard(UIDDeploys, title,
		"Deploy history per service and env, deploys per day, and the versions running now. The collector's deploy log has the full record (message, link to the change).",
		[]string{"deploys"}, opts, deployFilter{matchers: deploySel},
		labelVariable("service", "service", "telltale_deploys_total", true),
		labelVariable("env", "env", `telltale_deploys_total{service=~"$service"}`, true))

	row(b, "History")
	b.WithPanel(single("Deploys in range", "Deploys recorded in the dashboard's time range.", units.Short,
		depQ(`sum(count_over_time(telltale_deploy_info{{D}}[$__range]))`), "deploys", quarter).
		NoValue("0"))
	b.WithPanel(single("Deploys so far", "All deploys recorded per service and env (telltale_deploys_total), over the last 30 days of data.", units.Short,
		depQ(`sum(max by (service, env) (last_over_time(telltale_deploys_total{{D}}[30d])))`), "deploys", quarter).
		NoValue("0"))
	b.WithPanel(single("Services deployed", "Distinct services with a deploy in range.", units.Short,
		depQ(`count(count by (service) (count_over_time(telltale_deploy_info{{D}}[$__range])))`), "services", quarter).
		NoValue("0"))
	b.WithPanel(single("Failed deploys", "Deploys that finished with a status other than success in range (telltale_deploy_end_time_seconds).", units.Short,
		depQ(`sum(count_over_time(telltale_deploy_end_time_seconds{{D},status!="success"}[$__range])) or vector(0)`), "failed", quarter))
	b.WithPanel(table.NewPanelBuilder().
		Title("Deploy history").
		Description("Every deploy in the time range, newest first: when, who, service, env, version, commit, status at record time. A version deployed twice by the same person shows its last time.").
		Datasource(datasource()).
		WithTarget(instantTable("A", depQ(`last_over_time(telltale_deploy_info{{D}}[$__range]) * 1000`))).
		Unit(units.DatetimeISO).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})).
		SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("when").Desc(true)}).
		WithTransformation(organize(map[string]bool{"Time": true, "__name__": true},
			map[string]string{"Value": "when"},
			map[string]int{"Value": 0, "who": 1, "service": 2, "env": 3, "version": 4, "commit": 5, "status": 6})).
		DataLinks(deployLogLinks()).
		Span(full).Height(10))

	row(b, "Frequency")
	b.WithPanel(graph("Deploys per day", "Deploys per service and env per day (each bar counts the deploy samples in its day).", units.Short, full,
		series{depQ(`sum by (service, env) (count_over_time(telltale_deploy_info{{D}}[1d]))`), "{{service}} {{env}}"}).
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(80).
		Interval("1d"))

	row(b, "Running now")
	b.WithPanel(table.NewPanelBuilder().
		Title("Versions running now").
		Description("What each service runs now, from the telltale_build_info series its instances push; several rows for one service mean a rollout is under way or an instance lags.").
		Datasource(datasource()).
		WithTarget(instantTable("A", depQ(`count by (service, env, version, commit) (telltale_build_info{{D}})`))).
		WithTransformation(organize(map[string]bool{"Time": true},
			map[string]string{"Value": "instances"},
			map[string]int{"service": 0, "env": 1, "version": 2, "commit": 3, "Value": 4})).
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})).
		Span(half).Height(tall))
	b.WithPanel(graph("Versions over time", "Instances running each version: a rollout shows as one line handing over to the next.", units.Short, half,
		series{depQ(`count by (service, env, version) (telltale_build_info{{D}})`), "{{service}} {{env}} {{version}}"}))
	return b, UIDDeploys, title
}

// deployLogLinks link a table row to the deploy log filtered to its
// service and env.
func deployLogLinks() []cog.Builder[dashboard.DashboardLink] {
	return []cog.Builder[dashboard.DashboardLink]{
		dashboard.NewDashboardLinkBuilder("Deploy log for ${__data.fields.service} in ${__data.fields.env}").
			Url("${collector_url}/api/v1/deploys?service=${__data.fields.service}&env=${__data.fields.env}").
			TargetBlank(true),
	}
}
