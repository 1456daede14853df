// Package samples holds Batch, the in-memory form every Telltale parser
// produces and every writer consumes: label sets, float samples, native
// histogram samples, exemplars and metric metadata in flat, reusable
// slices, so decoding a request allocates nothing once the batch has grown
// to the request's size.
//
// A Batch is not safe for concurrent use. Aliasing rules:
//   - Strings in a Batch may point into the request buffer it was decoded
//     from (decoders use unsafe conversions to avoid copies): a Batch is
//     valid only until that buffer is reused, and anything kept longer must
//     be copied (strings.Clone).
//   - The slices of a Histogram (spans, buckets, custom values) point into
//     the Batch's backing arrays (Spans, Deltas, Counts) or memory the
//     decoder allocated: they are valid until Reset, and a writer that hands
//     a histogram to storage which keeps it (the TSDB head keeps the last
//     histogram of a series) must copy them first.
//   - Series.Key may point into KeyBuf or the request buffer.
//
// Everything added after float samples (histograms, exemplars) is additive:
// a decoder that knows nothing of them produces a valid Batch, and a
// consumer that reads only Samples sees the float samples it always did.
//
// The package has no dependencies, so the agent can import it.
package samples

// Label is one name/value pair of a series.
type Label struct {
	Name, Value string
}

// Sample is one float value at a time in milliseconds since the Unix epoch.
type Sample struct {
	T int64
	V float64
}

// Series is one series of a Batch: its labels are
// Batch.Labels[LabelsStart:LabelsEnd] and its samples
// Batch.Samples[SamplesStart:SamplesEnd].
type Series struct {
	// Key identifies the label set among all series a source format can
	// produce, e.g. the raw protobuf bytes of the labels, prefixed by a
	// format byte. Writers cache series references by it, so equal keys must
	// mean equal label sets. An empty Key turns the cache off for the series.
	// It points into Batch.keyBuf or the request buffer.
	Key []byte

	LabelsStart, LabelsEnd   int32
	SamplesStart, SamplesEnd int32
	// The series' native histogram samples are
	// Batch.Histograms[HistogramsStart:HistogramsEnd] and its exemplars
	// Batch.Exemplars[ExemplarsStart:ExemplarsEnd].
	HistogramsStart, HistogramsEnd int32
	ExemplarsStart, ExemplarsEnd   int32
}

// Span is a run of Length consecutive buckets of a native histogram, Offset
// buckets after the end of the previous span (or from index 0 for the
// first), as in Prometheus' model/histogram.Span.
type Span struct {
	Offset int32
	Length uint32
}

// CounterResetHint values of Histogram, as Prometheus defines them.
const (
	ResetUnknown uint8 = iota // the storage works it out
	ResetYes                  // a counter reset happened before this sample
	ResetNo                   // no counter reset
	ResetGauge                // a gauge histogram: resets do not apply
)

// Histogram is one native histogram sample in Prometheus' model
// (model/histogram): exponential buckets of the given Schema (-4..8), or,
// with Schema CustomBucketsSchema, the buckets whose upper bounds are
// CustomValues (NHCB). An integer histogram (Float false) has IntCount,
// IntZeroCount and delta-encoded bucket counts in *Deltas (each bucket is
// the previous plus its delta); a float histogram has Count, ZeroCount and
// absolute bucket counts in *Counts.
type Histogram struct {
	T     int64 // milliseconds since the Unix epoch
	Float bool
	// CounterResetHint is one of the Reset* values.
	CounterResetHint uint8
	Schema           int32
	ZeroThreshold    float64
	Sum              float64

	IntCount, IntZeroCount uint64  // integer histograms
	Count, ZeroCount       float64 // float histograms

	PositiveSpans, NegativeSpans   []Span
	PositiveDeltas, NegativeDeltas []int64   // integer histograms
	PositiveCounts, NegativeCounts []float64 // float histograms
	CustomValues                   []float64 // Schema == CustomBucketsSchema
}

// CustomBucketsSchema is the Schema of a native histogram with custom
// bucket boundaries (NHCB).
const CustomBucketsSchema = -53

// Buckets returns the number of buckets h declares in its spans.
func (h *Histogram) Buckets() int {
	n := 0
	for _, s := range h.PositiveSpans {
		n += int(s.Length)
	}
	for _, s := range h.NegativeSpans {
		n += int(s.Length)
	}
	return n
}

// Exemplar is one exemplar of a series: a value at a time with labels such
// as trace_id, which are Batch.ExemplarLabels[LabelsStart:LabelsEnd].
type Exemplar struct {
	T                      int64 // milliseconds since the Unix epoch
	V                      float64
	LabelsStart, LabelsEnd int32
}

// Metadata describes a metric family: what /api/v1/metadata serves.
type Metadata struct {
	// Name is the metric family name (without _bucket, _sum ... suffixes).
	Name string
	// Type is one of counter, gauge, histogram, gaugehistogram, summary,
	// info, stateset, unknown.
	Type string
	Help string
	Unit string
}

// Batch is a set of series with their samples and the metadata of the
// metric families they belong to. The zero value is an empty batch ready
// for use.
type Batch struct {
	Labels   []Label
	Series   []Series
	Samples  []Sample
	Metadata []Metadata

	// KeyBuf is scratch space decoders may append series keys to; Series.Key
	// may point into it. Reset keeps its capacity.
	KeyBuf []byte

	// Histograms are the native histogram samples of all series, and
	// Exemplars their exemplars, whose labels are in ExemplarLabels.
	Histograms     []Histogram
	Exemplars      []Exemplar
	ExemplarLabels []Label
	// Spans, Deltas and Counts are backing arrays decoders may put the
	// slices of Histograms in. Reset keeps their capacity.
	Spans  []Span
	Deltas []int64
	Counts []float64
}

// Reset empties b and keeps its capacity for reuse.
func (b *Batch) Reset() {
	clear(b.Labels) // drop references into old request buffers
	b.Labels = b.Labels[:0]
	b.Series = b.Series[:0]
	b.Samples = b.Samples[:0]
	clear(b.Metadata)
	b.Metadata = b.Metadata[:0]
	b.KeyBuf = b.KeyBuf[:0]
	clear(b.Histograms) // drop references into old backing arrays
	b.Histograms = b.Histograms[:0]
	b.Exemplars = b.Exemplars[:0]
	clear(b.ExemplarLabels)
	b.ExemplarLabels = b.ExemplarLabels[:0]
	b.Spans = b.Spans[:0]
	b.Deltas = b.Deltas[:0]
	b.Counts = b.Counts[:0]
}

// SeriesLabels returns the labels of series s.
func (b *Batch) SeriesLabels(s *Series) []Label {
	return b.Labels[s.LabelsStart:s.LabelsEnd]
}

// SeriesSamples returns the samples of series s.
func (b *Batch) SeriesSamples(s *Series) []Sample {
	return b.Samples[s.SamplesStart:s.SamplesEnd]
}

// SeriesHistograms returns the native histogram samples of series s.
func (b *Batch) SeriesHistograms(s *Series) []Histogram {
	return b.Histograms[s.HistogramsStart:s.HistogramsEnd]
}

// SeriesExemplars returns the exemplars of series s.
func (b *Batch) SeriesExemplars(s *Series) []Exemplar {
	return b.Exemplars[s.ExemplarsStart:s.ExemplarsEnd]
}

// ExemplarLabelsOf returns the labels of exemplar e.
func (b *Batch) ExemplarLabelsOf(e *Exemplar) []Label {
	return b.ExemplarLabels[e.LabelsStart:e.LabelsEnd]
}

// StartSeries begins a new series whose labels, samples, histograms and
// exemplars are those appended after it, until the next StartSeries. key
// may be nil.
func (b *Batch) StartSeries(key []byte) {
	n := int32(len(b.Labels))
	m := int32(len(b.Samples))
	h := int32(len(b.Histograms))
	e := int32(len(b.Exemplars))
	b.Series = append(b.Series, Series{Key: key, LabelsStart: n, LabelsEnd: n, SamplesStart: m, SamplesEnd: m,
		HistogramsStart: h, HistogramsEnd: h, ExemplarsStart: e, ExemplarsEnd: e})
}

// AddHistogram appends a native histogram sample to the series begun last.
// h's slices are kept as they are (see the package doc on aliasing).
func (b *Batch) AddHistogram(h Histogram) {
	b.Histograms = append(b.Histograms, h)
	b.Series[len(b.Series)-1].HistogramsEnd = int32(len(b.Histograms))
}

// AddExemplar appends an exemplar with labels ls (copied into
// ExemplarLabels; the strings are not) to the series begun last.
func (b *Batch) AddExemplar(t int64, v float64, ls []Label) {
	start := int32(len(b.ExemplarLabels))
	b.ExemplarLabels = append(b.ExemplarLabels, ls...)
	b.Exemplars = append(b.Exemplars, Exemplar{T: t, V: v, LabelsStart: start, LabelsEnd: int32(len(b.ExemplarLabels))})
	b.Series[len(b.Series)-1].ExemplarsEnd = int32(len(b.Exemplars))
}

// AddLabel appends a label to the series begun last.
func (b *Batch) AddLabel(name, value string) {
	b.Labels = append(b.Labels, Label{Name: name, Value: value})
	b.Series[len(b.Series)-1].LabelsEnd = int32(len(b.Labels))
}

// AddSample appends a sample to the series begun last.
func (b *Batch) AddSample(t int64, v float64) {
	b.Samples = append(b.Samples, Sample{T: t, V: v})
	b.Series[len(b.Series)-1].SamplesEnd = int32(len(b.Samples))
}

// Len returns the number of float samples in b; len(b.Histograms) and
// len(b.Exemplars) count the rest.
func (b *Batch) Len() int { return len(b.Samples) }

// Empty reports whether b holds no float sample, histogram or exemplar.
func (b *Batch) Empty() bool {
	return len(b.Samples) == 0 && len(b.Histograms) == 0 && len(b.Exemplars) == 0
}

// Name returns the value of the __name__ label of s, or "".
func (b *Batch) Name(s *Series) string {
	for _, l := range b.SeriesLabels(s) {
		if l.Name == "__name__" {
			return l.Value
		}
	}
	return ""
}
