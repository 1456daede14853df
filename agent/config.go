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

	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/agent/scrape"
	"github.com/telltale-dev/telltale/samples"
)

// config is everything the flags and the -config file say, validated.
type config struct {
	collector          string // remote write URL
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
	targets            []scrape.Target
	printVersion       bool
}

// fileConfig is the -config YAML file.
type fileConfig struct {
	// Labels are added to every series, like -label (which wins).
	Labels map[string]string `yaml:"labels"`
	// ScrapeConfigs are the app endpoints to scrape.
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
}

type scrapeConfig struct {
	Job      string            `yaml:"job"`
	URL      string            `yaml:"url"`
	URLs     []string          `yaml:"urls"`
	Interval time.Duration     `yaml:"interval"`
	Timeout  time.Duration     `yaml:"timeout"`
	Labels   map[string]string `yaml:"labels"`
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
	fs.StringVar(&c.collector, "collector", defaultCollector, "base URL of the Telltale collector; samples go to <collector>/api/v1/write. A URL with another path is used as is (any remote write receiver)")
	fs.DurationVar(&c.interval, "interval", 10*time.Second, "how often host metrics are collected and app endpoints scraped (minimum 100ms)")
	fs.StringVar(&c.spoolDir, "spool-dir", "/var/lib/telltale-agent/spool", "directory of the on-disk queue that keeps samples while the collector is unreachable")
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
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
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
	if c.collector, err = collectorURL(c.collector); err != nil {
		return nil, err
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
		return nil, fmt.Errorf("-log-level=%q: use debug, info, warn or error", c.logLevel)
	}
	if fi, err := os.Stat(c.root + "/proc"); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("-root=%s: no proc directory below it: pass the host's root (or where it is mounted)", c.root)
	}
	if c.tokenFile != "" {
		data, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("-token-file: %w: make the file readable by the agent's user or fix the path", err)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, fmt.Errorf("-token-file %s is empty: put the collector's bearer token in it", c.tokenFile)
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
	if c.targets, err = buildTargets(fc.ScrapeConfigs, c.interval, c.configFile); err != nil {
		return nil, err
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

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type main\.(\w+)`)

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
			if m[3] == "scrapeConfig" {
				section, keys = "a scrape_configs entry", yamlKeys(reflect.TypeOf(scrapeConfig{}))
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

// buildTargets checks the scrape_configs and expands them to targets.
func buildTargets(scs []scrapeConfig, interval time.Duration, file string) ([]scrape.Target, error) {
	var out []scrape.Target
	for i, sc := range scs {
		key := fmt.Sprintf("-config %s: scrape_configs[%d]", file, i)
		if sc.Job == "" {
			return nil, fmt.Errorf("%s: job is missing: name the app, e.g. job: myapp", key)
		}
		urls := sc.URLs
		if sc.URL != "" {
			urls = append([]string{sc.URL}, urls...)
		}
		if len(urls) == 0 {
			return nil, fmt.Errorf("%s (job %s): no url: add url: http://127.0.0.1:8080/metrics", key, sc.Job)
		}
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"interval", sc.Interval}, {"timeout", sc.Timeout}} {
			if d.v < 0 || d.v > 0 && d.v < time.Millisecond {
				return nil, fmt.Errorf("%s.%s: %s is not a useful duration: write it with a unit, e.g. 30s", key, d.name, d.v)
			}
		}
		if sc.Interval > 0 && sc.Interval < interval {
			return nil, fmt.Errorf("%s.interval %s is shorter than -interval=%s: targets are scraped at most once per -interval; raise it or lower -interval", key, sc.Interval, interval)
		}
		every := max(sc.Interval, interval)
		timeout := sc.Timeout
		if timeout == 0 {
			timeout = min(10*time.Second, every)
		}
		if timeout > every {
			return nil, fmt.Errorf("%s.timeout %s is longer than the target's interval %s: lower the timeout", key, timeout, every)
		}
		for n := range sc.Labels {
			if err := checkLabelName(n, key+".labels"); err != nil {
				return nil, err
			}
		}
		for j, raw := range urls {
			u, err := url.Parse(raw)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("%s: url %q is not an absolute http:// or https:// URL: write it like http://127.0.0.1:8080/metrics", key, urls[j])
			}
			out = append(out, scrape.Target{Job: sc.Job, URL: raw, Interval: sc.Interval, Timeout: timeout, Labels: sortedLabels(sc.Labels)})
		}
	}
	return out, nil
}
