// Package scrape pulls Prometheus text (and OpenMetrics) endpoints as
// Prometheus' scrape loop does, so the agent can push the apps' metrics
// alongside the host's. It promises Prometheus' behaviour for what a
// scrape config says:
//
//   - Targets come from Groups (static_configs, or a discovery mechanism
//     calling Sync) and go through relabel_configs as in Prometheus'
//     PopulateLabels: job, __scheme__, __metrics_path__,
//     __scrape_interval__, __scrape_timeout__ and __param_* filled from the
//     job, __meta_* labels dropped afterwards, instance defaulting to
//     __address__. Each target is scraped at its own interval.
//   - A scraped series gets the target's labels: with honor_labels false a
//     label it had under a target label's name is kept as exported_<name>;
//     with honor_labels true the series' own labels win. Then
//     metric_relabel_configs run. Timestamps in the text are kept
//     (honor_timestamps, the default) or replaced by the scrape's time.
//   - Limits fail the whole scrape, with Prometheus' error texts:
//     sample_limit (samples after metric relabeling), label_limit,
//     label_name_length_limit, label_value_length_limit and body_size_limit.
//   - Every scrape adds up, scrape_duration_seconds, scrape_samples_scraped,
//     scrape_samples_post_metric_relabeling and scrape_series_added with the
//     target's labels.
//   - Staleness: a series that was in the target's last scrape and is not
//     in this one gets a stale marker (Prometheus' StaleNaN) at this
//     scrape's time; a failed scrape (error, timeout, limit) marks all the
//     target's series stale; a target that discovery no longer reports gets
//     stale markers for all its series, up and the scrape_* series at the
//     next Scrape call (within one -interval). Series with a timestamp of
//     their own are not tracked, as in Prometheus. Queries therefore stop
//     returning a dead target's series at once instead of five minutes
//     later.
//
// Targets are scraped concurrently, each with its own timeout: a slow or
// dead target delays the batch by at most its timeout and costs the others
// nothing. A failed scrape is counted in scrape_errors_total{job,reason}
// and logged once until the target recovers.
package scrape

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/agent/relabel"
	"github.com/telltale-dev/telltale/samples"
)

// Job is one scrape_configs entry, checked.
type Job struct {
	// Name is job_name: the job label of its targets.
	Name string
	// Interval and Timeout are scrape_interval and scrape_timeout: the
	// defaults of the targets' __scrape_interval__ and __scrape_timeout__.
	// Both must be positive, Timeout at most Interval.
	Interval, Timeout time.Duration
	// MetricsPath and Scheme are the defaults of __metrics_path__ and
	// __scheme__ ("/metrics" and "http" when empty).
	MetricsPath, Scheme string
	// Params are the URL parameters of every scrape.
	Params url.Values
	// HonorLabels keeps a scraped label over a target label of the same
	// name; HonorTimestamps keeps the timestamps of the text.
	HonorLabels, HonorTimestamps bool
	// SampleLimit, LabelLimit, LabelNameLengthLimit, LabelValueLengthLimit
	// and BodySizeLimit fail a scrape that exceeds them; 0 means no limit
	// (BodySizeLimit 0 means Options.MaxBodyBytes).
	SampleLimit, LabelLimit, LabelNameLengthLimit, LabelValueLengthLimit int
	BodySizeLimit                                                        int64
	// Relabel and MetricRelabel are relabel_configs and
	// metric_relabel_configs.
	Relabel, MetricRelabel []*relabel.Rule
	// Static holds the static_configs groups.
	Static []Group
}

// Options configures a Scraper.
type Options struct {
	Jobs []Job
	// Labels are target labels of every target, under the job's own (the
	// agent's -label flags): a target label of the same name wins.
	Labels []samples.Label
	// Client makes the requests; nil means one with Go's default transport.
	// Each scrape's timeout comes from its context.
	Client *http.Client
	// MaxBodyBytes bounds a scrape response (decompressed) when the job sets
	// no body_size_limit. Zero means 32 MiB.
	MaxBodyBytes int64
	// UserAgent is the User-Agent header. Zero means "telltale-agent/dev".
	UserAgent string
	Logger    *slog.Logger
	// Metrics receives scrape_errors_total{job,reason} and the targets
	// gauge; nil means none are kept.
	Metrics *metrics.Set
}

// Scraper scrapes the targets of its jobs. Sync may be called from any
// goroutine; Scrape must not be called concurrently with itself.
type Scraper struct {
	opts   Options
	logger *slog.Logger
	client *http.Client
	set    *metrics.Set
	jobs   []*job

	mu      sync.Mutex
	pending map[string]map[string]Group // job -> source -> group, not yet applied
}

// job is a Job with its targets.
type job struct {
	Job
	groups  map[string]Group // source -> group
	targets map[string]*loop // target key -> its loop
	b       relabel.Builder
	bad     map[string]string // target -> why relabeling refused it, logged once
}

// New returns a Scraper for opts.Jobs. It fails when a job has no name, a
// duplicate name, or an interval or timeout that is not positive.
func New(opts Options) (*Scraper, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "telltale-agent/dev"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	s := &Scraper{opts: opts, logger: opts.Logger.With("component", "scrape"), client: opts.Client, set: set,
		pending: map[string]map[string]Group{}}
	if s.client == nil {
		s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	seen := map[string]bool{}
	for i, jc := range opts.Jobs {
		if jc.Name == "" {
			return nil, fmt.Errorf("job %d: job_name is empty", i)
		}
		if seen[jc.Name] {
			return nil, fmt.Errorf("job %q twice: job names must be unique", jc.Name)
		}
		seen[jc.Name] = true
		if jc.Interval <= 0 || jc.Timeout <= 0 || jc.Timeout > jc.Interval {
			return nil, fmt.Errorf("job %q: want 0 < scrape_timeout (%s) <= scrape_interval (%s)", jc.Name, jc.Timeout, jc.Interval)
		}
		if jc.MetricsPath == "" {
			jc.MetricsPath = "/metrics"
		}
		if jc.Scheme == "" {
			jc.Scheme = "http"
		}
		j := &job{Job: jc, groups: map[string]Group{}, targets: map[string]*loop{}, bad: map[string]string{}}
		for k, g := range jc.Static {
			if g.Source == "" {
				g.Source = "static/" + strconv.Itoa(k)
			}
			j.groups[g.Source] = g
		}
		s.jobs = append(s.jobs, j)
		s.pending[jc.Name] = nil
		jobName := jc.Name
		set.NewGauge(`telltale_agent_scrape_targets{job=`+strconv.Quote(jobName)+`}`, func() float64 { return float64(s.targetCount(jobName)) })
	}
	for _, j := range s.jobs {
		s.syncTargets(j, time.Time{}, nil)
	}
	return s, nil
}

// Jobs returns the names of the scraper's jobs.
func (s *Scraper) Jobs() []string {
	var names []string
	for _, j := range s.jobs {
		names = append(names, j.Name)
	}
	return names
}

// Sync hands the Scraper the groups a discoverer of job found: each
// replaces the group of the same Source; a group without targets removes
// it. The change applies at the next Scrape. Sync with an unknown job is a
// bug of the caller.
func (s *Scraper) Sync(jobName string, groups []Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[jobName]
	if !ok && !slices.ContainsFunc(s.jobs, func(j *job) bool { return j.Name == jobName }) {
		panic("BUG: scrape.Sync for unknown job " + strconv.Quote(jobName))
	}
	if p == nil {
		p = map[string]Group{}
		s.pending[jobName] = p
	}
	for _, g := range groups {
		p[g.Source] = g
	}
}

// targetCount is the number of targets of a job, for the gauge.
func (s *Scraper) targetCount(jobName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.Name == jobName {
			return len(j.targets)
		}
	}
	return 0
}

// applyPending moves what Sync received into the jobs and rebuilds the
// targets of the jobs that changed; targets that went away get their stale
// markers in dst at now.
func (s *Scraper) applyPending(now time.Time, dst *samples.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		p := s.pending[j.Name]
		if len(p) == 0 {
			continue
		}
		for src, g := range p {
			if len(g.Targets) == 0 {
				delete(j.groups, src)
			} else {
				j.groups[src] = g
			}
		}
		clear(p)
		s.syncTargets(j, now, dst)
	}
}

// syncTargets computes the job's targets from its groups, keeps the loops
// of targets that stay, starts loops for new ones and ends those that went
// (with stale markers in dst at now when dst is not nil).
func (s *Scraper) syncTargets(j *job, now time.Time, dst *samples.Batch) {
	want := map[string]*target{}
	bad := map[string]string{}
	for _, g := range j.groups {
		for _, tl := range g.Targets {
			t, err := populateTarget(&j.b, &j.Job, tl, g.Labels)
			if err != nil {
				bad[fmt.Sprint(tl)] = err.Error()
				continue
			}
			if t != nil {
				want[t.key] = t
			}
		}
	}
	for k, why := range bad {
		if j.bad[k] != why {
			s.logger.Warn("target dropped: its labels are not usable", "job", j.Name, "target", k, "err", why)
		}
	}
	j.bad = bad
	for k, l := range j.targets {
		if _, ok := want[k]; !ok {
			if dst != nil {
				l.staleAll(now, dst)
			}
			delete(j.targets, k)
		}
	}
	for k, t := range want {
		if _, ok := j.targets[k]; !ok {
			j.targets[k] = s.newLoop(j, t)
		}
	}
}

// Scrape scrapes the targets due at now, concurrently, and appends their
// series, their stale markers and the report series to dst. Samples without
// a timestamp get the time the target's scrape started. The strings
// appended to dst point into the Scraper's buffers: dst is valid until the
// next Scrape.
//
// Scrape returns when every due target has answered or timed out.
func (s *Scraper) Scrape(ctx context.Context, now time.Time, dst *samples.Batch) {
	s.applyPending(now, dst)
	var due []*loop
	for _, j := range s.jobs {
		for _, l := range j.targets {
			iv := l.t.interval
			if l.last.IsZero() || now.Sub(l.last) >= iv-iv/10 {
				l.last = now
				due = append(due, l)
			}
		}
	}
	var wg sync.WaitGroup
	for _, l := range due {
		wg.Go(func() { l.scrape(ctx, now) })
	}
	wg.Wait()
	// Emit in a stable order: by job, then target.
	slices.SortFunc(due, func(a, b *loop) int {
		if c := strings.Compare(a.job.Name, b.job.Name); c != 0 {
			return c
		}
		return strings.Compare(a.t.key, b.t.key)
	})
	for _, l := range due {
		l.emit(dst)
	}
}
