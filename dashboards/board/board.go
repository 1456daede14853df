// Package board defines Telltale's shared dashboards as Go code with the
// Grafana Foundation SDK: Hosts, Service, Deploys and Telltale (the
// collector's and agents' own health).
//
// What it promises:
//   - Stable uids (UIDHosts, UIDService, UIDDeploys, UIDSelf) so links,
//     provisioning and the push command always address the same dashboards.
//   - Every panel, annotation and variable query uses the templated data
//     source variable ${datasource} (type prometheus, default the data
//     source named Telltale, uid "telltale").
//   - Every dashboard shows deploys on every time-series panel, twice: a
//     PromQL annotation over the telltale_deploy_info series the collector
//     writes, and Grafana's own annotations tagged "deploy" (written by the
//     collector when it has -grafana.url); both are enabled.
//   - Every dashboard starts with the last deploy (who, what, when) and links
//     to the collector's deploy log.
//   - Queries lists every PromQL expression with where it is used, so tests
//     can parse them and run them against a real collector.
//   - The heaviest panels read recorded series (Recordings, RulesFile)
//     kept to the labels they filter and group by; with RawQueries they
//     compute the same from the raw series, and a test holds both forms
//     equal over the same data.
//
// Building is deterministic: the same Options give byte-identical JSON.
package board

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Stable dashboard uids.
const (
	UIDHosts   = "telltale-hosts"
	UIDService = "telltale-service"
	UIDDeploys = "telltale-deploys"
	UIDSelf    = "telltale-self"
)

// Data source defaults: the provisioned Prometheus data source that points
// at the collector.
const (
	DatasourceName = "Telltale"
	DatasourceUID  = "telltale"
)

// DeployTag is the Grafana annotation tag of deploys written by the
// collector; the Grafana-annotations query of every dashboard filters on it.
const DeployTag = "deploy"

// Options configure the dashboards.
type Options struct {
	// CollectorURL is the collector's address as a browser reaches it, used
	// for links to the deploy log and the console (the dashboard variable
	// collector_url, editable in Grafana). Default http://localhost:9470.
	CollectorURL string
	// RawQueries makes the panels that read the dashboards' recorded
	// series (Recordings) compute the same from the raw series instead: what
	// the collector's console does, so it shows data written late or
	// backfilled, which recording rules never see.
	RawQueries bool
}

// DefaultCollectorURL is Options.CollectorURL's default.
const DefaultCollectorURL = "http://localhost:9470"

// Board is one built dashboard.
type Board struct {
	UID   string
	Title string
	// Dashboard is the SDK model; JSON renders it.
	Dashboard dashboard.Dashboard
}

// FileName is the dashboard's JSON file name: <uid>.json.
func (b Board) FileName() string { return b.UID + ".json" }

// JSON renders the dashboard as indented JSON with a trailing newline, the
// form Grafana's file provisioning and the dashboards API accept.
func (b Board) JSON() ([]byte, error) {
	out, err := json.MarshalIndent(b.Dashboard, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cannot render dashboard %s as JSON: %w", b.UID, err)
	}
	return append(out, '\n'), nil
}

// All builds every dashboard, in a fixed order.
func All(opts Options) ([]Board, error) {
	if opts.CollectorURL == "" {
		opts.CollectorURL = DefaultCollectorURL
	}
	u, err := url.Parse(opts.CollectorURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("collector URL %q is not an absolute http(s) URL: set it like http://localhost:9470", opts.CollectorURL)
	}
	var out []Board
	for _, build := range []func(Options) (*dashboard.DashboardBuilder, string, string){hosts, service, deploys, self} {
		b, uid, title := build(opts)
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("BUG: dashboard %s does not build: %w", uid, err)
		}
		finish(&d)
		out = append(out, Board{UID: uid, Title: title, Dashboard: d})
	}
	return out, nil
}
