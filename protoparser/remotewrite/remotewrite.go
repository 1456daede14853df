// Package remotewrite decodes and encodes the Prometheus remote write
// protocol, versions 1.0 (prometheus.WriteRequest) and 2.0
// (io.prometheus.write.v2.Request), to and from a samples.Batch.
//
// The decoders read protobuf wire format by hand: no generated code, no
// reflection, and no allocation per sample once the Batch has grown to the
// request's size. Label names and values, metadata and Series.Key alias the
// request bytes (or Batch.KeyBuf), so the Batch is valid only while the
// request buffer is unchanged.
//
// Float samples, native histogram samples (integer and float, exponential
// and custom buckets) and exemplars go into the Batch and are counted in
// Stats; a series that carries none of them is not added to the Batch.
// Histogram spans and buckets go into the Batch's backing arrays (Spans,
// Deltas, Counts); exemplar labels into ExemplarLabels, aliasing the
// request like series labels. Labels are kept in the order the sender wrote them; the
// decoders do not sort, deduplicate or validate label names (that is the
// ingest path's job, the same for every format).
//
// Series keys (Series.Key, see samples.Series):
//   - 1.0: the raw bytes of the TimeSeries from its first label field to its
//     last, aliasing the request. They always begin with 0x0a, the tag of
//     field 1, which serves as the format byte. (A sender that puts other
//     fields between labels only costs itself cache hits.)
//   - 2.0: 0x02 followed by the resolved labels, each name and value
//     prefixed by its length as a varint, in Batch.KeyBuf. Label references
//     are not used: they index the request's own symbol table, so equal
//     references in two requests may mean different labels.
//
// Every error returned by the decoders is the sender's fault (HTTP 400): the
// message names the message, index and field that is wrong.
//
// The encoders write the same bytes as Prometheus' generated code for the
// same content, so they can feed any remote write receiver. Encoders and
// decoders are safe for concurrent use on different Batches.
package remotewrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/golang/snappy"
)

// Stats counts what a decoder read besides what it put into the Batch.
type Stats struct {
	// Samples is the number of float samples added to the Batch.
	Samples int
	// Histograms is the number of native histogram samples added.
	Histograms int
	// Exemplars is the number of exemplars added.
	Exemplars int
}

// ErrTooLarge is wrapped by DecodeSnappy's error when the decoded body would
// exceed the limit.
var ErrTooLarge = errors.New("decoded body too large")

// DecodeSnappy decodes the snappy block-format body src into dst's storage
// (reusing it when large enough) and returns the decoded bytes. It reads the
// decoded length from the snappy header first and returns an error wrapping
// ErrTooLarge, without decoding, when it exceeds maxDecoded bytes.
// maxDecoded <= 0 means no limit.
func DecodeSnappy(dst, src []byte, maxDecoded int) ([]byte, error) {
	// The header is the decoded length as a uvarint. Read it here rather
	// than with snappy.DecodedLen, which calls any length of 4 GiB or more
	// "corrupt input": such a header is a size problem, and says so.
	declared, hn := binary.Uvarint(src)
	if hn > 0 && maxDecoded > 0 && declared > uint64(maxDecoded) {
		return nil, fmt.Errorf("%w: snappy header declares %d decoded bytes, limit is %d bytes: send smaller requests (lower max_samples_per_send in queue_config) or raise the limit", ErrTooLarge, declared, maxDecoded)
	}
	n, err := snappy.DecodedLen(src)
	if err != nil {
		return nil, fmt.Errorf("cannot read snappy header: %w: remote write bodies must be snappy block format (not the framed/stream format)", err)
	}
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	out, err := snappy.Decode(dst[:cap(dst)], src)
	if err != nil {
		return nil, fmt.Errorf("cannot decode snappy body: %w: remote write bodies must be snappy block format (not the framed/stream format)", err)
	}
	return out, nil
}

// metricTypes maps the MetricType enum (identical in 1.0 and 2.0) to the
// names samples.Metadata uses.
var metricTypes = [...]string{"unknown", "counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset"}

func metricTypeName(t uint64) string {
	if t < uint64(len(metricTypes)) {
		return metricTypes[t]
	}
	return "unknown"
}

func metricTypeEnum(name string) uint64 {
	for i, n := range metricTypes {
		if n == name {
			return uint64(i)
		}
	}
	return 0 // unknown, and also "untyped" or anything else
}

// familySuffixes are the series name suffixes of the samples of a metric
// family, tried longest first.
var familySuffixes = [...]string{"_bucket", "_gcount", "_created", "_count", "_total", "_gsum", "_info", "_sum"}

// familyName returns the metric family a series named name belongs to, given
// the family's type: histogram and summary series carry suffixes.
func familyName(name, typ string) string {
	switch typ {
	case "histogram", "gaugehistogram", "summary":
		for _, s := range familySuffixes {
			if strings.HasSuffix(name, s) && s != "_total" && s != "_info" {
				return name[:len(name)-len(s)]
			}
		}
	}
	return name
}
