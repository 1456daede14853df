package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/agent/discovery"
	"github.com/telltale-dev/telltale/agent/host"
	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/agent/scrape"
	"github.com/telltale-dev/telltale/agent/sender"
	"github.com/telltale-dev/telltale/agent/spool"
	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// agent is the collection loop: every interval it collects the host,
// scrapes the apps, adds its own metrics and hands the encoded bodies to
// the sender.
type agent struct {
	cfg     *config
	logger  *slog.Logger
	set     *metrics.Set
	host    *host.Collector
	scraper *scrape.Scraper // nil without scrape targets
	sender  *sender.Sender
	enc     push.Encoder

	self      promtext.Parser // parses the agent's own metrics
	selfBuf   bytes.Buffer
	batch     samples.Batch
	hostErr   string
	lastMeta  time.Time // when host metadata was last sent
	cycles    *metrics.Counter
	collectMs *metrics.PrometheusHistogram
}

// runAgent wires the components and runs until ctx is done. On the way out
// it stops collecting, lets the sender spool what is in memory and closes
// the spool.
func runAgent(ctx context.Context, cfg *config, logger *slog.Logger) error {
	set := metrics.NewSet()
	userAgent := "telltale-agent/" + version
	client, err := push.New(push.Options{
		URL: cfg.collector, URLs: cfg.collectorReplicas, Version: cfg.version, TokenFile: cfg.tokenFile, TLS: cfg.tls,
		Timeout: cfg.sendTimeout, MaxBackoff: cfg.retryMaxBackoff, UserAgent: userAgent,
		Logger: logger, Metrics: set,
	})
	if err != nil {
		return err
	}
	sp, err := spool.Open(spool.Options{Dir: cfg.spoolDir, MaxBytes: cfg.spoolMaxBytes, SyncInterval: cfg.spoolSync, Logger: logger, Metrics: set})
	if err != nil {
		return fmt.Errorf("-spool-dir %s: %w", cfg.spoolDir, err)
	}
	if b, n := sp.Size(); n > 0 {
		logger.Info("spool holds data from an earlier run; replaying it", "component", "agent", "records", n, "bytes", b)
	}
	a := &agent{
		cfg:    cfg,
		logger: logger.With("component", "agent"),
		set:    set,
		host:   host.New(host.Options{Root: cfg.root, Instance: cfg.instance, Labels: cfg.labels, TextfileDir: cfg.textfileDir}),
		sender: sender.New(sender.Options{Client: client, Spool: sp, Logger: logger, Metrics: set}),
		enc:    push.Encoder{Version: cfg.version, MaxSamples: cfg.maxSamples},
		cycles: set.NewCounter("telltale_agent_collections_total"),
	}
	a.collectMs = set.NewPrometheusHistogram("telltale_agent_collect_duration_seconds")
	set.NewGauge("telltale_agent_info{version=\""+version+"\"}", func() float64 { return 1 })
	a.self.ExtraLabels = mergeSorted(cfg.labels, []samples.Label{{Name: "instance", Value: cfg.instance}, {Name: "job", Value: "telltale-agent"}})
	var discoverers []discoverer
	if len(cfg.jobs) > 0 {
		a.scraper, err = scrape.New(scrape.Options{Jobs: cfg.jobs, Labels: cfg.labels, MaxBodyBytes: cfg.scrapeMaxBodyBytes,
			UserAgent: userAgent, Logger: logger, Metrics: set})
		if err == nil {
			discoverers, err = buildDiscoverers(cfg.discovery, discovery.Options{Logger: logger, Metrics: set, UserAgent: userAgent})
		}
		if err != nil {
			sp.Close()
			return err
		}
	}

	var wg sync.WaitGroup
	for _, d := range discoverers {
		wg.Go(func() {
			d.Run(ctx, func(gs []scrape.Group) { a.scraper.Sync(d.job, gs) })
		})
	}
	if cfg.listen != "" {
		ln, err := net.Listen("tcp", cfg.listen)
		if err != nil {
			sp.Close()
			return fmt.Errorf("-listen %s: %w", cfg.listen, err)
		}
		srv := &http.Server{Handler: a.metricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() { _ = srv.Serve(ln) })
		context.AfterFunc(ctx, func() { srv.Close() })
	}
	sendDone := make(chan error, 1)
	go func() { sendDone <- a.sender.Run(ctx) }()

	a.logger.Info("agent started", "version", version, "collector", cfg.collector, "collector_replicas", len(cfg.collectorReplicas), "interval", cfg.interval,
		"instance", cfg.instance, "scrape_jobs", len(cfg.jobs), "static_targets", staticTargets(cfg.jobs),
		"service_discovery_configs", len(cfg.discovery), "spool_dir", cfg.spoolDir)
	a.loop(ctx)
	err = <-sendDone
	wg.Wait()
	if cerr := sp.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("-spool-dir %s: %w", cfg.spoolDir, cerr))
	}
	a.logger.Info("agent stopped")
	return err
}

// loop collects at once and then every interval until ctx is done.
func (a *agent) loop(ctx context.Context) {
	a.cycle(ctx, time.Now())
	t := time.NewTicker(a.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.cycle(ctx, now)
		}
	}
}

// cycle collects everything with timestamp now and submits it: the host
// and agent series first, then the scraped apps (which may take up to
// their timeout).
func (a *agent) cycle(ctx context.Context, now time.Time) {
	start := time.Now()
	a.cycles.Inc()
	a.batch.Reset()
	err := a.host.Collect(now, &a.batch)
	a.logHostErr(err)
	// Metadata (HELP, TYPE) once a minute, as Prometheus sends it.
	if now.Sub(a.lastMeta) >= time.Minute {
		a.host.Metadata(&a.batch)
		a.lastMeta = now
	}
	a.appendSelf(now)
	a.submit()
	if a.scraper != nil {
		a.batch.Reset()
		a.scraper.Scrape(ctx, now, &a.batch)
		a.submit()
	}
	a.collectMs.UpdateDuration(start)
}

func (a *agent) submit() {
	err := a.enc.Encode(&a.batch, func(body []byte, n int) error {
		a.sender.Submit(body, n)
		return nil
	})
	if err != nil {
		a.logger.Error("cannot encode samples", "err", err)
	}
}

// appendSelf adds the agent's own metrics (telltale_agent_*, process_*,
// go_*) with job="telltale-agent".
func (a *agent) appendSelf(now time.Time) {
	a.selfBuf.Reset()
	a.set.WritePrometheus(&a.selfBuf)
	metrics.WriteProcessMetrics(&a.selfBuf)
	if err := a.self.Parse(a.selfBuf.Bytes(), now.UnixMilli(), &a.batch); err != nil {
		a.logger.Error("BUG: cannot parse the agent's own metrics", "err", err)
	}
}

// logHostErr logs host collection errors when they change, not every cycle.
func (a *agent) logHostErr(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	switch {
	case msg == a.hostErr:
	case msg == "":
		a.logger.Info("host metrics complete again")
	default:
		a.logger.Warn("some host metrics cannot be read", "err", msg)
	}
	a.hostErr = msg
}

func (a *agent) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		a.set.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

// discoverer is a service discovery mechanism and the job it feeds.
type discoverer struct {
	discovery.Discoverer
	job string
}

// buildDiscoverers makes the service discovery mechanisms of the jobs.
func buildDiscoverers(specs []sdSpec, opts discovery.Options) ([]discoverer, error) {
	var out []discoverer
	for _, s := range specs {
		var d discovery.Discoverer
		var err error
		switch {
		case s.file != nil:
			d, err = discovery.NewFile(*s.file, opts)
		case s.http != nil:
			d, err = discovery.NewHTTP(*s.http, nil, opts)
		case s.docker != nil:
			d, err = discovery.NewDocker(*s.docker, opts)
		case s.consul != nil:
			d, err = discovery.NewConsul(*s.consul, opts)
		case s.kubernetes != nil:
			d, err = discovery.NewKubernetes(*s.kubernetes, opts)
		default:
			panic("BUG: empty service discovery spec")
		}
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", s.job, err)
		}
		out = append(out, discoverer{Discoverer: d, job: s.job})
	}
	return out, nil
}

// mergeSorted merges label lists, later ones overriding earlier ones by
// name; the result is sorted by name.
func mergeSorted(lists ...[]samples.Label) []samples.Label {
	m := map[string]string{}
	for _, l := range lists {
		for _, lb := range l {
			m[lb.Name] = lb.Value
		}
	}
	return sortedLabels(m)
}

// hostname is the default -instance.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
