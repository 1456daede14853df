package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	config_util "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/collector/forward"
	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/collector/query"
	"github.com/telltale-dev/telltale/collector/remote"
	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/samples"
)

// remoteConfig is the -storage.remote-config file: the engine the
// collector forwards to in forward mode.
//
//	remote_write:
//	  - name: cortex                     # metrics label and queue directory
//	    url: http://cortex:9009/api/v1/push
//	    protocol: "1.0"                  # or "2.0" (not for Thanos receive)
//	    tenant: team-a                   # X-Scope-OrgID
//	    headers: {X-Extra: value}
//	    bearer_token_file: /etc/telltale/cortex-token
//	    tls_ca_file: /etc/telltale/ca.pem
//	query:
//	  url: http://cortex:9009/prometheus # base of the Prometheus API
//	  read: auto                         # remote-read, query-api
//	  tenant: team-a
//	  headers: {}
//	  bearer_token_file: ""
//	  tls_ca_file: ""
//	  drop_labels: [receive_cluster, tenant_id]
//
// Flags add to it: each -storage.remote-write-url is one more target, and
// the -storage.query-* flags that are set win over the query section.
type remoteConfig struct {
	RemoteWrite []remoteWriteConfig `yaml:"remote_write"`
	Query       queryConfig         `yaml:"query"`
}

type remoteWriteConfig struct {
	Name            string            `yaml:"name"`
	URL             string            `yaml:"url"`
	Protocol        string            `yaml:"protocol"`
	Tenant          string            `yaml:"tenant"`
	Headers         map[string]string `yaml:"headers"`
	BearerTokenFile string            `yaml:"bearer_token_file"`
	TLSCAFile       string            `yaml:"tls_ca_file"`
}

type queryConfig struct {
	URL             string            `yaml:"url"`
	Read            string            `yaml:"read"`
	Tenant          string            `yaml:"tenant"`
	Headers         map[string]string `yaml:"headers"`
	BearerTokenFile string            `yaml:"bearer_token_file"`
	TLSCAFile       string            `yaml:"tls_ca_file"`
	DropLabels      []string          `yaml:"drop_labels"`
}

// maxRemoteConfigBytes bounds the -storage.remote-config file.
const maxRemoteConfigBytes = 1 << 20

// parseRemoteConfig decodes a -storage.remote-config file strictly.
func parseRemoteConfig(data []byte) (*remoteConfig, error) {
	if len(data) > maxRemoteConfigBytes {
		return nil, fmt.Errorf("%d bytes, limit %d", len(data), maxRemoteConfigBytes)
	}
	var c remoteConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	for i, t := range c.RemoteWrite {
		if t.URL == "" {
			return nil, fmt.Errorf("remote_write[%d]: url is empty", i)
		}
		if _, err := protocolVersion(t.Protocol); err != nil {
			return nil, fmt.Errorf("remote_write[%d] (%s): %w", i, t.URL, err)
		}
	}
	return &c, nil
}

func protocolVersion(p string) (push.Version, error) {
	switch p {
	case "", "1", "1.0":
		return push.V1, nil
	case "2", "2.0":
		return push.V2, nil
	}
	return 0, fmt.Errorf("protocol %q: want \"1.0\" or \"2.0\"", p)
}

// forwardMode reports whether the collector forwards to an engine instead
// of storing samples in its own TSDB.
func (c *config) forwardMode() bool { return len(c.remoteWriteURLs) > 0 || c.remoteConfig != "" }

// checkForward validates the forward-mode flags that need no files.
func (c *config) checkForward() error {
	if c.remoteWriteVersion != 1 && c.remoteWriteVersion != 2 {
		return fmt.Errorf("-storage.remote-write-version=%d: want 1 or 2", c.remoteWriteVersion)
	}
	if !c.forwardMode() {
		for name, set := range map[string]bool{"-storage.query-url": c.queryURL != "", "-storage.query-drop-labels": c.queryDropLabels != ""} {
			if set {
				return fmt.Errorf("%s is a forward-mode flag: set -storage.remote-write-url (or -storage.remote-config) too", name)
			}
		}
	}
	if c.forwardQueueDir == "" {
		c.forwardQueueDir = filepath.Join(c.dataDir, "forward")
	}
	return nil
}

// forwardSetup is what forward mode is made of.
type forwardSetup struct {
	targets []forward.Target
	query   remote.Options
}

// loadForward reads -storage.remote-config and merges the flags into it.
func (c *config) loadForward() (*forwardSetup, error) {
	rc := &remoteConfig{}
	if c.remoteConfig != "" {
		data, err := os.ReadFile(c.remoteConfig)
		if err != nil {
			return nil, fmt.Errorf("-storage.remote-config: %w", err)
		}
		if rc, err = parseRemoteConfig(data); err != nil {
			return nil, fmt.Errorf("-storage.remote-config=%s: %w", c.remoteConfig, err)
		}
	}
	for _, u := range c.remoteWriteURLs {
		rc.RemoteWrite = append(rc.RemoteWrite, remoteWriteConfig{URL: u, Protocol: fmt.Sprint(c.remoteWriteVersion), Tenant: c.remoteWriteTenant})
	}
	if len(rc.RemoteWrite) == 0 {
		return nil, errors.New("forward mode without a target: set -storage.remote-write-url or remote_write in -storage.remote-config")
	}
	s := &forwardSetup{}
	names := map[string]int{}
	for _, t := range rc.RemoteWrite {
		v, _ := protocolVersion(t.Protocol)
		name := t.Name
		if name == "" {
			name = targetName(t.URL)
		}
		if names[name]++; names[name] > 1 && t.Name == "" {
			name = fmt.Sprintf("%s_%d", name, names[name])
		}
		headers := map[string]string{}
		for k, v := range t.Headers {
			headers[k] = v
		}
		if t.Tenant != "" {
			headers["X-Scope-OrgID"] = t.Tenant
		}
		tlsCfg, err := caTLS(t.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("remote write target %s: %w", name, err)
		}
		s.targets = append(s.targets, forward.Target{Name: name, URL: t.URL, Version: v, Headers: headers, TokenFile: t.BearerTokenFile, TLS: tlsCfg})
	}
	q := rc.Query
	set := func(dst *string, flag string) {
		if flag != "" {
			*dst = flag
		}
	}
	set(&q.URL, c.queryURL)
	set(&q.Tenant, c.queryTenant)
	if q.Tenant == "" {
		q.Tenant = c.remoteWriteTenant
	}
	if c.queryRead != "auto" || q.Read == "" {
		q.Read = c.queryRead
	}
	if c.queryDropLabels != "" {
		q.DropLabels = strings.Split(c.queryDropLabels, ",")
	}
	if q.URL == "" {
		return nil, errors.New("forward mode needs the engine's query API: set -storage.query-url (e.g. http://cortex:9009/prometheus) or query.url in -storage.remote-config")
	}
	headers := map[string]string{}
	for k, v := range q.Headers {
		headers[k] = v
	}
	if q.Tenant != "" {
		headers["X-Scope-OrgID"] = q.Tenant
	}
	s.query = remote.Options{URL: q.URL, Read: q.Read, Headers: headers, TokenFile: q.BearerTokenFile,
		TLS: config_util.TLSConfig{CAFile: q.TLSCAFile}, DropLabels: q.DropLabels, Retention: c.engineRetention}
	return s, nil
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// targetName names a target given by URL alone after its host and port.
func targetName(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return "target"
	}
	return strings.Trim(nonName.ReplaceAllString(pu.Host, "_"), "_")
}

// caTLS returns a TLS config trusting the CA in file, or nil for none.
func caTLS(file string) (*tls.Config, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls_ca_file %s holds no PEM certificate", file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// openStorage opens where samples go and queries read: the embedded TSDB,
// or in forward mode the queues and the engine.
func (a *app) openStorage(ctx context.Context) (ingest.Appendable, query.Storage, error) {
	cfg := a.cfg
	if !cfg.forwardMode() {
		st, err := storage.Open(ctx, storage.Options{
			Dir: cfg.dataDir, Retention: cfg.retention, OutOfOrderWindow: cfg.oooWindow, WALCompression: cfg.walCompress,
			MaxExemplars: cfg.maxExemplars, MaxSeries: cfg.maxSeries, MaxHourlySeries: cfg.maxHourlySeries,
			Logger: a.log, Metrics: a.set,
		})
		if err != nil {
			return nil, nil, err
		}
		a.store, a.registry = st, st.Registry()
		a.closers = append(a.closers, st.Close)
		return st, st, nil
	}
	setup, err := cfg.loadForward()
	if err != nil {
		return nil, nil, err
	}
	f, rs, err := a.openForward(setup)
	if err != nil {
		a.close()
		return nil, nil, err
	}
	a.registry = prometheus.NewRegistry()
	return f, rs, nil
}

// openForward builds forward mode's storage: the queues and drainers the
// writer appends to, and the engine the query API reads. The drainers run
// as a worker; after the HTTP server stopped they get
// -forward.shutdown-drain to empty the queues, then the queues close.
func (a *app) openForward(s *forwardSetup) (*forward.Forwarder, *remote.Storage, error) {
	cfg := a.cfg
	rs, err := remote.New(remote.Options{
		URL: s.query.URL, Read: s.query.Read, Headers: s.query.Headers, TokenFile: s.query.TokenFile, TLS: s.query.TLS,
		Timeout: cfg.queryTimeout, DropLabels: s.query.DropLabels, Retention: s.query.Retention,
		Logger: a.log, Metrics: a.set,
	})
	if err != nil {
		return nil, nil, err
	}
	f, err := forward.New(forward.Options{
		Dir: cfg.forwardQueueDir, Targets: s.targets, QueueMaxBytes: cfg.forwardQueueMax, SyncInterval: cfg.forwardSync,
		MaxSamplesPerSend: cfg.forwardMaxSamples, ShutdownDrain: cfg.forwardShutdownWait,
		// The query cache learns of late samples once the engine has them.
		Late:      a.observeLate,
		LateAge:   cfg.queryCacheFreshness,
		UserAgent: "telltale-collector/" + buildVersion(),
		Logger:    a.log, Metrics: a.set,
	})
	if err != nil {
		return nil, nil, err
	}
	a.workers = append(a.workers, f.Run)
	a.closers = append(a.closers, f.Close)
	var names []string
	for _, t := range s.targets {
		names = append(names, t.Name+"="+t.URL)
	}
	a.log.Info("forward mode: samples are queued on disk and remote-written to the engine; queries read from it",
		"component", "forward", "targets", strings.Join(names, " "), "query_url", s.query.URL, "queue_dir", cfg.forwardQueueDir)
	return f, rs, nil
}

// observeLate tells the query result cache about samples that reached the
// engine late (the drainer calls it after the engine answered).
func (a *app) observeLate(b *samples.Batch) {
	if a.query == nil {
		return
	}
	if o := a.query.Observer(); o != nil {
		o.Observe(b, nil)
	}
	if a.fanout != nil {
		// The other replicas' caches must learn of it too.
		a.fanout.PublishLate(b)
	}
}

// notInForwardMode answers the admin API in forward mode: deleting data,
// snapshots and tombstones are the engine's business.
func notInForwardMode(w http.ResponseWriter, r *http.Request) {
	http.Error(w, r.URL.Path+" is not supported in forward mode: the data lives in the engine (-storage.query-url); use the engine's own admin API", http.StatusNotImplemented)
}
