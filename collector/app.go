package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	promstorage "github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/fanout"
	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/collector/query"
	"github.com/telltale-dev/telltale/collector/rules"
	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/collector/tail"
	"github.com/telltale-dev/telltale/samples"
)

// app is the wired collector: storage, write path, query API, HTTP server.
type app struct {
	cfg     *config
	log     *slog.Logger
	set     *metrics.Set
	store   *storage.Storage // nil in forward mode
	writer  *ingest.Writer
	ingest  *ingest.Handlers
	query   *query.API
	auth    *auth.Checker
	mux     *http.ServeMux
	changes *changelog.Service
	chat    *chat.Service  // chat networks (wire_chat.go, from addChanges); nil without any
	tail    *tail.Hub      // live tail; changes go to tail.PublishDeploy and PublishChange
	rules   *rules.Manager // rules engine (wire_rules.go); serves /api/v1/rules and /api/v1/alerts
	render  *renderer      // charts as PNG (wire_render.go): /api/v1/render and !graph's images
	// observers see every committed write: the result cache, the tail.
	observers observers
	ready     atomic.Bool
	workers   []func(ctx context.Context) error // background loops, run until ctx is done
	closers   []func() error                    // run in reverse order after the server stopped

	// registry holds the Prometheus-instrumented parts' own metrics (the
	// TSDB's, none in forward mode; the rules engine's), which /metrics
	// serves next to Telltale's.
	registry *prometheus.Registry
	// fanout connects the replicas over NATS; nil without -nats.*.
	fanout *fanout.Bus
}

func newApp(ctx context.Context, cfg *config, logger *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: logger, set: metrics.NewSet(), mux: http.NewServeMux()}
	var err error
	if a.auth, err = auth.Load(cfg.tokensFile, a.set); err != nil {
		return nil, err
	}
	appendable, readable, err := a.openStorage(ctx)
	if err != nil {
		return nil, err
	}
	a.writer = ingest.NewWriter(appendable, ingest.Options{
		Limits: ingest.Limits{
			MaxLabelsPerSeries: cfg.maxLabels, MaxLabelNameLen: cfg.maxLabelNameLen,
			MaxLabelValueLen: cfg.maxLabelValueLen, MaxFutureDrift: cfg.maxFutureDrift,
			MaxConcurrentInserts: cfg.maxConcurrent, MaxQueueDuration: cfg.maxQueueDuration,
			MaxHistogramBuckets: cfg.maxHistBuckets, MaxExemplarLabelBytes: cfg.maxExemplarLabel,
		},
		Logger: logger, Metrics: a.set,
	})
	a.ingest = ingest.NewHandlers(a.writer, ingest.HTTPOptions{
		MaxBodyBytes: cfg.maxBodyBytes, MaxDecodedBytes: cfg.maxDecodedBytes,
		BodyReadTimeout: cfg.bodyReadTimeout, MaxInflightBytes: cfg.maxInflightBytes,
		Logger: logger, Metrics: a.set,
	})
	a.query = query.New(readable, query.Options{
		Timeout: cfg.queryTimeout, MaxSamples: cfg.queryMaxSamples, LookbackDelta: cfg.lookbackDelta,
		MaxConcurrent: cfg.queryMaxConcurrent, MaxQueued: cfg.queryMaxQueued, MaxQueueWait: cfg.queryMaxQueueWait,
		MaxQueryLength: cfg.queryMaxLength, MaxQueryDepth: cfg.queryMaxDepth, WriteTimeout: cfg.queryWriteTimeout,
		CacheMaxBytes: cacheBytes(cfg.queryCacheBytes), CacheFreshness: cfg.queryCacheFreshness, Parallel: cfg.queryParallel, MinSliceSteps: cfg.queryMinSliceSteps,
		NoFastPath: !cfg.queryFastPath,
		Features:   cfg.queryFeatures, DataDir: cfg.dataDir, EnableAdmin: true, CORSOrigin: cfg.corsOrigin,
		Flags: cfg.flagValues, Ready: a.ready.Load, Gatherer: a.registry,
		Metadata: a.writer.Metadata(), BuildInfo: query.BuildInfo{Version: buildVersion()},
		// The rules engine (wire_rules.go) is created after the API; these
		// are asked per request, when it is there.
		Rules:         func(context.Context) v1.RulesRetriever { return a.rules },
		Alertmanagers: func(context.Context) v1.AlertmanagerRetriever { return a.rules },
		Logger:        logger, Metrics: a.set,
	})
	if o := a.query.Observer(); o != nil && a.store != nil {
		// In forward mode the cache learns of writes once the engine has
		// them (observeLate), not when they are queued.
		a.addObserver(o)
	}
	a.routes()
	// The rest of the wiring, one wire_*.go file each, in this order: each
	// step uses what the steps above it set (the list says what), none is
	// optional (a flag may make one do nothing).
	for _, wire := range []func(context.Context) error{
		a.addHostMetrics, // writes through a.writer
		a.addSelfMetrics, // writes through a.writer
		a.addTail,        // observes a.writer: before anything whose writes the tail must see
		a.addFanout,      // connects a.tail and a.query's cache to the other replicas (NATS)
		a.addChanges,     // publishes to a.tail; analyses impact with a.query; writes change series through a.writer; the chat networks (wire_chat.go) are its outbox targets
		a.addRules,       // reads a.changes (alerts name changes, alerts are recorded as changes); writes through a.writer
		a.addRender,      // draws charts of a.query's results with a.changes' markers; !graph (addChat) reads it when a command runs
		a.addOTLP,        // write endpoints on a.writer
		a.addInflux,
		a.addConsole, // reads the board definitions and serves the UI; last, so every API it calls is mounted
	} {
		if err := wire(ctx); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

// externalURL is the collector as people reach it (-rules.external-url,
// default http://<-listen>, https with -tls.cert-file): links in alert
// notifications and chat messages point there.
func (a *app) externalURL() string {
	if a.cfg.rulesExternalURL != "" {
		return strings.TrimRight(a.cfg.rulesExternalURL, "/")
	}
	if a.cfg.tlsCert != "" {
		return "https://" + a.cfg.listen
	}
	return "http://" + a.cfg.listen
}

// cacheBytes maps -query.cache-size (0: off) to query.Options (negative: off).
func cacheBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// addObserver makes o see every committed write from now on.
func (a *app) addObserver(o ingest.Observer) {
	a.observers = append(a.observers, o)
	a.writer.SetObserver(a.observers)
}

// observers tells each of its members about a committed write.
type observers []ingest.Observer

func (os observers) Active() bool {
	for _, o := range os {
		if o.Active() {
			return true
		}
	}
	return false
}

func (os observers) Observe(b *samples.Batch, refs []promstorage.SeriesRef) {
	for _, o := range os {
		if o.Active() {
			o.Observe(b, refs)
		}
	}
}

// routes mounts the core endpoints, each behind the scope it needs.
func (a *app) routes() {
	w := func(h http.HandlerFunc) http.Handler { return a.auth.Require(auth.ScopeWrite, h) }
	a.mux.Handle("/api/v1/write", w(a.ingest.RemoteWrite))
	a.mux.Handle("/api/v1/import/prometheus", w(a.ingest.ImportPrometheus))
	qh := a.query.Handler()
	a.mux.Handle("/api/v1/", a.auth.Require(auth.ScopeRead, qh))
	if a.store != nil {
		a.mux.Handle("/api/v1/admin/", a.auth.Require(auth.ScopeAdmin, qh))
	} else {
		a.mux.Handle("/api/v1/admin/", a.auth.Require(auth.ScopeAdmin, http.HandlerFunc(notInForwardMode)))
	}
	// Prometheus' probes, for tools that expect them; open like /healthz.
	a.mux.Handle("/-/healthy", qh)
	a.mux.Handle("/-/ready", qh)
	a.mux.Handle("/metrics", a.auth.Require(auth.ScopeRead, http.HandlerFunc(a.serveMetrics)))
	// Profiles for finding where the time goes (go tool pprof http://.../debug/pprof/profile).
	a.mux.Handle("/debug/pprof/", a.auth.Require(auth.ScopeAdmin, http.HandlerFunc(pprof.Index)))
	// Without the slash too, so ServeMux's redirect comes after the check.
	a.mux.Handle("/debug/pprof", a.auth.Require(auth.ScopeAdmin, http.RedirectHandler("/debug/pprof/", http.StatusMovedPermanently)))
	a.mux.Handle("/debug/pprof/profile", a.auth.Require(auth.ScopeAdmin, http.HandlerFunc(pprof.Profile)))
	a.mux.Handle("/debug/pprof/trace", a.auth.Require(auth.ScopeAdmin, http.HandlerFunc(pprof.Trace)))
	a.mux.Handle("/debug/pprof/symbol", a.auth.Require(auth.ScopeAdmin, http.HandlerFunc(pprof.Symbol)))
	// Probes stay open: they reveal nothing and orchestrators call them without tokens.
	a.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	a.mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready: starting or shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
}

// handler is the collector's whole HTTP surface: the mux behind the
// cross-site and DNS-rebinding guard.
func (a *app) handler() http.Handler {
	var trusted *regexp.Regexp
	if a.cfg.corsOrigin != "" {
		trusted = regexp.MustCompile("^(?s:" + a.cfg.corsOrigin + ")$")
	}
	g := auth.NewSiteGuard(auth.SiteOptions{
		AuthEnabled: a.auth.Enabled(), AllowedHosts: strings.Split(a.cfg.allowedHosts, ","),
		TrustedOrigins: trusted, Metrics: a.set,
	})
	return g.Wrap(a.mux)
}

// serveMetrics writes Telltale's own metrics, process metrics and the
// embedded TSDB's prometheus_tsdb_* metrics (none in forward mode).
func (a *app) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	a.writeMetrics(w)
}

// writeMetrics writes what /metrics serves; -self-metrics records the same.
func (a *app) writeMetrics(w io.Writer) {
	a.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
	mfs, err := a.registry.Gather()
	if err != nil {
		a.log.Warn("cannot gather tsdb metrics", "component", "selfmon", "err", err)
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		_ = enc.Encode(mf)
	}
}

// run serves until ctx is done, then shuts down in order: stop accepting,
// drain requests and websocket clients, stop background loops, flush and
// close storage.
func (a *app) run(ctx context.Context) error {
	// The certificate first: a bad one must not leave a listener open.
	var tlsCfg *tls.Config
	if a.cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.tlsCert, a.cfg.tlsKey)
		if err != nil {
			a.close()
			return fmt.Errorf("cannot load -tls.cert-file/-tls.key-file: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", a.cfg.listen)
	if err != nil {
		a.close()
		return fmt.Errorf("cannot listen on -listen=%s: %w; is another collector running? pick another port", a.cfg.listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	if !a.auth.Enabled() && !isLoopback(ln.Addr()) {
		a.log.Warn("LISTENING BEYOND LOOPBACK WITHOUT AUTH: anyone who can reach this address can write, read and delete nothing but see everything; set -auth.tokens-file",
			"component", "collector", "listen", ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           a.logPanics(a.handler()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.With("component", "http").Handler(), slog.LevelWarn),
	}

	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, f := range a.workers {
		wg.Go(func() {
			if err := f(wctx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("background worker stopped", "component", "collector", "err", err)
			}
		})
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	a.ready.Store(true)
	scheme := "http"
	if a.cfg.tlsCert != "" {
		scheme = "https"
	}
	a.log.Info("collector listening", "component", "collector", "url", scheme+"://"+ln.Addr().String(),
		"version", buildVersion(), "auth", a.auth.Enabled(), "data", a.cfg.dataDir)
	if a.cfg.logFormat == "text" {
		fmt.Fprint(a.cfg.stderr, nextSteps(scheme+"://"+ln.Addr().String()))
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	a.ready.Store(false)
	a.log.Info("shutting down", "component", "collector")
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.shutdownGrace)
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Warn("graceful shutdown timed out; closing connections", "component", "collector", "err", err)
		_ = srv.Close()
	}
	cancel()
	stopWorkers()
	wg.Wait()
	if err := a.close(); err != nil && runErr == nil {
		runErr = err
	}
	a.log.Info("stopped", "component", "collector")
	return runErr
}

func (a *app) close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	a.closers = nil
	return errors.Join(errs...)
}

// logPanics turns a handler panic into a 500 and a log line instead of a
// dropped connection, and counts it.
func (a *app) logPanics(next http.Handler) http.Handler {
	panics := a.set.NewCounter("telltale_http_panics_total")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				panics.Inc()
				a.log.Error("BUG: handler panicked", "component", "http", "path", r.URL.Path, "panic", fmt.Sprint(v))
				http.Error(w, "internal error; see the collector log", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
