package instrument

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// ImportPath is the collector endpoint the pusher posts to.
const ImportPath = "/api/v1/import/prometheus"

// Defaults for Options fields left zero.
const (
	DefaultInterval     = 10 * time.Second
	DefaultBufferBytes  = 8 << 20
	DefaultTimeout      = 10 * time.Second
	DefaultRetryMin     = time.Second
	DefaultRetryMax     = 30 * time.Second
	DefaultFlushTimeout = 5 * time.Second
	maxOptionLabels     = 16
)

// Options configure Start. Service and Env are required; every other zero
// field takes the default named in its comment.
type Options struct {
	// Collector is the collector's base URL, e.g. http://127.0.0.1:9470
	// (ImportPath is appended unless the URL already ends with it). Empty
	// means no push: Start only sets the labels and build info, for setups
	// where the agent scrapes Handler().
	Collector string
	// Collectors are more collector replicas (base URLs like Collector):
	// a push that fails at one is tried at the next at once, and the
	// backoff applies only when every replica failed.
	Collectors []string
	// Service and Env become the service and env labels of every series.
	Service, Env string
	// Version and Commit label telltale_build_info; the defaults come from
	// the binary's build info: see BuildVersion.
	Version, Commit string
	// Instance is the instance label added to pushed series so replicas of
	// a service do not overwrite each other; default os.Hostname(). Pull
	// setups get it from the scraper instead.
	Instance string
	// Labels are constant labels added to every series (at most 16; not
	// service, env or instance).
	Labels map[string]string
	// Token, if set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Interval between measurements; default DefaultInterval (10s).
	Interval time.Duration
	// BufferBytes bounds the compressed intervals kept for retry; when full
	// the oldest are dropped and counted. Default DefaultBufferBytes (8 MiB).
	BufferBytes int
	// Timeout of one push request; default DefaultTimeout (10s).
	Timeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff between retries;
	// defaults DefaultRetryMin (1s) and DefaultRetryMax (30s). A
	// Retry-After from the collector overrides the backoff.
	RetryMin, RetryMax time.Duration
	// FlushTimeout bounds how long stop (or ctx's end) keeps trying to
	// deliver what is buffered; default DefaultFlushTimeout (5s).
	FlushTimeout time.Duration
	// Logger receives push errors; default slog.Default(). A "component"
	// attribute is added.
	Logger *slog.Logger
	// Client sends the pushes; default a client with Timeout.
	Client *http.Client

	// SwitchURL is where the app serves SwitchHandler, as the collector
	// reaches it (e.g. "http://10.0.0.5:8080/switches"). With Collector
	// set, the switches are announced to the collector so they can be
	// flipped from its console and `annotator switch`. Empty: not
	// announced (flips at the app's endpoint still record changes).
	SwitchURL string
	// SwitchTokens are the bearer tokens SwitchHandler accepts for flips,
	// by name; the name is recorded as who flipped. Empty: flips need no
	// token (development only: do not expose such an endpoint).
	// Recording a flip at the collector uses Token, which then needs the
	// collector's deploy scope besides write.
	SwitchTokens map[string]string

	// tick, if set, replaces the interval ticker (tests drive time with it).
	tick <-chan time.Time
}

// identity is what Start fixes for a registry: the labels on every series.
type identity struct {
	service, env string
	labels       []constLabel // service, env, then Options.Labels sorted by name
}

func (id *identity) equal(o *identity) bool {
	return slices.Equal(id.labels, o.labels)
}

// Start sets the registry's standard labels (service, env, Options.Labels),
// registers telltale_build_info and, if Options.Collector is set, starts
// pushing every Options.Interval. The returned stop measures once more,
// delivers what is buffered (for at most Options.FlushTimeout) and returns
// when the pusher has ended; it is safe to call more than once. Cancelling
// ctx has the same effect as stop. Start fails on invalid Options, or if the
// registry already pushes or was started with other labels.
func (r *Registry) Start(ctx context.Context, opts Options) (stop func(), err error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	id := &identity{service: opts.Service, env: opts.Env}
	id.labels = append(id.labels, newConstLabel("service", opts.Service), newConstLabel("env", opts.Env))
	for _, k := range slices.Sorted(maps.Keys(opts.Labels)) {
		id.labels = append(id.labels, newConstLabel(k, sanitizeLabelValue(opts.Labels[k])))
	}

	r.mu.Lock()
	if r.ident != nil && !r.ident.equal(id) {
		prev := r.ident
		r.mu.Unlock()
		return nil, fmt.Errorf("instrument: registry already started as service=%q env=%q: use the same Options.Service, Env and Labels, or a separate Registry", prev.service, prev.env)
	}
	if r.pushing && opts.Collector != "" {
		r.mu.Unlock()
		return nil, errors.New("instrument: registry already pushes: call the stop func of the first Start before starting again")
	}
	r.ident = id
	if opts.Collector != "" {
		r.pushing = true
	}
	r.mu.Unlock()

	b := append([]byte(nil), "telltale_build_info{"...)
	b = appendLabelPair(b, "version", sanitizeLabelValue(opts.Version))
	b = append(b, ',')
	b = appendLabelPair(b, "commit", sanitizeLabelValue(opts.Commit))
	b = append(b, ',')
	b = appendLabelPair(b, "goversion", runtime.Version())
	b = append(b, '}')
	r.set.GetOrCreateGauge(string(b), func() float64 { return 1 })

	stopSwitches, switchesDone := r.board().start(ctx, &opts)
	if opts.Collector == "" {
		return func() {}, nil
	}
	p := newPusher(r, &opts, id)
	done := p.run(ctx)
	return func() {
		p.stop()
		stopSwitches()
		<-done
		<-switchesDone
		r.mu.Lock()
		r.pushing = false
		r.mu.Unlock()
	}, nil
}

// Start is Default().Start.
func Start(ctx context.Context, opts Options) (stop func(), err error) {
	return defaultRegistry.Start(ctx, opts)
}

// Validate reports what Start would refuse in o, without starting
// anything (for -dry-run paths).
func (o Options) Validate() error {
	return o.fill()
}

// fill validates opts and sets defaults.
func (o *Options) fill() error {
	if o.Service == "" {
		return errors.New("instrument: Options.Service is empty: set it to the service's name, e.g. \"checkout\"")
	}
	if o.Env == "" {
		return errors.New("instrument: Options.Env is empty: set it to the environment, e.g. \"prod\" or \"dev\"")
	}
	if len(o.Labels) > maxOptionLabels {
		return fmt.Errorf("instrument: Options.Labels has %d labels, limit %d: keep per-process constants only", len(o.Labels), maxOptionLabels)
	}
	for k := range o.Labels {
		if !validLabelName(k) {
			return fmt.Errorf("instrument: Options.Labels: invalid label name %q: use [a-zA-Z_][a-zA-Z0-9_]*", k)
		}
		if k == "service" || k == "env" || k == "instance" || k == "__name__" {
			return fmt.Errorf("instrument: Options.Labels: label %q is set by Options.Service/Env/Instance: remove it from Labels", k)
		}
	}
	o.Service, o.Env = sanitizeLabelValue(o.Service), sanitizeLabelValue(o.Env)
	if o.Version == "" || o.Commit == "" {
		v, c := BuildVersion()
		if o.Version == "" {
			o.Version = v
		}
		if o.Commit == "" {
			o.Commit = c
		}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Interval", &o.Interval, DefaultInterval},
		{"Timeout", &o.Timeout, DefaultTimeout},
		{"RetryMin", &o.RetryMin, DefaultRetryMin},
		{"RetryMax", &o.RetryMax, DefaultRetryMax},
		{"FlushTimeout", &o.FlushTimeout, DefaultFlushTimeout},
	} {
		if *d.v < 0 {
			return fmt.Errorf("instrument: Options.%s=%s is negative: use a positive duration, or 0 for the default %s", d.name, *d.v, d.def)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.RetryMax < o.RetryMin {
		return fmt.Errorf("instrument: Options.RetryMax=%s is below RetryMin=%s: raise RetryMax", o.RetryMax, o.RetryMin)
	}
	if o.BufferBytes < 0 {
		return fmt.Errorf("instrument: Options.BufferBytes=%d is negative: use a size in bytes, or 0 for the default %d", o.BufferBytes, DefaultBufferBytes)
	}
	if o.BufferBytes == 0 {
		o.BufferBytes = DefaultBufferBytes
	}
	importURL := func(field, raw string) (string, error) {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("instrument: Options.%s=%q is not an http(s) URL: use e.g. http://127.0.0.1:9470", field, raw)
		}
		if !strings.HasSuffix(u.Path, ImportPath) {
			u.Path = strings.TrimSuffix(u.Path, "/") + ImportPath
		}
		return u.String(), nil
	}
	if o.Collector == "" && len(o.Collectors) > 0 {
		return errors.New("instrument: Options.Collectors without Options.Collector: put the first replica in Collector")
	}
	if o.Collector != "" {
		var err error
		if o.Collector, err = importURL("Collector", o.Collector); err != nil {
			return err
		}
		for i, c := range o.Collectors {
			if o.Collectors[i], err = importURL("Collectors", c); err != nil {
				return err
			}
		}
	}
	if o.SwitchURL != "" {
		u, err := url.Parse(o.SwitchURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("instrument: Options.SwitchURL=%q is not an http(s) URL: use the URL the collector reaches SwitchHandler at, e.g. http://10.0.0.5:8080/switches", o.SwitchURL)
		}
	}
	for name, tok := range o.SwitchTokens {
		if name == "" || len(tok) < 16 {
			return fmt.Errorf("instrument: Options.SwitchTokens[%q]: every token needs a name and at least 16 characters", name)
		}
	}
	if o.Instance == "" {
		o.Instance, _ = os.Hostname()
		if o.Instance == "" {
			o.Instance = "unknown"
		}
	}
	o.Instance = sanitizeLabelValue(o.Instance)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "instrument")
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	return nil
}
