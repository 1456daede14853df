// Package deploys is the deploy API the collector embeds: it records deploy
// events (POST/GET/PATCH /api/v1/deploys) in the durable deploy log
// (annotator/deploylog) and delivers each one, through the log's
// transactional outbox, to storage as deploy series (so dashboards can mark
// deploys with plain PromQL), to Grafana as org-wide annotations, and to chat
// webhooks.
//
// Promises:
//   - A 201 or 200 answer means the deploy and all of its pending deliveries
//     are committed to disk (WAL, synchronous=FULL): kill -9 right after
//     loses neither.
//   - Deliveries never block or fail the API: they run in Run's background
//     workers, one per target, each with its own retries and exponential
//     backoff, so a down, slow or refusing Grafana delays only Grafana.
//   - Nothing is lost while a target is down: entries stay pending in the
//     database and are retried (across restarts) for Options.RetryFor.
//   - Grafana annotations are created at most once per deploy as far as
//     Grafana's API allows (see deliverGrafana for the residual risk);
//     webhooks and deploy series are delivered at least once.
//   - Bad input gets a 4xx naming the field and the fix, counted in
//     telltale_deploys_rejected_total{reason}.
//   - With Options.Impact, every deploy recorded gets one impact analysis
//     (annotator/impact) once its after window has passed, scheduled
//     through the same outbox (so it survives restarts and runs after a
//     start that came past its due time); the report is stored with the
//     deploy, served at GET /api/v1/deploys/{id}/impact, and its summary is
//     sent to the deploy series (telltale_deploy_regressions), the Grafana
//     annotation and the webhooks. A stored report is never recomputed.
//
// The package does no authentication: the collector checks the deploy scope
// before calling Handler.
package deploys

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/deploylog"
	"github.com/telltale-dev/telltale/annotator/grafana"
	"github.com/telltale-dev/telltale/samples"
)

// Deploy is a recorded deploy event; its JSON form is the API's deploy object.
type Deploy = deploylog.Deploy

// SampleWriter stores samples. The collector's ingest path implements it;
// WriteSamples must return nil only once every sample of b is committed (to
// the TSDB WAL). It must not keep b after returning.
type SampleWriter interface {
	WriteSamples(ctx context.Context, b *samples.Batch) error
}

// Webhook formats.
const (
	FormatSlack = "slack" // Slack-compatible {"text": ...} (also Mattermost, Rocket.Chat, Discord's /slack endpoint)
	FormatJSON  = "json"  // the deploy object
)

// WebhookConfig is one outgoing chat webhook.
type WebhookConfig struct {
	// Name identifies the webhook in the delivery state, metrics and logs.
	// Default: the URL's host and a short hash of the URL (the URL itself,
	// often a secret, is never shown).
	Name string
	// URL receives a POST per deploy event.
	URL string
	// Format is FormatSlack (default) or FormatJSON.
	Format string
}

// Options configures a Service. Zero values take the documented defaults.
type Options struct {
	// DBPath is the deploy log's SQLite file; required.
	DBPath  string
	Logger  *slog.Logger // default: slog.Default()
	Metrics *metrics.Set // default: a new set nobody scrapes
	// Writer receives the deploy series; nil turns them off.
	Writer SampleWriter
	// Grafana receives the annotations; nil turns them off.
	Grafana  grafana.Annotator
	Webhooks []WebhookConfig
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnRecorded is called after a deploy is created or changed and
	// committed, e.g. to push it to websocket tail clients. It runs on the
	// request goroutine and must not block. May be nil.
	OnRecorded func(Deploy)

	// MaxBodyBytes limits a request body (default 64 KiB); larger is 413.
	MaxBodyBytes int64
	// DeliveryTimeout bounds one delivery attempt (default 10s).
	DeliveryTimeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential retry backoff
	// (defaults 1s and 5m).
	MinBackoff, MaxBackoff time.Duration
	// AuthBackoff is the least wait after a target refused the credentials
	// (401/403); default 5m.
	AuthBackoff time.Duration
	// RetryFor is how long a delivery is retried before it is marked
	// failed (default 24h).
	RetryFor time.Duration
	// HTTPClient sends webhooks; default a client with DeliveryTimeout.
	HTTPClient *http.Client

	// Impact, when set, analyses what each deploy did to its service's key
	// signals once its after window passed, stores the report with the
	// deploy and sends its one-line summary to the deploy series, Grafana
	// and the webhooks. nil turns impact analysis off.
	Impact *ImpactOptions
}

// Service is the deploy API. Create it with Open; serve Handler; run Run in
// a goroutine; call Close after Run returned.
type Service struct {
	log        *deploylog.Log
	opts       Options
	logger     *slog.Logger
	m          *serviceMetrics
	workers    []*worker
	webhooks   map[string]WebhookConfig // by target
	impact     *impactRunner            // nil: impact analysis off
	handler    http.Handler
	closeOnce  sync.Once
	closeError error
}

// Open opens the deploy log at opts.DBPath and returns the Service.
func Open(ctx context.Context, opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	setDefault(&opts.MaxBodyBytes, 64<<10)
	setDefault(&opts.DeliveryTimeout, 10*time.Second)
	setDefault(&opts.MinBackoff, time.Second)
	setDefault(&opts.MaxBackoff, 5*time.Minute)
	setDefault(&opts.AuthBackoff, 5*time.Minute)
	setDefault(&opts.RetryFor, 24*time.Hour)
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: opts.DeliveryTimeout}
	}
	if opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("deploy delivery MaxBackoff %s is below MinBackoff %s: raise MaxBackoff", opts.MaxBackoff, opts.MinBackoff)
	}
	if g, ok := opts.Grafana.(*grafana.Client); ok && g == nil {
		opts.Grafana = nil // a typed nil would pass the nil check and panic later
	}
	webhooks, err := checkWebhooks(opts.Webhooks)
	if err != nil {
		return nil, err
	}
	l, err := deploylog.Open(ctx, opts.DBPath)
	if err != nil {
		return nil, err
	}
	s := &Service{
		log:      l,
		opts:     opts,
		logger:   opts.Logger.With("component", "deploys"),
		m:        newServiceMetrics(opts.Metrics),
		webhooks: webhooks,
	}
	if opts.Writer != nil {
		s.workers = append(s.workers, s.newWorker(targetSeries, targetSeries, s.deliverSeries))
	}
	if opts.Grafana != nil {
		s.workers = append(s.workers, s.newWorker(targetGrafana, targetGrafana, s.deliverGrafana))
	}
	for target := range webhooks {
		s.workers = append(s.workers, s.newWorker(target, "webhook", s.deliverWebhook))
	}
	if opts.Impact != nil {
		if s.impact, err = newImpactRunner(*opts.Impact, opts.Now, s.m.set); err != nil {
			l.Close()
			return nil, err
		}
		w := s.newWorker(targetImpact, targetImpact, s.deliverImpact)
		w.timeout = s.impact.timeout
		w.notBefore = s.impact.dueAt
		s.workers = append(s.workers, w)
	}
	s.handler = s.routes()
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Delivery targets as stored in the outbox.
const (
	targetSeries  = "series"
	targetGrafana = "grafana"
	webhookPrefix = "webhook:"
	targetImpact  = "impact" // not a delivery: the scheduled impact analysis
)

func checkWebhooks(list []WebhookConfig) (map[string]WebhookConfig, error) {
	out := make(map[string]WebhookConfig, len(list))
	for i, w := range list {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook %d: url is not an absolute http(s) URL: set it like https://hooks.slack.com/services/...", i)
		}
		switch w.Format {
		case "":
			w.Format = FormatSlack
		case FormatSlack, FormatJSON:
		default:
			return nil, fmt.Errorf("webhook %d: format %q is unknown: use %q or %q", i, w.Format, FormatSlack, FormatJSON)
		}
		if w.Name == "" {
			sum := sha256.Sum256([]byte(w.URL))
			w.Name = u.Hostname() + "-" + hex.EncodeToString(sum[:3])
		}
		if !validLabelValue(w.Name, maxEnvLen) {
			return nil, fmt.Errorf("webhook %d: name %q must be 1-%d characters of [A-Za-z0-9._-]", i, w.Name, maxEnvLen)
		}
		target := webhookPrefix + w.Name
		if _, dup := out[target]; dup {
			return nil, fmt.Errorf("webhook %d: name %q is used twice: give each webhook its own name", i, w.Name)
		}
		out[target] = w
	}
	return out, nil
}

// Handler serves POST /api/v1/deploys, GET /api/v1/deploys,
// GET /api/v1/deploys/{id}, PATCH /api/v1/deploys/{id} and
// GET /api/v1/deploys/{id}/impact.
func (s *Service) Handler() http.Handler { return s.handler }

// Run delivers the outbox until ctx is done, then waits for its workers to
// end and returns nil.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Go(func() { w.run(ctx) })
	}
	<-ctx.Done() // also with no targets configured
	wg.Wait()
	return nil
}

// Close closes the deploy log. Call it after Run returned and the handler
// stopped serving.
func (s *Service) Close() error {
	s.closeOnce.Do(func() { s.closeError = s.log.Close() })
	return s.closeError
}

// kick wakes every delivery worker.
func (s *Service) kick() {
	for _, w := range s.workers {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// errUnavailable marks deploy log failures: the API answers 503.
var errUnavailable = errors.New("deploy log unavailable")
