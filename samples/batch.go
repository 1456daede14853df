// Package samples holds Batch, the in-memory form every Telltale parser
// produces and every writer consumes: label sets, float samples and metric
// metadata in flat, reusable slices, so decoding a request allocates nothing
// once the batch has grown to the request's size.
//
// A Batch is not safe for concurrent use. Strings in a Batch may point into
// the request buffer it was decoded from (decoders use unsafe conversions to
// avoid copies): a Batch is valid only until that buffer is reused, and
// anything kept longer must be copied (strings.Clone).
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
}

// SeriesLabels returns the labels of series s.
func (b *Batch) SeriesLabels(s *Series) []Label {
	return b.Labels[s.LabelsStart:s.LabelsEnd]
}

// SeriesSamples returns the samples of series s.
func (b *Batch) SeriesSamples(s *Series) []Sample {
	return b.Samples[s.SamplesStart:s.SamplesEnd]
}

// StartSeries begins a new series whose labels and samples are those
// appended after it, until the next StartSeries. key may be nil.
func (b *Batch) StartSeries(key []byte) {
	n := int32(len(b.Labels))
	m := int32(len(b.Samples))
	b.Series = append(b.Series, Series{Key: key, LabelsStart: n, LabelsEnd: n, SamplesStart: m, SamplesEnd: m})
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

// Len returns the number of samples in b.
func (b *Batch) Len() int { return len(b.Samples) }

// Name returns the value of the __name__ label of s, or "".
func (b *Batch) Name(s *Series) string {
	for _, l := range b.SeriesLabels(s) {
		if l.Name == "__name__" {
			return l.Value
		}
	}
	return ""
}
