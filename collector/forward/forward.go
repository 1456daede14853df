// Package forward is the collector's storage in forward mode: instead of
// the embedded TSDB, what ingest.Writer appends goes to a distributed
// engine (Cortex, Thanos receive, Prometheus, any remote write receiver).
// A Forwarder is the writer's Appendable: each committed batch becomes
// remote write records on a durable on-disk queue per target (agent/spool,
// the agent's queue), and a drainer per target sends the queue to the
// engine with the agent's remote write client (agent/push).
//
// Promises:
//   - Durable before acknowledged: Commit returns nil only after every
//     sample of the batch is on every target's queue (written with
//     write(2): a kill -9 right after loses none; Options.SyncInterval
//     bounds what a power cut can take, as the TSDB's WAL does). On error
//     the batch may be on some queues and not others; the sender retries
//     the whole batch, and the engine ignores a sample it already has.
//   - In order: a target receives records in commit order. A drainer sends
//     one request at a time; several small records may go in one request
//     (remote write 1.0 bodies concatenate into one valid request), which
//     keeps their order.
//   - Retries: network errors, timeouts, 429 and 5xx are retried with
//     backoff and the engine's Retry-After, for as long as it takes; the
//     record stays at the head of its queue and survives restarts.
//   - Rejections: a request the engine refuses with another 4xx would be
//     refused again, so it is dropped, logged with the engine's message and
//     counted (telltale_forward_dropped_samples_total{reason="rejected"}).
//     A merged request that is refused is sent again record by record, so
//     merging never drops more than sending one by one would.
//   - Bounded: each queue holds at most Options.QueueMaxBytes; when full the
//     oldest records are dropped and counted
//     (telltale_forward_spool_dropped_total{reason="full"}).
//   - Observable: per target, the backlog
//     (telltale_forward_spool_bytes, _records), the age of the oldest
//     record not yet delivered (telltale_forward_oldest_age_seconds), and
//     samples queued, sent and dropped.
//   - Late data is reported: after the primary target (the first) has
//     answered a request, Options.Late is given the samples of its records
//     that hold samples older than Options.LateAge when they were answered,
//     so the query result cache (which reads from that engine) learns of
//     them once the engine has them, not when they were queued.
//
// What the engine does with the samples (out-of-order, limits, tenants) is
// the engine's: a 2xx from the collector promises the queue, not the
// engine's acceptance.
//
// Float samples, native histograms (integer, float, custom buckets) and
// exemplars are forwarded; start-time zero samples are not (the writer
// does not make them). Metadata stays with the collector (its
// /api/v1/metadata answers from what it was sent).
package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/agent/spool"
	"github.com/telltale-dev/telltale/samples"
	"github.com/telltale-dev/telltale/samples/promhistogram"
)

// Target is one engine the forwarder writes to.
type Target struct {
	// Name identifies the target in metrics (target="<name>"), logs and
	// the queue directory; letters, digits, '_' and '-'.
	Name string
	// URL is the remote write endpoint, e.g.
	// http://cortex:9009/api/v1/push.
	URL string
	// Version is the remote write protocol: push.V1 or push.V2 (Thanos
	// receive stores nothing of 2.0 requests). Zero means V1.
	Version push.Version
	// Headers go with every request, e.g. X-Scope-OrgID for a tenant.
	Headers map[string]string
	// TokenFile holds a bearer token, re-read when it changes.
	TokenFile string
	// TLS configures https; nil means Go's defaults.
	TLS *tls.Config
}

// Options configure New. Zero values mean the defaults given.
type Options struct {
	// Dir holds one queue directory per target (Dir/<name>).
	Dir     string
	Targets []Target
	// QueueMaxBytes bounds each target's queue on disk. Default 1 GiB.
	QueueMaxBytes int64
	// SyncInterval is how often the queues are fsynced (a power cut may
	// lose that much; a process crash loses nothing). 0 means every
	// commit; default (negative is not allowed) see New.
	SyncInterval time.Duration
	// MaxSamplesPerSend bounds the samples of one request (and of one
	// record). Keep it below the engine's per-tenant burst: Cortex answers
	// 429 forever to a request larger than its
	// -distributor.ingestion-burst-size. Default 5000.
	MaxSamplesPerSend int
	// MaxBytesPerSend bounds the compressed bytes of records merged into
	// one request. Default 4 MiB.
	MaxBytesPerSend int
	// MaxSeries bounds the series references kept (see seriesTable).
	// Default 4Mi.
	MaxSeries int
	// SendTimeout bounds one request. Default 30s.
	SendTimeout time.Duration
	// MaxBackoff is the longest wait between retries (the engine's
	// Retry-After may ask for longer). Default 10s.
	MaxBackoff time.Duration
	// ShutdownDrain is how long Run keeps sending after its ctx is done,
	// while the queues are not empty, so a replica that is replaced
	// leaves little behind. 0 means it stops at once; what is left stays
	// on disk for the next start.
	ShutdownDrain time.Duration
	// Late, when set, is given the samples of the primary target's
	// records that hold samples older than LateAge (at the time the
	// engine answered), after the engine answered. It must not keep the
	// batch.
	Late    func(b *samples.Batch)
	LateAge time.Duration
	// UserAgent of the requests. Default "telltale-collector".
	UserAgent string
	Logger    *slog.Logger // nil means slog.Default()
	Metrics   *metrics.Set
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Forwarder is the storage of a forward-mode collector. It is safe for
// concurrent use.
type Forwarder struct {
	opts     Options
	log      *slog.Logger
	series   *seriesTable
	drainers []*drainer
	encoders [3]sync.Pool // *push.Encoder by version
	apps     sync.Pool    // *appender
}

// New opens the queues of opts.Targets (replaying nothing yet: Run
// drains).
func New(opts Options) (*Forwarder, error) {
	if len(opts.Targets) == 0 {
		return nil, errors.New("no remote write target: set -storage.remote-write-url")
	}
	if opts.QueueMaxBytes <= 0 {
		opts.QueueMaxBytes = 1 << 30
	}
	if opts.MaxSamplesPerSend <= 0 {
		opts.MaxSamplesPerSend = 5000
	}
	if opts.MaxBytesPerSend <= 0 {
		opts.MaxBytesPerSend = 4 << 20
	}
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = 4 << 20
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 30 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "telltale-collector"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Forwarder{opts: opts, log: opts.Logger.With("component", "forward"), series: newSeriesTable(opts.MaxSeries)}
	for v := range f.encoders {
		f.encoders[v].New = func() any { return &push.Encoder{Version: push.Version(v), MaxSamples: opts.MaxSamplesPerSend} }
	}
	f.apps.New = func() any { return &appender{f: f} }
	seen := map[string]bool{}
	for i, t := range opts.Targets {
		if !validName.MatchString(t.Name) {
			f.Close()
			return nil, fmt.Errorf("remote write target name %q: use letters, digits, '_' and '-'", t.Name)
		}
		if seen[t.Name] {
			f.Close()
			return nil, fmt.Errorf("remote write target name %q is used twice: give each target its own name", t.Name)
		}
		seen[t.Name] = true
		d, err := f.newDrainer(t, i == 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("remote write target %s: %w", t.Name, err)
		}
		f.drainers = append(f.drainers, d)
	}
	opts.Metrics.NewGauge("telltale_forward_series", func() float64 { return float64(f.series.len()) })
	return f, nil
}

func (f *Forwarder) newDrainer(t Target, primary bool) (*drainer, error) {
	if t.Version == 0 {
		t.Version = push.V1
	}
	lbl := `target="` + t.Name + `"`
	client, err := push.New(push.Options{
		URL: t.URL, Version: t.Version, Headers: t.Headers, TokenFile: t.TokenFile, TLS: t.TLS,
		Timeout: f.opts.SendTimeout, MaxBackoff: f.opts.MaxBackoff, UserAgent: f.opts.UserAgent,
		MaxAttempts: 5, Logger: f.opts.Logger.With("target", t.Name), Metrics: f.opts.Metrics,
		MetricPrefix: "telltale_forward_", MetricLabels: lbl,
		Flags: push.FlagNames{URL: "-storage.remote-write-url", Token: "bearer_token_file", Version: "protocol"},
	})
	if err != nil {
		return nil, err
	}
	q, err := spool.Open(spool.Options{
		Dir: filepath.Join(f.opts.Dir, t.Name), MaxBytes: f.opts.QueueMaxBytes, SyncInterval: f.opts.SyncInterval,
		Logger: f.opts.Logger.With("target", t.Name), Metrics: f.opts.Metrics,
		MetricPrefix: "telltale_forward_", MetricLabels: lbl,
		DirFlag: "-forward.queue-dir", MaxBytesFlag: "-forward.queue-max-bytes",
	})
	if err != nil {
		return nil, err
	}
	if b, n := q.Size(); n > 0 {
		f.log.Info("forward queue holds data from an earlier run; sending it", "target", t.Name, "records", n, "bytes", b)
	}
	d := &drainer{f: f, target: t, q: q, client: client, log: f.log.With("target", t.Name)}
	if primary {
		d.late = f.opts.Late
	}
	set := f.opts.Metrics
	d.queued = set.NewCounter("telltale_forward_samples_queued_total{" + lbl + "}")
	d.sent = set.NewCounter("telltale_forward_samples_sent_total{" + lbl + "}")
	d.rejected = set.NewCounter("telltale_forward_dropped_samples_total{" + lbl + `,reason="rejected"}`)
	d.unreadable = set.NewCounter("telltale_forward_dropped_samples_total{" + lbl + `,reason="unreadable"}`)
	set.NewGauge("telltale_forward_oldest_age_seconds{"+lbl+"}", d.oldestAge)
	return d, nil
}

// Appender returns an appender for one batch; Commit queues it for every
// target.
func (f *Forwarder) Appender(context.Context) promstorage.Appender {
	return f.apps.Get().(*appender)
}

// Run drains the queues until ctx is done, then for at most
// Options.ShutdownDrain while they are not empty, and returns when every
// drainer stopped. Call Close after it.
func (f *Forwarder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, d := range f.drainers {
		wg.Go(func() { d.run(ctx) })
	}
	wg.Wait()
	return nil
}

// Close closes the queues; what they hold is sent after the next start.
func (f *Forwarder) Close() error {
	var errs []error
	for _, d := range f.drainers {
		if err := d.q.Close(); err != nil {
			errs = append(errs, fmt.Errorf("forward queue of %s: %w", d.target.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Backlog returns the records and bytes queued for all targets.
func (f *Forwarder) Backlog() (records int, bytes int64) {
	for _, d := range f.drainers {
		b, n := d.q.Size()
		records += n
		bytes += b
	}
	return records, bytes
}

// enqueue appends b, whose oldest sample is at minT, to every target's
// queue.
func (f *Forwarder) enqueue(b *samples.Batch, minT int64) error {
	now := f.opts.Now().UnixMilli()
	var rec []byte
	for _, d := range f.drainers {
		v := d.target.Version
		enc := f.encoders[v].Get().(*push.Encoder)
		err := enc.Encode(b, func(body []byte, n int) error {
			rec = appendRecord(rec[:0], recordHeader{version: v, samples: n, queuedAt: now, minT: minT}, body)
			if err := d.q.Append(rec); err != nil {
				return fmt.Errorf("cannot queue %d samples for %s: %w", n, d.target.Name, err)
			}
			d.queued.Add(n)
			return nil
		})
		f.encoders[v].Put(enc)
		if err != nil {
			return err
		}
	}
	return nil
}

// appender stages one batch. It is not safe for concurrent use (as a TSDB
// appender is not).
type appender struct {
	f    *Forwarder
	b    samples.Batch
	cur  promstorage.SeriesRef // series of the last Append
	minT int64
}

// errUnknownRef is what Append returns for a reference the table dropped:
// ingest.Writer then appends the series with its labels.
var errUnknownRef = fmt.Errorf("%w: unknown series reference (dropped from the forwarder's table)", tsdb.ErrInvalidSample)

func (a *appender) Append(ref promstorage.SeriesRef, l labels.Labels, t int64, v float64) (promstorage.SeriesRef, error) {
	ref, err := a.series(ref, l, t)
	if err == nil {
		a.b.AddSample(t, v)
	}
	return ref, err
}

// AppendHistogram stages a native histogram sample; h or fh was copied
// by the writer, so the batch may keep its slices until Commit.
func (a *appender) AppendHistogram(ref promstorage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (promstorage.SeriesRef, error) {
	ref, err := a.series(ref, l, t)
	if err == nil {
		a.b.AddHistogram(promhistogram.FromPrometheus(t, h, fh))
	}
	return ref, err
}

// AppendExemplar stages an exemplar of the series.
func (a *appender) AppendExemplar(ref promstorage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (promstorage.SeriesRef, error) {
	ref, err := a.series(ref, l, e.Ts)
	if err != nil {
		return 0, err
	}
	start := int32(len(a.b.ExemplarLabels))
	e.Labels.Range(func(lb labels.Label) {
		a.b.ExemplarLabels = append(a.b.ExemplarLabels, samples.Label{Name: lb.Name, Value: lb.Value})
	})
	a.b.Exemplars = append(a.b.Exemplars, samples.Exemplar{T: e.Ts, V: e.Value, LabelsStart: start, LabelsEnd: int32(len(a.b.ExemplarLabels))})
	a.b.Series[len(a.b.Series)-1].ExemplarsEnd = int32(len(a.b.Exemplars))
	return ref, nil
}

// series makes ref (or the series of labels l, when ref is 0) the series
// the next sample at t goes to, starting a new series in the batch unless
// it is the one appended last.
func (a *appender) series(ref promstorage.SeriesRef, l labels.Labels, t int64) (promstorage.SeriesRef, error) {
	if ref == 0 || ref != a.cur || len(a.b.Series) == 0 {
		switch {
		case !l.IsEmpty() && ref == 0:
			ref = a.f.series.add(l)
		case l.IsEmpty():
			ls, ok := a.f.series.get(ref)
			if !ok {
				return 0, errUnknownRef
			}
			l = ls
		}
		a.b.StartSeries(nil)
		l.Range(func(lb labels.Label) { a.b.AddLabel(lb.Name, lb.Value) })
		a.cur = ref
	}
	if a.b.Empty() || t < a.minT {
		a.minT = t
	}
	return ref, nil
}

func (a *appender) Commit() error {
	defer a.release()
	if a.b.Empty() {
		return nil
	}
	return a.f.enqueue(&a.b, a.minT)
}

func (a *appender) Rollback() error {
	a.release()
	return nil
}

func (a *appender) release() {
	a.b.Reset()
	a.cur, a.minT = 0, 0
	a.f.apps.Put(a)
}

// ErrNotForwarded is returned for what forward mode does not send yet.
var ErrNotForwarded = errors.New("not supported in forward mode yet")

func (a *appender) SetOptions(*promstorage.AppendOptions) {}

func (a *appender) AppendHistogramSTZeroSample(promstorage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (promstorage.SeriesRef, error) {
	return 0, fmt.Errorf("native histograms: %w", ErrNotForwarded)
}

func (a *appender) AppendSTZeroSample(promstorage.SeriesRef, labels.Labels, int64, int64) (promstorage.SeriesRef, error) {
	return 0, fmt.Errorf("start-time zero samples: %w", ErrNotForwarded)
}

// UpdateMetadata is accepted and ignored: the collector keeps metadata
// itself (ingest.Writer's store answers /api/v1/metadata).
func (a *appender) UpdateMetadata(ref promstorage.SeriesRef, _ labels.Labels, _ metadata.Metadata) (promstorage.SeriesRef, error) {
	return ref, nil
}
