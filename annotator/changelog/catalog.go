package changelog

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/impact"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// Catalog tells which services and envs have data in storage
// (Options.Catalog). The collector implements it over its own storage
// (annotator/impact/promq).
type Catalog interface {
	// LabelValues returns the sorted values of label on the series that
	// match selector (a PromQL series selector such as {service="web"};
	// "" for all series) and have samples in [from, to].
	LabelValues(ctx context.Context, label, selector string, from, to time.Time) ([]string, error)
}

// catalogTimeout bounds the catalog lookups of one request: a warning is
// worth little next to answering the client.
const catalogTimeout = 2 * time.Second

// catalogLookback is how far before a change its service's data is looked
// for when deciding whether the change marks a graph.
const catalogLookback = time.Hour

// ownSeries keeps the change log's own series out of "has data": the
// first deploy of a service writes telltale_deploy_info{service=...}, yet
// no graph of that service exists.
const ownSeries = `__name__!~"telltale_(change|changes|deploy|deploys)_.*"`

// dataOf is what the catalog knows about a service in [from, to].
type dataOf struct {
	envs     []string // envs of the service's series; nil when it has none
	has      bool     // the service has series
	services []string // services with data, when the service has none (at most a few)
}

func (s *Service) lookup(ctx context.Context, service string, from, to time.Time) (dataOf, error) {
	var d dataOf
	sel := "{service=" + strconv.Quote(service) + "," + ownSeries + "}"
	names, err := s.opts.Catalog.LabelValues(ctx, "__name__", sel, from, to)
	if err != nil {
		return d, err
	}
	if d.has = len(names) > 0; d.has {
		d.envs, err = s.opts.Catalog.LabelValues(ctx, "env", sel, from, to)
		return d, err
	}
	d.services, err = s.opts.Catalog.LabelValues(ctx, "service", "{"+ownSeries+"}", from, to)
	return d, err
}

// markWarnings says when change c marks no graph of the Service dashboard,
// which selects service=$service and env=~"$env|": its service has no data
// (a typo, or -service not matching the app's label), or its env is not
// one the service reports. A change without env marks every env. The
// warnings go back to the client (the annotator CLI prints them) and are
// counted; lookup failures only skip them.
func (s *Service) markWarnings(ctx context.Context, c changes.Change) []string {
	if s.opts.Catalog == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	now := s.opts.Now()
	d, err := s.lookup(ctx, c.Service, c.Time.Add(-catalogLookback), now)
	if err != nil {
		s.logger.Debug("cannot look up the change's service data", "change_id", c.ID, "err", err)
		return nil
	}
	var w string
	switch {
	case !d.has:
		s.m.warned("unknown_service").Inc()
		w = fmt.Sprintf("no series has service=%q in the last %s, so this %s marks no graph of the Service dashboard yet (it still shows on dashboards without a service filter)%s: check that \"service\" is the app's service label (instrument Options.Service, the demo's -service)",
			c.Service, catalogLookback, changes.Noun(c.Kind), servicesWithData(d.services))
	case c.Env != "" && len(d.envs) > 0 && !slices.Contains(d.envs, c.Env):
		s.m.warned("unknown_env").Inc()
		w = fmt.Sprintf("service %q has data in env %s, not %q, so this %s marks no graph of the Service dashboard for those envs: record it with one of them, or without env to mark every env",
			c.Service, strings.Join(d.envs, ", "), c.Env, changes.Noun(c.Kind))
	default:
		return nil
	}
	return []string{w}
}

func servicesWithData(services []string) string {
	if len(services) == 0 {
		return "; no service has data yet"
	}
	const show = 8
	more := ""
	if len(services) > show {
		more = fmt.Sprintf(" and %d more", len(services)-show)
		services = services[:show]
	}
	return "; services with data: " + strings.Join(services, ", ") + more
}

// noRequestsHint says why an impact report found no requests: the
// change's service or env has no data around it, or the service has data
// but no request metrics.
func (s *Service) noRequestsHint(ctx context.Context, c changes.Change, rep *impact.Report) string {
	where := fmt.Sprintf("service=%q", c.Service)
	if c.Env != "" {
		where += fmt.Sprintf(" env=%q", c.Env)
	}
	generic := fmt.Sprintf("no requests of %s in either window: check that the change's service and env match the app's labels and that the app counts requests in http_requests_total (instrument.Middleware)", where)
	if s.opts.Catalog == nil {
		return generic
	}
	ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	w := time.Duration(rep.Window)
	d, err := s.lookup(ctx, c.Service, c.Time.Add(-w), c.Time.Add(w))
	if err != nil {
		return generic
	}
	switch {
	case !d.has:
		return fmt.Sprintf("no series has service=%q around the change%s: the change's service must be the app's service label", c.Service, servicesWithData(d.services))
	case c.Env != "" && len(d.envs) > 0 && !slices.Contains(d.envs, c.Env):
		return fmt.Sprintf("service %q has data in env %s, not %q: record changes with the app's env, or without env for every env", c.Service, strings.Join(d.envs, ", "), c.Env)
	}
	return fmt.Sprintf("service %q has series but no requests in http_requests_total: count requests with instrument.Middleware, or configure the service's signals in -impact.config", c.Service)
}
