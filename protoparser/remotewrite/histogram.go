package remotewrite

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/telltale-dev/telltale/samples"
)

// decodeHistogram decodes a native histogram message, the same in 1.0
// (prometheus.Histogram) and 2.0 (io.prometheus.write.v2.Histogram), into
// dst's backing arrays and appends it to the series begun last. It checks
// the wire format only; whether spans and buckets agree is the ingest
// path's check (the TSDB's validation), the same for every format.
func decodeHistogram(b []byte, dst *samples.Batch) error {
	var h samples.Histogram
	var intCount, floatCount, intZero, floatZero bool
	posSpans, negSpans := spanRange{-1, -1}, spanRange{-1, -1}
	var posD, negD, posC, negC, custom valueRange
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 1, 4, 6, 14, 15: // count_int, schema, zero_count_int, reset_hint, timestamp
			names := [...]string{1: "count_int", 4: "schema", 6: "zero_count_int", 14: "reset_hint", 15: "timestamp"}
			if wt != wtVarint {
				return wrongWireType(names[field], wt, wtVarint)
			}
			x, next, err := readVarint(b, i)
			if err != nil {
				return fmt.Errorf("%s: %w", names[field], err)
			}
			switch field {
			case 1:
				h.IntCount, intCount = x, true
			case 4:
				h.Schema = int32(zigzag32(x))
			case 6:
				h.IntZeroCount, intZero = x, true
			case 14:
				if x > uint64(samples.ResetGauge) {
					return fmt.Errorf("reset_hint: %d is not a ResetHint (0..3)", x)
				}
				h.CounterResetHint = uint8(x)
			case 15:
				h.T = int64(x)
			}
			i = next
		case 2, 3, 5, 7: // count_float, sum, zero_threshold, zero_count_float
			names := [...]string{2: "count_float", 3: "sum", 5: "zero_threshold", 7: "zero_count_float"}
			if wt != wtFixed64 {
				return wrongWireType(names[field], wt, wtFixed64)
			}
			u, next, err := readFixed64(b, i)
			if err != nil {
				return fmt.Errorf("%s: %w", names[field], err)
			}
			v := math.Float64frombits(u)
			switch field {
			case 2:
				h.Count, floatCount = v, true
			case 3:
				h.Sum = v
			case 5:
				h.ZeroThreshold = v
			case 7:
				h.ZeroCount, floatZero = v, true
			}
			i = next
		case 8, 11: // negative_spans, positive_spans
			r := &posSpans
			if field == 8 {
				r = &negSpans
			}
			if wt != wtLen {
				return wrongWireType("span", wt, wtLen)
			}
			msg, next, err := readBytes(b, i, "message")
			if err != nil {
				return fmt.Errorf("span: %w", err)
			}
			sp, err := decodeSpan(msg)
			if err != nil {
				return fmt.Errorf("span: %w", err)
			}
			if r.start >= 0 && r.end != len(dst.Spans) {
				return fmt.Errorf("positive and negative spans interleaved; send each list contiguously")
			}
			if r.start < 0 {
				r.start = len(dst.Spans)
			}
			dst.Spans = append(dst.Spans, sp)
			r.end = len(dst.Spans)
			i = next
		case 9, 12: // negative_deltas, positive_deltas: sint64
			r := &posD
			if field == 9 {
				r = &negD
			}
			next, err := readInts(b, i, wt, dst, r)
			if err != nil {
				return fmt.Errorf("bucket deltas: %w", err)
			}
			i = next
		case 10, 13, 16: // negative_counts, positive_counts, custom_values: double
			r := &posC
			switch field {
			case 10:
				r = &negC
			case 16:
				r = &custom
			}
			next, err := readDoubles(b, i, wt, dst, r)
			if err != nil {
				return fmt.Errorf("bucket counts: %w", err)
			}
			i = next
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return err
			}
		}
	}
	isInt, isFloat := intCount || intZero, floatCount || floatZero
	switch {
	case isInt && isFloat:
		return fmt.Errorf("histogram mixes integer and float counts (count_int/zero_count_int with count_float/zero_count_float); use one kind")
	case !isInt && !isFloat:
		isFloat = posC.n() > 0 || negC.n() > 0
	}
	if isFloat && (posD.n() > 0 || negD.n() > 0) {
		return fmt.Errorf("float histogram has integer bucket deltas; a float histogram sends positive_counts/negative_counts")
	}
	if !isFloat && (posC.n() > 0 || negC.n() > 0) {
		return fmt.Errorf("integer histogram has float bucket counts; an integer histogram sends positive_deltas/negative_deltas")
	}
	h.Float = isFloat
	h.PositiveSpans = posSpans.of(dst.Spans)
	h.NegativeSpans = negSpans.of(dst.Spans)
	h.PositiveDeltas = posD.ints(dst.Deltas)
	h.NegativeDeltas = negD.ints(dst.Deltas)
	h.PositiveCounts = posC.floats(dst.Counts)
	h.NegativeCounts = negC.floats(dst.Counts)
	h.CustomValues = custom.floats(dst.Counts)
	dst.AddHistogram(h)
	return nil
}

// readHistogramField reads the histogram field (1.0: 4, 2.0: 3) at b[i:]
// of wire type wt, the nth of its series, into dst.
func readHistogramField(b []byte, i, wt, nth int, dst *samples.Batch) (int, error) {
	if wt != wtLen {
		return 0, wrongWireType("histogram", wt, wtLen)
	}
	msg, next, err := readBytes(b, i, "message")
	if err != nil {
		return 0, fmt.Errorf("histogram %d: %w", nth, err)
	}
	if err := decodeHistogram(msg, dst); err != nil {
		return 0, fmt.Errorf("histogram %d: %w", nth, err)
	}
	return next, nil
}

// spanRange is a range of dst.Spans; start -1 means none.
type spanRange struct{ start, end int }

func (r spanRange) of(s []samples.Span) []samples.Span {
	if r.start < 0 {
		return nil
	}
	return s[r.start:r.end:r.end]
}

// valueRange is a range of dst.Deltas or dst.Counts. A repeated field sent
// in several pieces (packed and not) must be contiguous, which it is unless
// another list of the same kind is interleaved; that is refused.
type valueRange struct {
	start, end int
	set        bool
}

func (r valueRange) n() int { return r.end - r.start }

func (r *valueRange) extend(start, end int) error {
	if r.set && r.end != start {
		return fmt.Errorf("bucket lists interleaved; send each list contiguously")
	}
	if !r.set {
		r.start, r.set = start, true
	}
	r.end = end
	return nil
}

func (r valueRange) ints(s []int64) []int64 {
	if !r.set {
		return nil
	}
	return s[r.start:r.end:r.end]
}

func (r valueRange) floats(s []float64) []float64 {
	if !r.set {
		return nil
	}
	return s[r.start:r.end:r.end]
}

// readInts reads a repeated sint64, packed or not, into dst.Deltas.
func readInts(b []byte, i, wt int, dst *samples.Batch, r *valueRange) (int, error) {
	start := len(dst.Deltas)
	switch wt {
	case wtLen:
		packed, next, err := readBytes(b, i, "packed sint64")
		if err != nil {
			return 0, err
		}
		for j := 0; j < len(packed); {
			x, nj, err := readVarint(packed, j)
			if err != nil {
				return 0, err
			}
			dst.Deltas = append(dst.Deltas, zigzag64(x))
			j = nj
		}
		i = next
	case wtVarint:
		x, next, err := readVarint(b, i)
		if err != nil {
			return 0, err
		}
		dst.Deltas = append(dst.Deltas, zigzag64(x))
		i = next
	default:
		return 0, wrongWireType("sint64", wt, wtLen)
	}
	return i, r.extend(start, len(dst.Deltas))
}

// readDoubles reads a repeated double, packed or not, into dst.Counts.
func readDoubles(b []byte, i, wt int, dst *samples.Batch, r *valueRange) (int, error) {
	start := len(dst.Counts)
	switch wt {
	case wtLen:
		packed, next, err := readBytes(b, i, "packed double")
		if err != nil {
			return 0, err
		}
		if len(packed)%8 != 0 {
			return 0, fmt.Errorf("packed double of %d bytes, not a multiple of 8", len(packed))
		}
		for j := 0; j < len(packed); j += 8 {
			u, _, _ := readFixed64(packed, j)
			dst.Counts = append(dst.Counts, math.Float64frombits(u))
		}
		i = next
	case wtFixed64:
		u, next, err := readFixed64(b, i)
		if err != nil {
			return 0, err
		}
		dst.Counts = append(dst.Counts, math.Float64frombits(u))
		i = next
	default:
		return 0, wrongWireType("double", wt, wtLen)
	}
	return i, r.extend(start, len(dst.Counts))
}

// decodeSpan decodes a BucketSpan{offset sint32 = 1, length uint32 = 2}.
func decodeSpan(b []byte) (samples.Span, error) {
	var sp samples.Span
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return sp, err
		}
		i = next
		switch field {
		case 1, 2:
			if wt != wtVarint {
				return sp, wrongWireType("offset/length", wt, wtVarint)
			}
			x, next, err := readVarint(b, i)
			if err != nil {
				return sp, err
			}
			if field == 1 {
				sp.Offset = zigzag32(x)
			} else {
				sp.Length = uint32(x)
			}
			i = next
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return sp, err
			}
		}
	}
	return sp, nil
}

func zigzag32(x uint64) int32 { return int32(uint32(x)>>1) ^ -int32(uint32(x)&1) }
func zigzag64(x uint64) int64 { return int64(x>>1) ^ -int64(x&1) }

// decodeExemplar decodes an exemplar's value (field 2) and timestamp
// (field 3), the same in both versions, calling label for each field 1
// (the 1.0 Label messages or the 2.0 packed label refs).
func decodeExemplar(b []byte, label func(wt int, b []byte, i int) (int, error)) (t int64, v float64, err error) {
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return 0, 0, err
		}
		i = next
		switch field {
		case 1:
			if i, err = label(wt, b, i); err != nil {
				return 0, 0, fmt.Errorf("labels: %w", err)
			}
		case 2:
			if wt != wtFixed64 {
				return 0, 0, wrongWireType("value", wt, wtFixed64)
			}
			u, next, err := readFixed64(b, i)
			if err != nil {
				return 0, 0, fmt.Errorf("value: %w", err)
			}
			v, i = math.Float64frombits(u), next
		case 3:
			if wt != wtVarint {
				return 0, 0, wrongWireType("timestamp", wt, wtVarint)
			}
			x, next, err := readVarint(b, i)
			if err != nil {
				return 0, 0, fmt.Errorf("timestamp: %w", err)
			}
			t, i = int64(x), next
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return 0, 0, err
			}
		}
	}
	return t, v, nil
}

// addExemplar appends an exemplar whose labels are
// dst.ExemplarLabels[labelsStart:] to the series begun last.
func addExemplar(dst *samples.Batch, labelsStart int, t int64, v float64) {
	dst.Exemplars = append(dst.Exemplars, samples.Exemplar{T: t, V: v, LabelsStart: int32(labelsStart), LabelsEnd: int32(len(dst.ExemplarLabels))})
	dst.Series[len(dst.Series)-1].ExemplarsEnd = int32(len(dst.Exemplars))
}

// appendHistogramField appends h as a length-delimited field with the
// given tag byte (1.0: 0x22, TimeSeries.histograms = 4; 2.0: 0x1a, = 3),
// its fields in number order as Prometheus' generated code writes them.
// tmp is scratch space; the grown scratch is returned with dst.
func appendHistogramField(dst, tmp []byte, tag byte, h *samples.Histogram) (out, scratch []byte) {
	m := tmp[:0]
	if h.Float {
		m = append(m, 0x11) // count_float, a oneof member: always written
		m = binary.LittleEndian.AppendUint64(m, math.Float64bits(h.Count))
	} else {
		m = append(m, 0x08)
		m = binary.AppendUvarint(m, h.IntCount)
	}
	m = appendDouble(m, 0x19, h.Sum)
	if h.Schema != 0 {
		m = append(m, 0x20)
		m = binary.AppendUvarint(m, uint64(uint32(h.Schema<<1)^uint32(h.Schema>>31)))
	}
	m = appendDouble(m, 0x29, h.ZeroThreshold)
	if h.Float {
		m = append(m, 0x39)
		m = binary.LittleEndian.AppendUint64(m, math.Float64bits(h.ZeroCount))
	} else {
		m = append(m, 0x30)
		m = binary.AppendUvarint(m, h.IntZeroCount)
	}
	m = appendSpans(m, 0x42, h.NegativeSpans)
	m = appendSint64s(m, 0x4a, h.NegativeDeltas)
	m = appendDoubles(m, 0x52, h.NegativeCounts)
	m = appendSpans(m, 0x5a, h.PositiveSpans)
	m = appendSint64s(m, 0x62, h.PositiveDeltas)
	m = appendDoubles(m, 0x6a, h.PositiveCounts)
	if h.CounterResetHint != 0 {
		m = append(m, 0x70, h.CounterResetHint)
	}
	if h.T != 0 {
		m = append(m, 0x78)
		m = binary.AppendUvarint(m, uint64(h.T))
	}
	if len(h.CustomValues) > 0 {
		m = append(m, 0x82, 0x01)
		m = binary.AppendUvarint(m, uint64(8*len(h.CustomValues)))
		for _, v := range h.CustomValues {
			m = binary.LittleEndian.AppendUint64(m, math.Float64bits(v))
		}
	}
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	return append(dst, m...), m
}

func appendDouble(dst []byte, tag byte, v float64) []byte {
	if v == 0 && !math.Signbit(v) {
		return dst
	}
	dst = append(dst, tag)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendSpans(dst []byte, tag byte, spans []samples.Span) []byte {
	for _, sp := range spans {
		off := uint64(uint32(sp.Offset<<1) ^ uint32(sp.Offset>>31))
		n := 0
		if off != 0 {
			n += 1 + varintLen(off)
		}
		if sp.Length != 0 {
			n += 1 + varintLen(uint64(sp.Length))
		}
		dst = append(dst, tag)
		dst = binary.AppendUvarint(dst, uint64(n))
		if off != 0 {
			dst = append(dst, 0x08)
			dst = binary.AppendUvarint(dst, off)
		}
		if sp.Length != 0 {
			dst = append(dst, 0x10)
			dst = binary.AppendUvarint(dst, uint64(sp.Length))
		}
	}
	return dst
}

func appendSint64s(dst []byte, tag byte, vs []int64) []byte {
	if len(vs) == 0 {
		return dst
	}
	n := 0
	for _, v := range vs {
		n += varintLen(uint64(v<<1) ^ uint64(v>>63))
	}
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(n))
	for _, v := range vs {
		dst = binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
	}
	return dst
}

func appendDoubles(dst []byte, tag byte, vs []float64) []byte {
	if len(vs) == 0 {
		return dst
	}
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(8*len(vs)))
	for _, v := range vs {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	return dst
}

// appendExemplarTail appends an exemplar's value and timestamp fields.
func appendExemplarTail(dst []byte, t int64, v float64) []byte {
	dst = appendDouble(dst, 0x11, v)
	if t != 0 {
		dst = append(dst, 0x18)
		dst = binary.AppendUvarint(dst, uint64(t))
	}
	return dst
}
