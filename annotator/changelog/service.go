package changelog

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

	"github.com/telltale-dev/telltale/grafana"
	"github.com/telltale-dev/telltale/samples"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// SampleWriter stores samples. The collector's ingest path implements it;
// WriteSamples must return nil only once every sample of b is committed (to
// the TSDB WAL). It must not keep b after returning.
type SampleWriter interface {
	WriteSamples(ctx context.Context, b *samples.Batch) error
}

// Webhook formats.
const (
	FormatSlack = "slack" // Slack-compatible {"text": ...} (also Mattermost, Rocket.Chat, Discord's /slack endpoint)
	FormatJSON  = "json"  // the change object
)

// WebhookConfig is one outgoing chat webhook.
type WebhookConfig struct {
	// Name identifies the webhook in the delivery state, metrics and logs.
	// Default: the URL's host and a short hash of the URL (the URL itself,
	// often a secret, is never shown).
	Name string
	// URL receives a POST per change event.
	URL string
	// Format is FormatSlack (default) or FormatJSON.
	Format string
	// SkipKinds are kinds of change this webhook is not told about (the
	// collector skips alerts for webhooks the rules engine already tells).
	SkipKinds []string
}

// Target is a place the outbox delivers every change to, besides the
// built-in series, Grafana and webhook targets: a chat network, a ticket
// system. Each target gets its own worker, retries and backoff, so a slow
// one delays only itself; delivery is at least once (a target that must
// not show an event twice dedupes on Entry.ChangeID and Entry.Seq).
type Target interface {
	// Name identifies the target in the outbox, the API's delivery state
	// (Delivery.Others), metrics and logs, e.g. "chat:irc:ops". It must be
	// unique, stable across restarts (pending entries are found by it) and
	// 1-64 characters of [a-z0-9._:-].
	Name() string
	// Deliver makes the target reflect change c after entry e's event
	// (EventRecorded, EventFinished, EventImpact). Errors are retried with
	// backoff for Options.RetryFor, except Permanent ones; Refused ones
	// wait at least Options.AuthBackoff.
	Deliver(ctx context.Context, e Entry, c changes.Change) error
}

// A Target that also implements BatchTarget gets the due entries of a
// round together.

// Permanent marks a delivery error that retrying will not fix: the entry
// is marked failed at once.
func Permanent(err error) error { return &permanentError{err} }

// Refused marks a delivery refused for its credentials: retried slowly
// (Options.AuthBackoff) while someone fixes them.
func Refused(err error) error { return &authError{err} }

// Options configures a Service. Zero values take the documented defaults.
type Options struct {
	// DBPath is the change log's SQLite file, or a postgres:// URL for a
	// log that collector replicas share; required. A deploy log of an
	// older collector at that path is migrated on open.
	DBPath string
	// ClaimFor is how long a replica holds the outbox entries it took on
	// PostgreSQL (Log.ClaimFor); default 2 minutes. An attempt holds its
	// entry at least for its timeout plus 5s, whatever ClaimFor says.
	ClaimFor time.Duration
	Logger   *slog.Logger // nil means slog.Default()
	Metrics  *metrics.Set // default: a new set nobody scrapes
	// Writer receives the change series; nil turns them off.
	Writer SampleWriter
	// Grafana receives the annotations; nil turns them off.
	Grafana  Annotator
	Webhooks []WebhookConfig
	// Targets are more outbox targets (chat ...); see Target.
	Targets []Target
	// Catalog, when set, tells which services and envs have data: a
	// change that would mark no graph of its service gets a warning, and
	// an impact report without requests says why. nil turns both off.
	Catalog Catalog
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnRecorded is called after a change is created or changed and
	// committed (a superseded change too), e.g. to push it to websocket
	// tail clients. It runs on the request goroutine and must not block.
	// May be nil.
	OnRecorded func(changes.Change)

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
	// HTTPClient sends webhooks and relays switch flips; default a client
	// with DeliveryTimeout.
	HTTPClient *http.Client

	// Impact, when set, analyses what each change of Impact.Kinds did to
	// its service's key signals once its after window passed, stores the
	// report with the change and sends its one-line summary to the series,
	// Grafana and the webhooks. nil turns impact analysis off.
	Impact *ImpactOptions
}

// Service is the change API and log. Create it with Open; serve Handler;
// run Run in a goroutine; call Close after Run returned.
type Service struct {
	log        *Log
	opts       Options
	logger     *slog.Logger
	m          *serviceMetrics
	workers    []*worker
	webhooks   map[string]WebhookConfig // by target
	others     map[string]bool          // names of Options.Targets
	impact     *impactRunner            // nil: impact analysis off
	switches   *switchboard
	handler    http.Handler
	closeOnce  sync.Once
	closeError error
}

// Open opens the change log at opts.DBPath and returns the Service.
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
		return nil, fmt.Errorf("change delivery MaxBackoff %s is below MinBackoff %s: raise MaxBackoff", opts.MaxBackoff, opts.MinBackoff)
	}
	if g, ok := opts.Grafana.(*grafana.Client); ok && g == nil {
		opts.Grafana = nil // a typed nil would pass the nil check and panic later
	}
	webhooks, err := checkWebhooks(opts.Webhooks)
	if err != nil {
		return nil, err
	}
	others := map[string]bool{}
	for i, t := range opts.Targets {
		n := t.Name()
		if !validTargetName(n) || n == targetSeries || n == targetGrafana || n == targetImpact || webhooks[n].URL != "" || others[n] {
			return nil, fmt.Errorf("BUG: outbox target %d has name %q: want a unique 1-64 characters of [a-z0-9._:-], not series, grafana, impact or a webhook's", i, n)
		}
		others[n] = true
	}
	l, err := OpenLog(ctx, opts.DBPath)
	if err != nil {
		return nil, err
	}
	if opts.ClaimFor > 0 {
		l.ClaimFor = opts.ClaimFor
	}
	s := &Service{
		log:      l,
		opts:     opts,
		logger:   opts.Logger.With("component", "changes"),
		m:        newServiceMetrics(opts.Metrics),
		webhooks: webhooks,
		others:   others,
	}
	s.switches = newSwitchboard(s)
	if opts.Writer != nil {
		s.workers = append(s.workers, s.newWorker(targetSeries, targetSeries, s.deliverSeries))
	}
	if opts.Grafana != nil {
		s.workers = append(s.workers, s.newWorker(targetGrafana, targetGrafana, s.deliverGrafana))
	}
	for target := range webhooks {
		s.workers = append(s.workers, s.newWorker(target, "webhook", s.deliverWebhook))
	}
	for _, t := range opts.Targets {
		w := s.newWorker(t.Name(), "other", t.Deliver)
		w.batch, _ = t.(BatchTarget)
		s.workers = append(s.workers, w)
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

func validTargetName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

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
		if !changes.ValidLabel(w.Name) {
			return nil, fmt.Errorf("webhook %d: name %q must be 1-64 characters of [A-Za-z0-9._-]", i, w.Name)
		}
		target := webhookPrefix + w.Name
		if _, dup := out[target]; dup {
			return nil, fmt.Errorf("webhook %d: name %q is used twice: give each webhook its own name", i, w.Name)
		}
		out[target] = w
	}
	return out, nil
}

// Handler serves the change API (see the package doc for the routes). It
// does no authentication: Scope tells the scope each request needs.
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

// Close closes the change log. Call it after Run returned and the handler
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

// errUnavailable marks change log failures: the API answers 503.
var errUnavailable = errors.New("change log unavailable")
