// Package scrape pulls Prometheus text (and OpenMetrics) endpoints of the
// apps on a host, as Prometheus does, so the agent can push their metrics
// alongside the host's.
//
// Every scraped series gets the target's job and instance (the host:port
// of its URL) and the configured labels; these replace labels of the same
// name in the scraped text (like honor_labels: false, without the
// exported_ renaming). For every target and scrape it adds Prometheus'
// synthetic series up (1 or 0), scrape_duration_seconds and
// scrape_samples_scraped.
//
// Targets are scraped concurrently, each with its own timeout: a slow or
// dead target delays the batch by at most its timeout and costs the others
// nothing. A failed scrape (connection error, non-200 status, body over the
// limit, parse error) yields up=0 and no samples from that target, is
// counted in scrape_errors_total{job} and logged once until the target
// recovers.
package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// Target is one endpoint to scrape.
type Target struct {
	// Job is the job label.
	Job string
	// URL is the absolute http(s) URL of the metrics endpoint.
	URL string
	// Interval is the least time between two scrapes of the target; zero
	// means every Scrape call.
	Interval time.Duration
	// Timeout bounds one scrape; it must be positive.
	Timeout time.Duration
	// Labels are added to the target's series and override the others.
	Labels []samples.Label
}

// Options configures a Scraper.
type Options struct {
	Targets []Target
	// Labels are added to every series under the target's labels (the
	// agent's -label flags).
	Labels []samples.Label
	// Client makes the requests; nil means one with Go's default transport.
	// Each scrape's timeout comes from its context.
	Client *http.Client
	// MaxBodyBytes bounds a scrape response (decompressed). Zero means 32 MiB.
	MaxBodyBytes int64
	// UserAgent is the User-Agent header. Zero means "telltale-agent/dev".
	UserAgent string
	Logger    *slog.Logger
	// Metrics receives scrape_errors_total{job}; nil means none are kept.
	Metrics *metrics.Set
	// MetricPrefix starts the metric names. Zero means "telltale_agent_".
	MetricPrefix string
}

// Scraper scrapes a fixed set of targets. Scrape must not be called
// concurrently with itself.
type Scraper struct {
	opts    Options
	logger  *slog.Logger
	client  *http.Client
	targets []*target
}

type target struct {
	Target
	instance string
	extra    []samples.Label // job, instance, Options.Labels, Target.Labels
	errors   *metrics.Counter

	last     time.Time // start of the last scrape
	body     []byte
	batch    samples.Batch
	parser   promtext.Parser
	failing  bool
	due      bool
	err      error
	start    time.Time
	duration time.Duration
}

// New returns a Scraper for opts.Targets. It fails when a target has no
// job, a URL that is not absolute http(s), or no timeout.
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
	if opts.MetricPrefix == "" {
		opts.MetricPrefix = "telltale_agent_"
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	s := &Scraper{opts: opts, logger: opts.Logger.With("component", "scrape"), client: opts.Client}
	if s.client == nil {
		s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	for i, t := range opts.Targets {
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("target %d: URL %q is not an absolute http:// or https:// URL", i, t.URL)
		}
		if t.Job == "" {
			return nil, fmt.Errorf("target %d (%s): job is empty", i, t.URL)
		}
		if t.Timeout <= 0 {
			return nil, fmt.Errorf("target %d (%s): timeout must be positive", i, t.URL)
		}
		tg := &target{Target: t, instance: u.Host}
		tg.extra = mergeLabels(opts.Labels, []samples.Label{{Name: "instance", Value: u.Host}, {Name: "job", Value: t.Job}}, t.Labels)
		tg.parser.ExtraLabels = tg.extra
		tg.errors = set.GetOrCreateCounter(opts.MetricPrefix + `scrape_errors_total{job=` + strconv.Quote(t.Job) + `}`)
		s.targets = append(s.targets, tg)
	}
	return s, nil
}

// mergeLabels merges label lists, later lists overriding earlier ones by
// name, and sorts the result by name.
func mergeLabels(lists ...[]samples.Label) []samples.Label {
	var out []samples.Label
	for _, l := range lists {
		for _, lb := range l {
			if i := slices.IndexFunc(out, func(x samples.Label) bool { return x.Name == lb.Name }); i >= 0 {
				out[i] = lb
			} else {
				out = append(out, lb)
			}
		}
	}
	slices.SortFunc(out, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Scrape scrapes the targets due at now, concurrently, and appends their
// series and the synthetic up, scrape_duration_seconds and
// scrape_samples_scraped series to dst. Samples without a timestamp get the
// time the target's scrape started. The strings appended to dst point into
// the Scraper's buffers: dst is valid until the next Scrape.
//
// Scrape returns when every due target has answered or timed out.
func (s *Scraper) Scrape(ctx context.Context, now time.Time, dst *samples.Batch) {
	var wg sync.WaitGroup
	for _, t := range s.targets {
		t.due = t.Interval <= 0 || t.last.IsZero() || now.Sub(t.last) >= t.Interval-t.Interval/10
		if !t.due {
			continue
		}
		t.last = now
		wg.Go(func() { s.scrape(ctx, t) })
	}
	wg.Wait()
	for _, t := range s.targets {
		if t.due {
			s.emit(t, dst)
		}
	}
}

func (s *Scraper) scrape(ctx context.Context, t *target) {
	t.start = time.Now()
	t.batch.Reset()
	t.err = s.fetch(ctx, t)
	if t.err == nil {
		t.err = t.parser.Parse(t.body, t.start.UnixMilli(), &t.batch)
		if t.err != nil {
			t.err = fmt.Errorf("cannot parse the response of %s: %w", t.URL, t.err)
		}
	}
	t.duration = time.Since(t.start)
	if t.err != nil {
		t.batch.Reset()
	}
}

func (s *Scraper) fetch(ctx context.Context, t *target) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return fmt.Errorf("cannot build request for %s: %w", t.URL, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1")
	req.Header.Set("User-Agent", s.opts.UserAgent)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(t.Timeout.Seconds(), 'f', -1, 64))
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("scrape of %s timed out after %s (raise the target's timeout or fix the endpoint)", t.URL, t.Timeout)
		}
		return fmt.Errorf("cannot scrape %s: %w", t.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape of %s returned HTTP status %s", t.URL, resp.Status)
	}
	t.parser.OpenMetrics = strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text")
	t.body, err = readLimited(resp.Body, t.body[:0], s.opts.MaxBodyBytes)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return fmt.Errorf("response of %s is larger than %d bytes (raise -scrape-max-body-bytes)", t.URL, s.opts.MaxBodyBytes)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("scrape of %s timed out after %s while reading the body", t.URL, t.Timeout)
		}
		return fmt.Errorf("cannot read the response of %s: %w", t.URL, err)
	}
	return nil
}

var errTooLarge = errors.New("body too large")

// readLimited appends r to buf, failing with errTooLarge past limit bytes.
func readLimited(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// emit appends t's last scrape to dst.
func (s *Scraper) emit(t *target, dst *samples.Batch) {
	b := &t.batch
	for i := range b.Series {
		sr := &b.Series[i]
		dst.StartSeries(nil)
		for _, l := range b.SeriesLabels(sr) {
			dst.AddLabel(l.Name, l.Value)
		}
		for _, x := range b.SeriesSamples(sr) {
			dst.AddSample(x.T, x.V)
		}
	}
	dst.Metadata = append(dst.Metadata, b.Metadata...)

	up := 1.0
	if t.err != nil {
		up = 0
		t.errors.Inc()
		if !t.failing {
			s.logger.Warn("scrape failed", "job", t.Job, "url", t.URL, "error", t.err)
		}
	} else if t.failing {
		s.logger.Info("scrape works again", "job", t.Job, "url", t.URL)
	}
	t.failing = t.err != nil
	ts := t.start.UnixMilli()
	s.synthetic(dst, "up", ts, up, t.extra)
	s.synthetic(dst, "scrape_duration_seconds", ts, t.duration.Seconds(), t.extra)
	s.synthetic(dst, "scrape_samples_scraped", ts, float64(b.Len()), t.extra)
}

func (s *Scraper) synthetic(dst *samples.Batch, name string, ts int64, v float64, extra []samples.Label) {
	dst.StartSeries(nil)
	dst.AddLabel("__name__", name)
	for _, l := range extra {
		dst.AddLabel(l.Name, l.Value)
	}
	dst.AddSample(ts, v)
}
