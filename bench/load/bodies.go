package load

import (
	"fmt"

	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// Format is the wire format of generated bodies.
type Format int

const (
	// RemoteWrite is Prometheus remote write 1.0: snappy-compressed protobuf
	// WriteRequest, one sample per series per request as Prometheus sends.
	RemoteWrite Format = iota
	// Text is the Prometheus text exposition format with millisecond
	// timestamps, uncompressed, as /api/v1/import/prometheus takes it.
	Text
)

func (f Format) String() string {
	switch f {
	case RemoteWrite:
		return "remote write 1.0"
	case Text:
		return "text exposition"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Body is one request body and the number of samples in it.
type Body struct {
	Data    []byte
	Samples int
}

// Stream is the bodies one sender posts, in order.
type Stream []Body

// Samples returns the number of samples in the stream.
func (st Stream) Samples() int {
	n := 0
	for _, b := range st {
		n += b.Samples
	}
	return n
}

// Source is a deterministic set of series sampled at fixed steps: series
// i (0 <= i < Len) has the labels AppendSeries writes and at step k the
// value Value(i, k) at time Time(k). Set (the bench_ series) and Fleet
// (the series the provisioned dashboards read) are Sources. A Source must
// be safe for concurrent use.
type Source interface {
	// Len returns the number of series.
	Len() int
	// Time returns the timestamp of step k in milliseconds since the epoch.
	Time(k int) int64
	// AppendSeries starts series i in b (with a nil key) and adds its
	// labels, sorted by name as remote write requires.
	AppendSeries(b *samples.Batch, i int)
	// Value returns the value of series i at step k (k >= 0).
	Value(i, k int) float64
	// Selectors are PromQL series selectors that together match exactly
	// the source's series, for counting them back, each once. No two
	// series one selector matches differ only by name (count_over_time
	// drops the name, and two series left alike fail the query).
	Selectors() []string
}

// Plan describes the data of one load phase.
type Plan struct {
	Set Source
	// Senders is the number of concurrent senders; sender j owns the series
	// i with i%Senders == j. Zero means 1.
	Senders int
	// FromStep and Steps select steps FromStep..FromStep+Steps-1.
	FromStep, Steps int
	// PerRequest is the number of samples per body (the last body of a
	// stream may have fewer). Zero means 2,000.
	PerRequest int
	Format     Format
}

// Samples returns the number of samples the plan's streams hold.
func (p Plan) Samples() int { return p.Set.Len() * p.Steps }

// Streams encodes the plan: one Stream per sender. Within a stream the
// samples go step by step, each step over the sender's series in index
// order, so every series' samples are in time order.
func (p Plan) Streams() ([]Stream, error) {
	senders := max(p.Senders, 1)
	per := p.PerRequest
	if per <= 0 {
		per = 2000
	}
	if p.Set == nil || p.Set.Len() == 0 || p.Steps <= 0 {
		n := 0
		if p.Set != nil {
			n = p.Set.Len()
		}
		return nil, fmt.Errorf("empty plan: %d series × %d steps; give the set series (Instances, Services, Hosts) and Steps above 0", n, p.Steps)
	}
	if p.Format != RemoteWrite && p.Format != Text {
		return nil, fmt.Errorf("unknown %v: use RemoteWrite or Text", p.Format)
	}
	if senders > p.Set.Len() {
		return nil, fmt.Errorf("%d senders for %d series: every sender needs a series; use fewer senders", senders, p.Set.Len())
	}
	streams := make([]Stream, senders)
	var b samples.Batch
	var raw []byte
	for j := range streams {
		flush := func() {
			if b.Len() == 0 {
				return
			}
			switch p.Format {
			case RemoteWrite:
				raw = remotewrite.AppendV1(raw[:0], &b)
				streams[j] = append(streams[j], Body{Data: snappy.Encode(nil, raw), Samples: b.Len()})
			case Text:
				streams[j] = append(streams[j], Body{Data: promtext.Append(nil, &b, true), Samples: b.Len()})
			}
			b.Reset()
		}
		for k := p.FromStep; k < p.FromStep+p.Steps; k++ {
			t := p.Set.Time(k)
			for i := j; i < p.Set.Len(); i += senders {
				p.Set.AppendSeries(&b, i)
				b.AddSample(t, p.Set.Value(i, k))
				if b.Len() == per {
					flush()
				}
			}
		}
		flush()
	}
	return streams, nil
}
