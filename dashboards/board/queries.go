package board

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// Kind says where a query is used on a dashboard.
type Kind string

// Kinds of queries.
const (
	KindPanel      Kind = "panel"      // a panel target
	KindAnnotation Kind = "annotation" // a PromQL annotation (deploy markers)
	KindVariable   Kind = "variable"   // a label_values(...) template variable
)

// Query is one PromQL expression of a dashboard and where it is used.
type Query struct {
	Dashboard string // dashboard uid
	Panel     string // panel title, annotation name or variable name
	Kind      Kind
	// PanelType is the panel's type (timeseries, stat, table); "" for
	// annotations and variables.
	PanelType string
	RefID     string // the target's refId; "" for annotations and variables
	// Expr is the PromQL expression as stored, with Grafana variables
	// ($host, $__rate_interval ...) unexpanded. For a variable it is the
	// series selector of label_values(selector, label).
	Expr string
	// Label is the label a variable lists; "" otherwise.
	Label string
	// Instant is true for instant queries (stat and table panels); false
	// for range queries (time series panels and annotations).
	Instant bool
}

// String names the query for test messages: "telltale-hosts / Load / B".
func (q Query) String() string {
	s := q.Dashboard + " / " + string(q.Kind) + " " + q.Panel
	if q.RefID != "" {
		s += " / " + q.RefID
	}
	return s
}

// Queries lists every PromQL expression of the boards: panel targets,
// PromQL annotations and query variables, in dashboard order.
func Queries(boards []Board) ([]Query, error) {
	var out []Query
	for _, b := range boards {
		d := b.Dashboard
		for _, v := range d.Templating.List {
			if v.Type != dashboard.VariableTypeQuery {
				continue
			}
			if v.Query == nil || v.Query.String == nil {
				return nil, fmt.Errorf("dashboard %s: variable %s has no string query", b.UID, v.Name)
			}
			sel, label, err := LabelValues(*v.Query.String)
			if err != nil {
				return nil, fmt.Errorf("dashboard %s: variable %s: %w", b.UID, v.Name, err)
			}
			out = append(out, Query{Dashboard: b.UID, Panel: v.Name, Kind: KindVariable, Expr: sel, Label: label, Instant: true})
		}
		for _, a := range d.Annotations.List {
			if a.Expr == nil {
				continue
			}
			out = append(out, Query{Dashboard: b.UID, Panel: a.Name, Kind: KindAnnotation, Expr: *a.Expr})
		}
		for _, p := range Panels(d) {
			title := ""
			if p.Title != nil {
				title = *p.Title
			}
			for _, t := range p.Targets {
				pq, ok := t.(prometheus.Dataquery)
				if !ok {
					return nil, fmt.Errorf("dashboard %s: panel %q: target of type %T is not a Prometheus query", b.UID, title, t)
				}
				q := Query{Dashboard: b.UID, Panel: title, Kind: KindPanel, PanelType: p.Type, Expr: pq.Expr,
					Instant: pq.Instant != nil && *pq.Instant}
				if pq.RefId != nil {
					q.RefID = *pq.RefId
				}
				out = append(out, q)
			}
		}
	}
	return out, nil
}

// Panels returns the dashboard's panels in order, those inside rows
// included, rows themselves left out.
func Panels(d dashboard.Dashboard) []dashboard.Panel {
	var out []dashboard.Panel
	for _, p := range d.Panels {
		switch {
		case p.Panel != nil:
			out = append(out, *p.Panel)
		case p.RowPanel != nil:
			out = append(out, p.RowPanel.Panels...)
		}
	}
	return out
}

var labelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// LabelValues splits a Grafana variable query label_values(selector, label)
// into its selector and label.
func LabelValues(q string) (selector, label string, err error) {
	m := labelValuesRE.FindStringSubmatch(q)
	if m == nil || m[1] == "" {
		return "", "", fmt.Errorf("variable query %q is not label_values(selector, label)", q)
	}
	return m[1], m[2], nil
}

// TestVars are values for every variable the dashboards use, safe to put
// in PromQL: intervals as durations, the template variables as regexes
// matching everything.
func TestVars() map[string]string {
	return map[string]string{
		"__rate_interval": "1m",
		"__interval":      "1m",
		"__interval_ms":   "60000",
		"__range":         "1h",
		"__range_s":       "3600",
		"__range_ms":      "3600000",
		"host":            ".+",
		"service":         ".+",
		"env":             ".+",
		"route":           ".*",
		"datasource":      DatasourceUID,
		"collector_url":   DefaultCollectorURL,
	}
}

// varRE matches Grafana's variable syntaxes: $name, ${name}, ${name:fmt},
// [[name]] and [[name:fmt]].
var varRE = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)`)

// Expand substitutes Grafana's variables in expr with vars (names without
// the $). A variable missing from vars is an error naming it, so a typo in
// a dashboard query cannot pass a test unnoticed.
func Expand(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := varRE.ReplaceAllStringFunc(expr, func(m string) string {
		sm := varRE.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3] // exactly one is set
		v, ok := vars[name]
		if !ok {
			missing = append(missing, "$"+name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown variable %s in %q: define it on the dashboard or in the test's variables", strings.Join(missing, ", "), expr)
	}
	return out, nil
}
