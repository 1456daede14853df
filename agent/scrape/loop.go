package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/telltale-dev/telltale/agent/relabel"
	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// StaleNaN is Prometheus' staleness marker: a NaN with this exact bit
// pattern tells the TSDB that a series ended (model/value.StaleNaN).
var StaleNaN = math.Float64frombits(staleNaNBits)

const staleNaNBits = 0x7ff0000000000002

// IsStaleNaN reports whether v is the staleness marker.
func IsStaleNaN(v float64) bool { return math.Float64bits(v) == staleNaNBits }

// Prometheus' error texts for limits and bad series.
var (
	errSampleLimit       = errors.New("sample limit exceeded")
	errBodySizeLimit     = errors.New("body size limit exceeded")
	errNameLabelRequired = errors.New("missing metric name (__name__ label)")
)

// noTimestamp marks parsed samples without a timestamp of their own.
const noTimestamp = math.MinInt64

// The report series of every scrape, in Prometheus' order.
var reportNames = [...]string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

// series is one series of a target as it is stored: its final labels
// (copied: they outlive the response body) and when it was last seen.
type series struct {
	labels  []samples.Label
	cur     uint64 // scrape (epoch) that saw it last, including the running one
	last    uint64 // last completed scrape that saw it
	tracked bool   // its last sample had no timestamp of its own: staleness applies
}

// rawEntry caches what a line's raw "name{labels}" text becomes, so a
// repeated series costs one map lookup (Prometheus' scrape cache).
type rawEntry struct {
	s   *series // nil: metric relabeling dropped it
	cur uint64
}

// loop is one target's scrapes and what it remembers between them.
type loop struct {
	s            *Scraper
	job          *job
	t            *target
	targetLabels []samples.Label // t.public over Options.Labels, sorted
	last         time.Time       // when it was last due

	body   []byte
	parser promtext.Parser
	parsed samples.Batch
	b      relabel.Builder
	sorted []samples.Label
	key    []byte

	raw    map[string]*rawEntry
	series map[string]*series
	epoch  uint64 // the running (or last) scrape
	prev   uint64 // the last scrape that completed with samples

	// result of the last scrape, emitted by emit
	start                     time.Time
	duration                  time.Duration
	err                       error
	reason                    string
	failing                   bool
	total, added, seriesAdded int
	out                       samples.Batch
}

func (s *Scraper) newLoop(j *job, t *target) *loop {
	l := &loop{s: s, job: j, t: t, raw: map[string]*rawEntry{}, series: map[string]*series{}}
	// -label flags under the target's labels.
	l.targetLabels = slices.Clone(t.public)
	for _, lb := range s.opts.Labels {
		if !slices.ContainsFunc(l.targetLabels, func(x samples.Label) bool { return x.Name == lb.Name }) {
			l.targetLabels = append(l.targetLabels, lb)
		}
	}
	slices.SortFunc(l.targetLabels, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	return l
}

// scrape fetches, parses and processes one scrape; emit writes it out.
func (l *loop) scrape(ctx context.Context, now time.Time) {
	l.start = now
	t0 := time.Now()
	l.out.Reset()
	l.total, l.added, l.seriesAdded = 0, 0, 0
	l.err, l.reason = l.fetch(ctx)
	if l.err == nil {
		l.parsed.Reset()
		if err := l.parser.Parse(l.body, noTimestamp, &l.parsed); err != nil {
			l.err, l.reason = fmt.Errorf("cannot parse the response of %s: %w", l.t.url, err), "parse"
		}
	}
	l.epoch++
	if l.err == nil {
		l.err, l.reason = l.process()
	}
	l.duration = time.Since(t0)
	if l.err != nil {
		l.out.Reset()
		l.parsed.Metadata = l.parsed.Metadata[:0]
	}
	l.commit()
}

// fetch GETs the target into l.body.
func (l *loop) fetch(ctx context.Context) (error, string) {
	t := l.t
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return fmt.Errorf("cannot build request for %s: %w", t.url, err), "request"
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1")
	req.Header.Set("User-Agent", l.s.opts.UserAgent)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(t.timeout.Seconds(), 'f', -1, 64))
	resp, err := l.s.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("scrape of %s timed out after %s (raise the job's scrape_timeout or fix the endpoint)", t.url, t.timeout), "timeout"
		}
		return fmt.Errorf("cannot scrape %s: %w", t.url, err), "network"
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape of %s returned HTTP status %s", t.url, resp.Status), "status"
	}
	l.parser.OpenMetrics = strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text")
	limit := l.job.BodySizeLimit
	if limit <= 0 {
		limit = l.s.opts.MaxBodyBytes
	}
	l.body, err = readLimited(resp.Body, l.body[:0], limit)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return fmt.Errorf("%w: the response of %s is larger than %d bytes (raise the job's body_size_limit or -scrape-max-body-bytes)", errBodySizeLimit, t.url, limit), "body_size_limit"
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("scrape of %s timed out after %s while reading the body", t.url, t.timeout), "timeout"
		}
		return fmt.Errorf("cannot read the response of %s: %w", t.url, err), "network"
	}
	return nil, ""
}

var errTooLarge = errors.New("body too large")

// readLimited appends r to buf, failing with errTooLarge past limit bytes.
func readLimited(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// process turns the parsed samples into the target's series in l.out:
// target labels, metric relabeling, label checks and limits, duplicates.
func (l *loop) process() (error, string) {
	j := l.job
	ts := l.start.UnixMilli()
	p := &l.parsed
	for i := range p.Series {
		sr := &p.Series[i]
		l.total++
		e := l.raw[string(sr.Key)]
		if e == nil {
			s, err := l.newSeries(p.SeriesLabels(sr))
			if err != nil {
				if errors.Is(err, errLabelLimit) {
					return err, "label_limit"
				}
				return err, "invalid_series"
			}
			e = &rawEntry{s: s}
			l.raw[string(sr.Key)] = e
		}
		e.cur = l.epoch
		s := e.s
		if s == nil {
			continue // dropped by metric_relabel_configs
		}
		l.added++
		x := p.SeriesSamples(sr)[0]
		explicit := x.T != noTimestamp && j.HonorTimestamps
		if !explicit {
			x.T = ts
		}
		if s.cur == l.epoch && !explicit {
			continue // the same series twice in one scrape: the first counts
		}
		if s.cur != l.epoch && s.last == 0 {
			l.seriesAdded++
		}
		s.cur = l.epoch
		s.tracked = !explicit
		l.out.StartSeries(nil)
		for _, lb := range s.labels {
			l.out.AddLabel(lb.Name, lb.Value)
		}
		l.out.AddSample(x.T, x.V)
	}
	if j.SampleLimit > 0 && l.added > j.SampleLimit {
		return fmt.Errorf("%w: %d samples after metric relabeling, sample_limit %d: raise sample_limit or drop series with metric_relabel_configs", errSampleLimit, l.added, j.SampleLimit), "sample_limit"
	}
	return nil, ""
}

// newSeries computes the final labels of a scraped series and finds or
// makes its series. It returns nil and no error when metric relabeling
// drops it.
func (l *loop) newSeries(raw []samples.Label) (*series, error) {
	j := l.job
	l.sorted = l.sorted[:0]
	for _, lb := range raw {
		if lb.Value != "" {
			l.sorted = append(l.sorted, lb)
		}
	}
	slices.SortStableFunc(l.sorted, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(l.sorted); i++ {
		if l.sorted[i].Name == l.sorted[i-1].Name {
			return nil, fmt.Errorf("series %s has label %q twice", seriesName(l.sorted), l.sorted[i].Name)
		}
	}
	l.b.Reset(l.sorted)
	l.b.MergeTarget(l.targetLabels, j.HonorLabels)
	if !relabel.Process(&l.b, j.MetricRelabel...) {
		return nil, nil
	}
	ls := l.b.Labels(nil)
	name := seriesName(ls)
	if name == "" {
		return nil, errNameLabelRequired
	}
	for _, lb := range ls {
		if lb.Name == "" || !utf8.ValidString(lb.Name) || !utf8.ValidString(lb.Value) {
			return nil, fmt.Errorf("invalid metric name or label names: %v", ls)
		}
	}
	if err := checkLabelLimits(ls, name, j); err != nil {
		return nil, err
	}
	l.key = l.key[:0]
	for _, lb := range ls {
		l.key = append(l.key, lb.Name...)
		l.key = append(l.key, 0)
		l.key = append(l.key, lb.Value...)
		l.key = append(l.key, 0)
	}
	if s := l.series[string(l.key)]; s != nil {
		return s, nil
	}
	for i := range ls {
		ls[i].Name, ls[i].Value = strings.Clone(ls[i].Name), strings.Clone(ls[i].Value)
	}
	s := &series{labels: ls}
	l.series[string(l.key)] = s
	return s, nil
}

// errLabelLimit marks the label limit errors (their texts are Prometheus').
var errLabelLimit = errors.New("label limit")

type labelLimitError struct{ msg string }

func (e labelLimitError) Error() string        { return e.msg }
func (e labelLimitError) Is(target error) bool { return target == errLabelLimit }

// checkLabelLimits applies label_limit, label_name_length_limit and
// label_value_length_limit with Prometheus' messages (the label count
// includes __name__).
func checkLabelLimits(ls []samples.Label, name string, j *job) error {
	if j.LabelLimit > 0 && len(ls) > j.LabelLimit {
		return labelLimitError{fmt.Sprintf("label_limit exceeded (metric: %.50s, number of labels: %d, limit: %d)", name, len(ls), j.LabelLimit)}
	}
	for _, lb := range ls {
		if j.LabelNameLengthLimit > 0 && len(lb.Name) > j.LabelNameLengthLimit {
			return labelLimitError{fmt.Sprintf("label_name_length_limit exceeded (metric: %.50s, label name: %.50s, length: %d, limit: %d)", name, lb.Name, len(lb.Name), j.LabelNameLengthLimit)}
		}
		if j.LabelValueLengthLimit > 0 && len(lb.Value) > j.LabelValueLengthLimit {
			return labelLimitError{fmt.Sprintf("label_value_length_limit exceeded (metric: %.50s, label name: %.50s, value: %.50q, length: %d, limit: %d)", name, lb.Name, lb.Value, len(lb.Value), j.LabelValueLengthLimit)}
		}
	}
	return nil
}

func seriesName(ls []samples.Label) string {
	for _, lb := range ls {
		if lb.Name == "__name__" {
			return lb.Value
		}
	}
	return ""
}

// commit ends a scrape: series of the previous scrape that this one lacks
// get stale markers (all of them when the scrape failed), and the caches
// forget what was not seen.
func (l *loop) commit() {
	ok := l.err == nil
	ts := l.start.UnixMilli()
	for k, s := range l.series {
		seen := ok && s.cur == l.epoch
		if seen {
			s.last = l.epoch
			continue
		}
		if s.tracked && s.last == l.prev && l.prev != 0 {
			l.appendStale(&l.out, s.labels, ts)
		}
		delete(l.series, k)
	}
	for k, e := range l.raw {
		if !ok || e.cur != l.epoch {
			delete(l.raw, k)
		}
	}
	if ok {
		l.prev = l.epoch
	} else {
		l.prev = 0
	}
}

func (l *loop) appendStale(dst *samples.Batch, ls []samples.Label, ts int64) {
	dst.StartSeries(nil)
	for _, lb := range ls {
		dst.AddLabel(lb.Name, lb.Value)
	}
	dst.AddSample(ts, StaleNaN)
}

// emit appends the last scrape's series, stale markers, metadata and
// report series to dst, and counts and logs a failure.
func (l *loop) emit(dst *samples.Batch) {
	for i := range l.out.Series {
		sr := &l.out.Series[i]
		dst.StartSeries(nil)
		for _, lb := range l.out.SeriesLabels(sr) {
			dst.AddLabel(lb.Name, lb.Value)
		}
		for _, x := range l.out.SeriesSamples(sr) {
			dst.AddSample(x.T, x.V)
		}
	}
	dst.Metadata = append(dst.Metadata, l.parsed.Metadata...)

	up := 1.0
	if l.err != nil {
		up = 0
		l.s.set.GetOrCreateCounter(`telltale_agent_scrape_errors_total{job=` + strconv.Quote(l.job.Name) + `,reason="` + l.reason + `"}`).Inc()
		if !l.failing {
			l.s.logger.Warn("scrape failed", "job", l.job.Name, "url", l.t.url, "reason", l.reason, "err", l.err)
		}
	} else if l.failing {
		l.s.logger.Info("scrape works again", "job", l.job.Name, "url", l.t.url)
	}
	l.failing = l.err != nil
	ts := l.start.UnixMilli()
	for i, v := range [len(reportNames)]float64{up, l.duration.Seconds(), float64(l.total), float64(l.added), float64(l.seriesAdded)} {
		l.report(dst, reportNames[i], ts, v)
	}
}

func (l *loop) report(dst *samples.Batch, name string, ts int64, v float64) {
	dst.StartSeries(nil)
	dst.AddLabel("__name__", name)
	for _, lb := range l.targetLabels {
		dst.AddLabel(lb.Name, lb.Value)
	}
	dst.AddSample(ts, v)
}

// staleAll ends a target that discovery dropped: every series of its last
// scrape and its report series get a stale marker at now.
func (l *loop) staleAll(now time.Time, dst *samples.Batch) {
	if l.epoch == 0 {
		return // never scraped
	}
	ts := now.UnixMilli()
	for _, s := range l.series {
		if s.tracked && s.last == l.prev && l.prev != 0 {
			l.appendStale(dst, s.labels, ts)
		}
	}
	for _, name := range reportNames {
		l.report(dst, name, ts, StaleNaN)
	}
	if l.failing {
		l.s.logger.Info("failing target removed by service discovery", "job", l.job.Name, "url", l.t.url)
	}
}
