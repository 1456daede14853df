package rules

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/notifier"

	"github.com/telltale-dev/telltale/retry"
)

// alertmanagers is Prometheus' notifier with the Alertmanagers of
// Options.Alertmanagers as static targets, and a send that retries with
// backoff.
type alertmanagers struct {
	n        *notifier.Manager
	targets  map[string][]*targetgroup.Group
	tsets    chan map[string][]*targetgroup.Group
	done     chan struct{}
	stopping chan struct{} // closed by stop: sends still queued get one attempt each
}

// newAlertmanagers configures the notifier for opts.Alertmanagers.
func newAlertmanagers(opts Options, log *slog.Logger) (*alertmanagers, error) {
	var cfgs config.AlertmanagerConfigs
	targets := map[string][]*targetgroup.Group{}
	for i, raw := range opts.Alertmanagers {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("-alertmanager.url=%q is not an Alertmanager base URL: set it like http://alertmanager:9093 (a path prefix is allowed, the /api/v2/alerts part is added)", redactUserinfo(raw))
		}
		cfg := config.DefaultAlertmanagerConfig
		cfg.Scheme = u.Scheme
		cfg.PathPrefix = strings.TrimSuffix(u.Path, "/")
		cfg.APIVersion = config.AlertmanagerAPIVersionV2
		// The notifier bounds a whole send (all retries) by Timeout; the
		// alert is re-sent every ResendDelay anyway, so retrying longer
		// would only queue the next send behind this one.
		cfg.Timeout = model.Duration(opts.ResendDelay)
		cfg.HTTPClientConfig = config_util.DefaultHTTPClientConfig
		if u.User != nil {
			pw, _ := u.User.Password()
			cfg.HTTPClientConfig.BasicAuth = &config_util.BasicAuth{Username: u.User.Username(), Password: config_util.Secret(pw)}
		}
		cfgs = append(cfgs, &cfg)
		targets[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{{
			Source:  fmt.Sprintf("-alertmanager.url[%d]", i),
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
		}}
	}
	stopping := make(chan struct{})
	n := notifier.NewManager(&notifier.Options{
		Do:              retryingDo(opts.AlertmanagerTimeout, opts.MinBackoff, opts.MaxBackoff, stopping, log),
		QueueCapacity:   10_000,
		DrainOnShutdown: true,
		Registerer:      opts.Registerer,
	}, model.UTF8Validation, log.With("subcomponent", "notifier"))
	if err := n.ApplyConfig(&config.Config{AlertingConfig: config.AlertingConfig{AlertmanagerConfigs: cfgs}}); err != nil {
		return nil, fmt.Errorf("-alertmanager.url: %w", err)
	}
	return &alertmanagers{n: n, targets: targets, tsets: make(chan map[string][]*targetgroup.Group, 1),
		done: make(chan struct{}), stopping: stopping}, nil
}

// start runs the notifier until stop, with the static targets as its only
// "discovery" update, and returns once it has a send loop for each: an
// alert sent before that would be dropped.
func (a *alertmanagers) start() {
	a.tsets <- a.targets
	go func() {
		defer close(a.done)
		a.n.Run(a.tsets)
	}()
	for i := 0; len(a.n.Alertmanagers()) < len(a.targets) && i < 5000; i++ {
		time.Sleep(time.Millisecond) // the notifier applies targets on its own goroutine
	}
}

// stop sends what the queues hold (one attempt per batch) and waits.
func (a *alertmanagers) stop() {
	close(a.stopping)
	a.n.Stop()
	<-a.done
}

// retryingDo is the notifier's HTTP call with retries: a connection error,
// a 5xx or a 429 is retried with exponential backoff until ctx (the
// notifier's per-send deadline) ends; each attempt is bounded by
// attemptTimeout. A 4xx other than 429 is final: the Alertmanager refused
// the alerts and would refuse them again. Once stopping is closed (the
// collector shuts down and drains the queues) nothing is retried, so a
// down Alertmanager cannot hold up the shutdown.
func retryingDo(attemptTimeout, minWait, maxWait time.Duration, stopping <-chan struct{}, log *slog.Logger) func(context.Context, *http.Client, *http.Request) (*http.Response, error) {
	return func(ctx context.Context, c *http.Client, req *http.Request) (*http.Response, error) {
		if c == nil {
			c = http.DefaultClient
		}
		for attempt := 1; ; attempt++ {
			r := req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			resp, err := c.Do(r.WithContext(actx))
			if err == nil && resp.StatusCode/100 != 5 && resp.StatusCode != http.StatusTooManyRequests {
				// The notifier reads and closes the body; keep the attempt's
				// context alive until then.
				resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
				return resp, nil
			}
			if err == nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				err = fmt.Errorf("alertmanager answered %s", resp.Status)
			}
			cancel()
			wait := retry.Backoff(attempt, minWait, maxWait)
			select {
			case <-stopping:
				return nil, fmt.Errorf("%w (not retried: shutting down)", err)
			default:
			}
			if dl, ok := ctx.Deadline(); (ok && time.Until(dl) < wait) || ctx.Err() != nil {
				return nil, fmt.Errorf("%w (gave up after %d attempts; the alerts are sent again within the resend delay)", err, attempt)
			}
			log.Warn("cannot send alerts to alertmanager; retrying", "url", redactUserinfo(req.URL.String()), "attempt", attempt, "retry_in", wait, "err", err)
			if retry.Sleep(ctx, wait) != nil {
				return nil, err
			}
		}
	}
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// redactUserinfo drops a password from a URL for messages.
func redactUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
