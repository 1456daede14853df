package scrape

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/agent/relabel"
	"github.com/telltale-dev/telltale/samples"
)

// Labels with a meaning for scraping, as in Prometheus.
const (
	addressLabel        = "__address__"
	schemeLabel         = "__scheme__"
	metricsPathLabel    = "__metrics_path__"
	scrapeIntervalLabel = "__scrape_interval__"
	scrapeTimeoutLabel  = "__scrape_timeout__"
	paramLabelPrefix    = "__param_"
	metaLabelPrefix     = "__meta_"
	reservedLabelPrefix = "__"
)

// Group is a set of targets that share labels, as a service discovery
// mechanism reports it (Prometheus' targetgroup.Group). Source identifies
// the group within its discoverer: a later Group with the same Source
// replaces it, and one without targets removes it.
type Group struct {
	Source  string
	Targets []map[string]string // each with __address__
	Labels  map[string]string
}

// target is a scrape target after relabeling: its labels (sorted; the
// "__" ones say how to scrape it) and what they mean.
type target struct {
	labels   []samples.Label // all, sorted
	public   []samples.Label // without the "__" ones: what its series get
	url      string
	interval time.Duration
	timeout  time.Duration
	key      string // identity: the labels, rendered
}

// populateTarget builds a target from a discovered target's labels and its
// group's labels as Prometheus' PopulateLabels does: the job's scrape
// settings fill what discovery left unset, relabel_configs run, meta
// labels go, instance defaults to __address__. It returns nil and no error
// when relabeling dropped the target.
func populateTarget(b *relabel.Builder, job *Job, tLabels, gLabels map[string]string) (*target, error) {
	var base []samples.Label
	for n, v := range tLabels {
		base = append(base, samples.Label{Name: n, Value: v})
	}
	for n, v := range gLabels {
		if _, ok := tLabels[n]; !ok {
			base = append(base, samples.Label{Name: n, Value: v})
		}
	}
	slices.SortFunc(base, func(x, y samples.Label) int { return strings.Compare(x.Name, y.Name) })
	b.Reset(base)
	for _, l := range []samples.Label{
		{Name: "job", Value: job.Name},
		{Name: scrapeIntervalLabel, Value: FormatDuration(job.Interval)},
		{Name: scrapeTimeoutLabel, Value: FormatDuration(job.Timeout)},
		{Name: metricsPathLabel, Value: job.MetricsPath},
		{Name: schemeLabel, Value: job.Scheme},
	} {
		if b.Get(l.Name) == "" {
			b.Set(l.Name, l.Value)
		}
	}
	for k, v := range job.Params {
		if name := paramLabelPrefix + k; len(v) > 0 && b.Get(name) == "" {
			b.Set(name, v[0])
		}
	}
	if !relabel.Process(b, job.Relabel...) {
		return nil, nil
	}
	addr := b.Get(addressLabel)
	if addr == "" {
		return nil, errors.New("no address")
	}
	if strings.Contains(addr, "/") {
		return nil, fmt.Errorf("%q is not a valid hostname", addr)
	}
	interval, err := ParseDuration(b.Get(scrapeIntervalLabel))
	if err != nil {
		return nil, fmt.Errorf("error parsing scrape interval: %w", err)
	}
	if interval == 0 {
		return nil, errors.New("scrape interval cannot be 0")
	}
	timeout, err := ParseDuration(b.Get(scrapeTimeoutLabel))
	if err != nil {
		return nil, fmt.Errorf("error parsing scrape timeout: %w", err)
	}
	if timeout == 0 {
		return nil, errors.New("scrape timeout cannot be 0")
	}
	if timeout > interval {
		return nil, fmt.Errorf("scrape timeout cannot be greater than scrape interval (%q > %q)", b.Get(scrapeTimeoutLabel), b.Get(scrapeIntervalLabel))
	}
	b.Range(func(l samples.Label) {
		if strings.HasPrefix(l.Name, metaLabelPrefix) {
			b.Del(l.Name)
		}
	})
	if b.Get("instance") == "" {
		b.Set("instance", addr)
	}
	t := &target{labels: b.Labels(nil), interval: interval, timeout: timeout}
	for _, l := range t.labels {
		if !utf8.ValidString(l.Value) {
			return nil, fmt.Errorf("invalid label value for %q: %q", l.Name, l.Value)
		}
		if !strings.HasPrefix(l.Name, reservedLabelPrefix) {
			t.public = append(t.public, l)
		}
	}
	t.url = targetURL(job, t.labels)
	var sb strings.Builder
	for _, l := range t.labels {
		sb.WriteString(strconv.Quote(l.Name))
		sb.WriteByte('=')
		sb.WriteString(strconv.Quote(l.Value))
		sb.WriteByte(',')
	}
	t.key = sb.String()
	return t, nil
}

// targetURL is the URL to scrape, from __scheme__, __address__,
// __metrics_path__, the job's params and the __param_<name> labels (which
// replace a param's first value).
func targetURL(job *Job, ls []samples.Label) string {
	params := url.Values{}
	for k, v := range job.Params {
		params[k] = slices.Clone(v)
	}
	var scheme, addr, path string
	for _, l := range ls {
		switch {
		case l.Name == schemeLabel:
			scheme = l.Value
		case l.Name == addressLabel:
			addr = l.Value
		case l.Name == metricsPathLabel:
			path = l.Value
		case strings.HasPrefix(l.Name, paramLabelPrefix):
			k := l.Name[len(paramLabelPrefix):]
			if len(params[k]) > 0 {
				params[k][0] = l.Value
			} else {
				params[k] = []string{l.Value}
			}
		}
	}
	u := url.URL{Scheme: scheme, Host: addr, Path: path, RawQuery: params.Encode()}
	return u.String()
}

// durationUnits are Prometheus' duration units, largest first.
var durationUnits = []struct {
	unit string
	d    time.Duration
}{
	{"y", 365 * 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour},
	{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond},
}

// FormatDuration writes d as Prometheus writes durations ("30s", "1m30s",
// "1d"), so relabel rules see what they would see in Prometheus.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var sb strings.Builder
	for _, u := range durationUnits {
		if n := d / u.d; n > 0 {
			sb.WriteString(strconv.FormatInt(int64(n), 10))
			sb.WriteString(u.unit)
			d -= n * u.d
		}
	}
	return sb.String()
}

// ParseDuration reads a Prometheus duration: one or more <number><unit>
// with units y, w, d, h, m, s, ms, largest first ("1h30m", "10s").
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	orig := s
	var total time.Duration
	last := -1
	if s == "" {
		return 0, fmt.Errorf("empty duration string")
	}
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 12 {
			return 0, fmt.Errorf("not a valid duration string: %q", orig)
		}
		n, _ := strconv.ParseInt(s[:i], 10, 64)
		s = s[i:]
		j := 0
		for j < len(s) && (s[j] < '0' || s[j] > '9') {
			j++
		}
		unit := s[:j]
		s = s[j:]
		k := slices.IndexFunc(durationUnits, func(u struct {
			unit string
			d    time.Duration
		}) bool {
			return u.unit == unit
		})
		if k < 0 || k <= last {
			return 0, fmt.Errorf("not a valid duration string: %q", orig)
		}
		last = k
		u := durationUnits[k].d
		if n > int64(math.MaxInt64/u) || total > math.MaxInt64-time.Duration(n)*u {
			return 0, fmt.Errorf("duration out of range: %q", orig)
		}
		total += time.Duration(n) * u
	}
	return total, nil
}

// Duration is a time.Duration written in YAML as Prometheus writes
// durations ("30s", "5m", "1d").
type Duration time.Duration

// UnmarshalYAML reads a Prometheus duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w: write it like 30s, 5m or 1h", n.Line, err)
	}
	*d = Duration(v)
	return nil
}
