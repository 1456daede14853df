package push

import (
	"fmt"

	"github.com/golang/snappy"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// Encoder turns a samples.Batch into snappy-compressed remote write bodies
// of at most MaxSamples samples each (float and native histogram samples;
// exemplars go with their series). The zero value is not usable: set
// Version and MaxSamples. An Encoder reuses its buffers and is not safe for
// concurrent use.
type Encoder struct {
	// Version is the protocol version to encode.
	Version Version
	// MaxSamples is the most samples per body; a series with more samples
	// than that still goes into one body of its own.
	MaxSamples int

	view   samples.Batch
	pb     []byte
	snappy []byte
}

// Encode sorts the labels of every series of b by name (the remote write
// spec requires it; b is changed in place) and calls emit once per body,
// in order. body is valid only until emit returns: copy it to keep it.
// Encode stops at and returns the first error of emit.
//
// With V1, metadata goes into the first body only; with V2 every body
// carries the metadata of its own series.
func (e *Encoder) Encode(b *samples.Batch, emit func(body []byte, samples int) error) error {
	if e.MaxSamples <= 0 {
		return fmt.Errorf("BUG: Encoder.MaxSamples is %d", e.MaxSamples)
	}
	SortLabels(b)
	start, n := 0, 0
	first := true
	flush := func(end int) error {
		if end == start {
			return nil
		}
		e.view = samples.Batch{Labels: b.Labels, Series: b.Series[start:end], Samples: b.Samples, Metadata: b.Metadata,
			Histograms: b.Histograms, Exemplars: b.Exemplars, ExemplarLabels: b.ExemplarLabels}
		if e.Version == V1 && !first {
			e.view.Metadata = nil
		}
		if e.Version == V2 {
			e.pb = remotewrite.AppendV2(e.pb[:0], &e.view)
		} else {
			e.pb = remotewrite.AppendV1(e.pb[:0], &e.view)
		}
		e.snappy = snappy.Encode(e.snappy[:cap(e.snappy)], e.pb)
		e.view = samples.Batch{}
		first = false
		err := emit(e.snappy, n)
		start, n = end, 0
		return err
	}
	for i := range b.Series {
		s := &b.Series[i]
		k := int(s.SamplesEnd-s.SamplesStart) + int(s.HistogramsEnd-s.HistogramsStart)
		if n > 0 && n+k > e.MaxSamples {
			if err := flush(i); err != nil {
				return err
			}
		}
		n += k
	}
	return flush(len(b.Series))
}

// SortLabels sorts the labels of every series of b by name, in place,
// keeping the relative order of equal names. Series are usually sorted
// already or nearly so (extra labels appended at the end), so it is an
// insertion sort.
func SortLabels(b *samples.Batch) {
	for i := range b.Series {
		ls := b.SeriesLabels(&b.Series[i])
		for j := 1; j < len(ls); j++ {
			if ls[j].Name >= ls[j-1].Name {
				continue
			}
			x := ls[j]
			k := j
			for k > 0 && ls[k-1].Name > x.Name {
				ls[k] = ls[k-1]
				k--
			}
			ls[k] = x
		}
	}
}
