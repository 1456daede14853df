package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/agent/discovery"
	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/agent/relabel"
	"github.com/telltale-dev/telltale/agent/scrape"
	"github.com/telltale-dev/telltale/samples"
	"github.com/telltale-dev/telltale/secret"
)

// config is everything the flags and the -config file say, validated.
type config struct {
	collector          string   // remote write URL
	collectorReplicas  []string // more remote write URLs (collector replicas), tried in turn
	interval           time.Duration
	spoolDir           string
	spoolMaxBytes      int64
	spoolSync          time.Duration
	configFile         string
	tokenFile          string
	instance           string
	labels             []samples.Label // -label and the file's labels, sorted
	checkConfig        bool
	version            push.Version
	tls                *tls.Config
	root               string
	maxSamples         int
	sendTimeout        time.Duration
	retryMaxBackoff    time.Duration
	scrapeMaxBodyBytes int64
	listen             string
	logLevel           string
	jobs               []scrape.Job
	discovery          []sdSpec // the service discovery configs of the jobs
	textfileDir        string
	printVersion       bool
	deprecated         []string // deprecated flags used, with what to use instead, for a warning at start
}

// sdSpec is one service discovery config of a job; exactly one field is
// set.
type sdSpec struct {
	job        string
	file       *discovery.FileConfig
	http       *discovery.HTTPConfig
	docker     *discovery.DockerConfig
	consul     *discovery.ConsulConfig
	kubernetes *discovery.KubernetesConfig
}

// fileConfig is the -config YAML file.
type fileConfig struct {
	// Labels are added to every series, like -label (which wins).
	Labels map[string]string `yaml:"labels"`
	// ScrapeConfigs are the app endpoints to scrape.
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
}

// scrapeConfig is a scrape_configs entry: Prometheus' keys, plus the
// agent's older short form (job, url, urls, interval, timeout, labels).
type scrapeConfig struct {
	JobName               string                       `yaml:"job_name"`
	ScrapeInterval        scrape.Duration              `yaml:"scrape_interval"`
	ScrapeTimeout         scrape.Duration              `yaml:"scrape_timeout"`
	MetricsPath           string                       `yaml:"metrics_path"`
	Scheme                string                       `yaml:"scheme"`
	Params                url.Values                   `yaml:"params"`
	HonorLabels           bool                         `yaml:"honor_labels"`
	HonorTimestamps       *bool                        `yaml:"honor_timestamps"`
	SampleLimit           int                          `yaml:"sample_limit"`
	LabelLimit            int                          `yaml:"label_limit"`
	LabelNameLengthLimit  int                          `yaml:"label_name_length_limit"`
	LabelValueLengthLimit int                          `yaml:"label_value_length_limit"`
	BodySizeLimit         string                       `yaml:"body_size_limit"`
	MetricNameValidation  string                       `yaml:"metric_name_validation_scheme"`
	StaticConfigs         []staticConfig               `yaml:"static_configs"`
	FileSDConfigs         []discovery.FileConfig       `yaml:"file_sd_configs"`
	HTTPSDConfigs         []discovery.HTTPConfig       `yaml:"http_sd_configs"`
	DockerSDConfigs       []discovery.DockerConfig     `yaml:"docker_sd_configs"`
	ConsulSDConfigs       []discovery.ConsulConfig     `yaml:"consul_sd_configs"`
	KubernetesSDConfigs   []discovery.KubernetesConfig `yaml:"kubernetes_sd_configs"`
	RelabelConfigs        []relabel.Config             `yaml:"relabel_configs"`
	MetricRelabelConfigs  []relabel.Config             `yaml:"metric_relabel_configs"`

	// The short form.
	Job      string            `yaml:"job"`
	URL      string            `yaml:"url"`
	URLs     []string          `yaml:"urls"`
	Interval time.Duration     `yaml:"interval"`
	Timeout  time.Duration     `yaml:"timeout"`
	Labels   map[string]string `yaml:"labels"`
}

// staticConfig is a static_configs entry.
type staticConfig struct {
	Targets []string          `yaml:"targets"`
	Labels  map[string]string `yaml:"labels"`
}

// labelFlag collects repeated -label name=value flags.
type labelFlag []string

func (l *labelFlag) String() string     { return strings.Join(*l, ",") }
func (l *labelFlag) Set(v string) error { *l = append(*l, v); return nil }

// byteSize is a flag holding a size in bytes: 1048576, 512MiB, 1GB ...
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *byteSize) Set(v string) error {
	n, err := parseByteSize(v)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseByteSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || f < 0 {
		return 0, fmt.Errorf("%q is not a size: write bytes or a number with KB, MB, GB, KiB, MiB or GiB", v)
	}
	return int64(f * mult), nil
}

const defaultCollector = "http://127.0.0.1:9470"

// parseConfig parses and checks the command line and the -config file.
// Every error names the flag or YAML key at fault and what to do.
func parseConfig(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("telltale-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	var labels labelFlag
	spoolMax, scrapeMax := byteSize(512<<20), byteSize(32<<20)
	var version int
	var caFile string
	fs.StringVar(&c.collector, "collector", defaultCollector, "base URL of the Telltale collector; samples go to <collector>/api/v1/write. A URL with another path is used as is (any remote write receiver). Several collector replicas: comma-separated URLs; the agent sends to one and fails over to the next when it cannot")
	fs.DurationVar(&c.interval, "interval", 10*time.Second, "how often host metrics are collected and app endpoints scraped (minimum 100ms)")
	fs.StringVar(&c.spoolDir, "spool-dir", "telltale-agent-spool", "directory of the on-disk queue that keeps samples while the collector is unreachable; relative to the working directory, like the collector's ./telltale-data (the systemd unit and docker-compose.yml set /var/lib/telltale-agent/spool)")
	fs.Var(&spoolMax, "spool-max-bytes", "size limit of -spool-dir (e.g. 512MiB); when full the oldest samples are dropped and counted")
	fs.DurationVar(&c.spoolSync, "spool-sync-interval", 0, "fsync policy of the spool: 0 fsyncs every spooled request (survives power loss); a duration fsyncs at most that often. A crash of the agent alone never loses spooled data")
	fs.StringVar(&c.configFile, "config", "", "optional YAML file with scrape_configs and labels (unknown keys are errors)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token for the collector; re-read when it changes")
	fs.StringVar(&c.instance, "instance", "", "value of the instance label of host and agent series (default: the host name)")
	fs.Var(&labels, "label", "name=value label added to every series; repeat for more (e.g. -label env=prod -label dc=fra1)")
	fs.BoolVar(&c.checkConfig, "check-config", false, "check flags, the -config file, token and CA files, print a summary and exit")
	fs.IntVar(&version, "remote-write-version", 1, "remote write protocol version: 1 or 2")
	fs.StringVar(&caFile, "tls.ca-file", "", "PEM file of the CA that signed the collector's certificate (for https:// collectors with a private CA)")
	fs.StringVar(&c.root, "root", "/", "host root directory: /proc and /sys are read below it (in a container, mount the host's / and pass its path)")
	fs.IntVar(&c.maxSamples, "max-samples-per-request", 2000, "most samples in one remote write request")
	fs.DurationVar(&c.sendTimeout, "send-timeout", 30*time.Second, "timeout of one remote write request")
	fs.DurationVar(&c.retryMaxBackoff, "retry-max-backoff", 5*time.Second, "longest wait between two retries of a spooled request (Retry-After from the collector may ask for longer)")
	fs.Var(&scrapeMax, "scrape-max-body-bytes", "size limit of one scraped response (e.g. 32MiB); bigger ones fail with up=0")
	fs.StringVar(&c.listen, "listen", "", "address to serve the agent's own /metrics on (e.g. 127.0.0.1:9471); off by default: the metrics are pushed anyway")
	fs.StringVar(&c.logLevel, "log.level", "info", "log level: debug, info, warn or error")
	fs.Func("log-level", "deprecated spelling of -log.level (the collector's); still accepted, with a warning", func(v string) error {
		c.logLevel = v
		c.deprecated = append(c.deprecated, "-log-level is deprecated: use -log.level")
		return nil
	})
	fs.StringVar(&c.textfileDir, "textfile.directory", "", "directory of *.prom files to read with the host metrics (node_exporter's --collector.textfile.directory); not below -root")
	fs.BoolVar(&c.printVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: all settings are flags (see -help)", fs.Arg(0))
	}
	if c.printVersion {
		return c, nil
	}
	c.spoolMaxBytes, c.scrapeMaxBodyBytes = int64(spoolMax), int64(scrapeMax)

	var err error
	urls := strings.Split(c.collector, ",")
	if c.collector, err = collectorURL(strings.TrimSpace(urls[0])); err != nil {
		return nil, err
	}
	for _, u := range urls[1:] {
		r, err := collectorURL(strings.TrimSpace(u))
		if err != nil {
			return nil, err
		}
		c.collectorReplicas = append(c.collectorReplicas, r)
	}
	if c.interval < 100*time.Millisecond {
		return nil, fmt.Errorf("-interval=%s is too short: use at least 100ms (10s is usual)", c.interval)
	}
	if version != 1 && version != 2 {
		return nil, fmt.Errorf("-remote-write-version=%d is not supported: use 1 or 2", version)
	}
	c.version = push.Version(version)
	if c.spoolMaxBytes < 64<<10 {
		return nil, fmt.Errorf("-spool-max-bytes=%d is too small: use at least 64KiB (512MiB is the default)", c.spoolMaxBytes)
	}
	if c.spoolDir == "" {
		return nil, errors.New("-spool-dir is empty: give a directory the agent may write to")
	}
	if c.maxSamples < 1 {
		return nil, fmt.Errorf("-max-samples-per-request=%d: use a positive number (2000 is the default)", c.maxSamples)
	}
	if c.sendTimeout <= 0 || c.retryMaxBackoff <= 0 {
		return nil, errors.New("-send-timeout and -retry-max-backoff must be positive durations such as 30s")
	}
	if c.scrapeMaxBodyBytes <= 0 {
		return nil, errors.New("-scrape-max-body-bytes must be positive")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.logLevel) {
		return nil, fmt.Errorf("-log.level=%q: use debug, info, warn or error", c.logLevel)
	}
	if fi, err := os.Stat(c.root + "/proc"); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("-root=%s: no proc directory below it: pass the host's root (or where it is mounted)", c.root)
	}
	if c.tokenFile != "" {
		if _, err := secret.Read(c.tokenFile, "-token-file", "the collector's bearer token"); err != nil {
			return nil, err
		}
	}
	if caFile != "" {
		if c.tls, err = loadCA(caFile); err != nil {
			return nil, err
		}
	}

	var fc fileConfig
	if c.configFile != "" {
		if fc, err = loadFile(c.configFile); err != nil {
			return nil, err
		}
	}
	if c.labels, err = buildLabels(fc.Labels, labels); err != nil {
		return nil, err
	}
	if c.jobs, c.discovery, err = buildJobs(fc.ScrapeConfigs, c.interval, c.configFile); err != nil {
		return nil, err
	}
	if c.textfileDir != "" {
		if fi, err := os.Stat(c.textfileDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("-textfile.directory=%s is not a directory: create it or fix the path", c.textfileDir)
		}
	}
	return c, nil
}

// collectorURL turns -collector into the remote write URL.
func collectorURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("-collector=%q is not an absolute http:// or https:// URL: write it like %s", s, defaultCollector)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/api/v1/write"
	}
	return u.String(), nil
}

func loadCA(path string) (*tls.Config, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-tls.ca-file: %w: fix the path or the file's permissions", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-tls.ca-file %s holds no PEM certificate: give the CA certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type [\w]+\.(\w+)`)

// loadFile reads the -config file strictly: an unknown key is an error
// that names it, its line and the valid keys.
func loadFile(path string) (fileConfig, error) {
	var fc fileConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("-config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
			section, keys := "the top level", yamlKeys(reflect.TypeOf(fileConfig{}))
			switch m[3] {
			case "scrapeConfig":
				section, keys = "a scrape_configs entry", yamlKeys(reflect.TypeOf(scrapeConfig{}))
			case "staticConfig":
				section, keys = "a static_configs entry", yamlKeys(reflect.TypeOf(staticConfig{}))
			}
			return fc, fmt.Errorf("-config %s: line %s: unknown key %q in %s: valid keys are %s", path, m[1], m[2], section, strings.Join(keys, ", "))
		}
		msg := strings.ReplaceAll(err.Error(), "\n ", "")
		if strings.Contains(msg, "into time.Duration") {
			msg += ": write durations with a unit, e.g. 30s"
		}
		return fc, fmt.Errorf("-config %s: %s", path, msg)
	}
	return fc, nil
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		keys = append(keys, strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0])
	}
	return keys
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func checkLabelName(name, where string) error {
	if !labelName.MatchString(name) {
		return fmt.Errorf("%s: label name %q must match [a-zA-Z_][a-zA-Z0-9_]*", where, name)
	}
	if strings.HasPrefix(name, "__") {
		return fmt.Errorf("%s: label name %q starts with __, which Prometheus reserves: rename it", where, name)
	}
	return nil
}

// buildLabels merges the file's labels and the -label flags (which win),
// sorted by name.
func buildLabels(file map[string]string, flags []string) ([]samples.Label, error) {
	m := map[string]string{}
	for n, v := range file {
		if err := checkLabelName(n, "-config labels"); err != nil {
			return nil, err
		}
		m[n] = v
	}
	for _, f := range flags {
		n, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("-label %q: want name=value, e.g. -label env=prod", f)
		}
		if err := checkLabelName(n, "-label "+strconv.Quote(f)); err != nil {
			return nil, err
		}
		m[n] = v
	}
	return sortedLabels(m), nil
}

func sortedLabels(m map[string]string) []samples.Label {
	out := make([]samples.Label, 0, len(m))
	for n, v := range m {
		out = append(out, samples.Label{Name: n, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// buildJobs checks the scrape_configs and turns them into scrape jobs and
// the service discovery configs that feed them. Errors name the entry and
// key and say what to write instead.
func buildJobs(scs []scrapeConfig, interval time.Duration, file string) ([]scrape.Job, []sdSpec, error) {
	var jobs []scrape.Job
	var sds []sdSpec
	seen := map[string]bool{}
	for i, sc := range scs {
		key := fmt.Sprintf("-config %s: scrape_configs[%d]", file, i)
		name := sc.JobName
		if sc.Job != "" {
			if name != "" {
				return nil, nil, fmt.Errorf("%s: both job and job_name: keep job_name", key)
			}
			name = sc.Job
		}
		if name == "" {
			return nil, nil, fmt.Errorf("%s: job_name is missing: name the app, e.g. job_name: myapp", key)
		}
		key += " (job " + name + ")"
		if seen[name] {
			return nil, nil, fmt.Errorf("%s: job_name %q is used twice: job names must be unique", key, name)
		}
		seen[name] = true
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"interval", sc.Interval}, {"timeout", sc.Timeout}} {
			if d.v < 0 || d.v > 0 && d.v < time.Millisecond {
				return nil, nil, fmt.Errorf("%s.%s: %s is not a useful duration: write it with a unit, e.g. 30s", key, d.name, d.v)
			}
		}
		if sc.Interval > 0 && sc.ScrapeInterval > 0 || sc.Timeout > 0 && sc.ScrapeTimeout > 0 {
			return nil, nil, fmt.Errorf("%s: interval/timeout and scrape_interval/scrape_timeout both set: keep scrape_interval and scrape_timeout", key)
		}
		every := max(time.Duration(sc.ScrapeInterval), sc.Interval)
		if every > 0 && every < interval {
			return nil, nil, fmt.Errorf("%s.scrape_interval %s is shorter than -interval=%s: targets are scraped at most once per -interval; raise it or lower -interval", key, every, interval)
		}
		every = max(every, interval)
		timeout := max(time.Duration(sc.ScrapeTimeout), sc.Timeout)
		if timeout == 0 {
			timeout = min(10*time.Second, every)
		}
		if timeout > every {
			return nil, nil, fmt.Errorf("%s.scrape_timeout %s is longer than the job's interval %s: lower the timeout", key, timeout, every)
		}
		j := scrape.Job{Name: name, Interval: every, Timeout: timeout, MetricsPath: sc.MetricsPath, Scheme: sc.Scheme,
			Params: sc.Params, HonorLabels: sc.HonorLabels, HonorTimestamps: sc.HonorTimestamps == nil || *sc.HonorTimestamps,
			SampleLimit: sc.SampleLimit, LabelLimit: sc.LabelLimit, LabelNameLengthLimit: sc.LabelNameLengthLimit,
			LabelValueLengthLimit: sc.LabelValueLengthLimit}
		if j.MetricsPath != "" && !strings.HasPrefix(j.MetricsPath, "/") {
			return nil, nil, fmt.Errorf("%s.metrics_path %q must start with /", key, j.MetricsPath)
		}
		if j.Scheme != "" && j.Scheme != "http" && j.Scheme != "https" {
			return nil, nil, fmt.Errorf("%s.scheme %q: use http or https", key, j.Scheme)
		}
		for k, v := range map[string]int{"sample_limit": sc.SampleLimit, "label_limit": sc.LabelLimit,
			"label_name_length_limit": sc.LabelNameLengthLimit, "label_value_length_limit": sc.LabelValueLengthLimit} {
			if v < 0 {
				return nil, nil, fmt.Errorf("%s.%s %d: use 0 (no limit) or a positive number", key, k, v)
			}
		}
		if sc.BodySizeLimit != "" {
			n, err := parseBase2Size(sc.BodySizeLimit)
			if err != nil {
				return nil, nil, fmt.Errorf("%s.body_size_limit: %w", key, err)
			}
			j.BodySizeLimit = n
		}
		names := relabel.UTF8
		switch sc.MetricNameValidation {
		case "", "utf8":
		case "legacy":
			names = relabel.Legacy
		default:
			return nil, nil, fmt.Errorf("%s.metric_name_validation_scheme %q: use utf8 or legacy", key, sc.MetricNameValidation)
		}
		var err error
		if j.Relabel, err = compileRules(sc.RelabelConfigs, names, key+".relabel_configs"); err != nil {
			return nil, nil, err
		}
		if j.MetricRelabel, err = compileRules(sc.MetricRelabelConfigs, names, key+".metric_relabel_configs"); err != nil {
			return nil, nil, err
		}
		for n := range sc.Labels {
			if err := checkLabelName(n, key+".labels"); err != nil {
				return nil, nil, err
			}
		}
		// The short form: each URL is a static target that carries its
		// scheme, path and query.
		urls := sc.URLs
		if sc.URL != "" {
			urls = append([]string{sc.URL}, urls...)
		}
		if len(urls) > 0 {
			g := scrape.Group{Labels: sc.Labels}
			for _, raw := range urls {
				u, err := url.Parse(raw)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return nil, nil, fmt.Errorf("%s: url %q is not an absolute http:// or https:// URL: write it like http://127.0.0.1:8080/metrics", key, raw)
				}
				tl := map[string]string{"__address__": u.Host, "__scheme__": u.Scheme, "__metrics_path__": u.EscapedPath()}
				if tl["__metrics_path__"] == "" {
					tl["__metrics_path__"] = "/"
				}
				for k, v := range u.Query() {
					tl["__param_"+k] = v[0]
				}
				g.Targets = append(g.Targets, tl)
			}
			j.Static = append(j.Static, g)
		} else if len(sc.Labels) > 0 {
			return nil, nil, fmt.Errorf("%s: labels without url or urls: put them in static_configs[].labels", key)
		}
		for k, st := range sc.StaticConfigs {
			for n, v := range st.Labels {
				if n == "" || !utf8.ValidString(n) || !utf8.ValidString(v) {
					return nil, nil, fmt.Errorf("%s.static_configs[%d].labels: %q is not a valid label", key, k, n)
				}
			}
			g := scrape.Group{Labels: st.Labels}
			for _, t := range st.Targets {
				if t == "" || strings.Contains(t, "/") {
					return nil, nil, fmt.Errorf("%s.static_configs[%d]: target %q must be host:port (the path goes in metrics_path)", key, k, t)
				}
				g.Targets = append(g.Targets, map[string]string{"__address__": t})
			}
			j.Static = append(j.Static, g)
		}
		// Service discovery: checked here (a bad config stops the agent at
		// start), built again with the agent's logger and metrics.
		var none discovery.Options
		for k := range sc.FileSDConfigs {
			c := &sc.FileSDConfigs[k]
			if _, err := discovery.NewFile(*c, none); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", key, err)
			}
			sds = append(sds, sdSpec{job: name, file: c})
		}
		for k := range sc.HTTPSDConfigs {
			c := &sc.HTTPSDConfigs[k]
			if _, err := discovery.NewHTTP(*c, nil, none); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", key, err)
			}
			sds = append(sds, sdSpec{job: name, http: c})
		}
		for k := range sc.DockerSDConfigs {
			c := &sc.DockerSDConfigs[k]
			if _, err := discovery.NewDocker(*c, none); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", key, err)
			}
			sds = append(sds, sdSpec{job: name, docker: c})
		}
		for k := range sc.ConsulSDConfigs {
			c := &sc.ConsulSDConfigs[k]
			if _, err := discovery.NewConsul(*c, none); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", key, err)
			}
			sds = append(sds, sdSpec{job: name, consul: c})
		}
		for k := range sc.KubernetesSDConfigs {
			c := &sc.KubernetesSDConfigs[k]
			if _, err := discovery.NewKubernetes(*c, none); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", key, err)
			}
			sds = append(sds, sdSpec{job: name, kubernetes: c})
		}
		if len(j.Static) == 0 && !slices.ContainsFunc(sds, func(d sdSpec) bool { return d.job == name }) {
			return nil, nil, fmt.Errorf("%s: no targets: add url:, static_configs: or a *_sd_configs entry", key)
		}
		jobs = append(jobs, j)
	}
	return jobs, sds, nil
}

func compileRules(cfgs []relabel.Config, names relabel.NameValidation, key string) ([]*relabel.Rule, error) {
	var out []*relabel.Rule
	for i, c := range cfgs {
		r, err := relabel.Compile(c, names)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// parseBase2Size reads a size as Prometheus' configuration does
// (body_size_limit): bytes, or a number with B, KB, MB, GB, TB, where
// KB is 1024 bytes.
func parseBase2Size(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToUpper(strings.TrimSpace(s[i:]))
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n < 0 {
		return 0, fmt.Errorf("%q is not a size: write bytes or a number with KB, MB or GB (powers of 1024, as in Prometheus)", v)
	}
	return n * mult, nil
}

// staticTargets counts the static targets of jobs, for -check-config.
func staticTargets(jobs []scrape.Job) int {
	n := 0
	for _, j := range jobs {
		for _, g := range j.Static {
			n += len(g.Targets)
		}
	}
	return n
}
