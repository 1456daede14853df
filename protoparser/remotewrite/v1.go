package remotewrite

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/telltale-dev/telltale/samples"
)

// DecodeV1 appends the series, float samples and metadata of data, a
// snappy-decoded prometheus.WriteRequest (remote write 1.0), to dst.
// On error dst may hold part of the request; the caller should Reset it.
func DecodeV1(data []byte, dst *samples.Batch) (Stats, error) {
	var st Stats
	series, metadata := 0, 0
	for i := 0; i < len(data); {
		field, wt, next, err := readTag(data, i)
		if err != nil {
			return st, fmt.Errorf("remote write 1.0: %w", err)
		}
		i = next
		switch field {
		case 1, 3:
			if wt != wtLen {
				name := "timeseries"
				if field == 3 {
					name = "metadata"
				}
				return st, fmt.Errorf("remote write 1.0: %w", wrongWireType(name, wt, wtLen))
			}
			msg, next, err := readBytes(data, i, "message")
			if field == 1 {
				if err != nil {
					return st, fmt.Errorf("remote write 1.0: timeseries %d: %w", series, err)
				}
				if err := decodeSeriesV1(msg, dst, &st); err != nil {
					return st, fmt.Errorf("remote write 1.0: timeseries %d: %w", series, err)
				}
				series++
			} else {
				if err != nil {
					return st, fmt.Errorf("remote write 1.0: metadata %d: %w", metadata, err)
				}
				if err := decodeMetadataV1(msg, dst); err != nil {
					return st, fmt.Errorf("remote write 1.0: metadata %d: %w", metadata, err)
				}
				metadata++
			}
			i = next
		case 4, 5:
			// Not in 1.0, but the symbols and timeseries of 2.0: skipping
			// them would silently accept a 2.0 request as empty.
			return st, fmt.Errorf("remote write 1.0: unexpected field %d, which is a remote write 2.0 field: "+
				"a 2.0 sender must set Content-Type: application/x-protobuf;proto=io.prometheus.write.v2.Request", field)
		default:
			i, err = skipField(data, i, field, wt)
			if err != nil {
				return st, fmt.Errorf("remote write 1.0: %w", err)
			}
		}
	}
	return st, nil
}

// decodeSeriesV1 decodes a prometheus.TimeSeries.
func decodeSeriesV1(b []byte, dst *samples.Batch, st *Stats) error {
	dst.StartSeries(nil)
	s := &dst.Series[len(dst.Series)-1]
	keyStart, keyEnd := -1, 0
	labels, nsamples, nhist, nexemplars := 0, 0, 0, 0
	for i := 0; i < len(b); {
		tagStart := i
		// Fast path for what every sender writes: a label message under
		// 128 bytes holding a name and a value shorter than 128 bytes.
		if b[i] == 0x0a && i+1 < len(b) && b[i+1] < 0x80 {
			end := i + 2 + int(b[i+1])
			if name, value, ok := fastLabel(b, i+2, end); ok {
				dst.Labels = append(dst.Labels, samples.Label{Name: name, Value: value})
				if keyStart < 0 {
					keyStart = tagStart
				}
				keyEnd = end
				labels++
				i = end
				continue
			}
		}
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 1: // labels
			if wt != wtLen {
				return fmt.Errorf("label %d: %w", labels, wrongWireType("label", wt, wtLen))
			}
			msg, next, err := readBytes(b, i, "message")
			if err != nil {
				return fmt.Errorf("label %d: %w", labels, err)
			}
			name, value, err := decodeLabelV1(msg)
			if err != nil {
				return fmt.Errorf("label %d: %w", labels, err)
			}
			dst.Labels = append(dst.Labels, samples.Label{Name: name, Value: value})
			if keyStart < 0 {
				keyStart = tagStart
			}
			keyEnd = next
			labels++
			i = next
		case 2: // samples
			if wt != wtLen {
				return fmt.Errorf("sample %d: %w", nsamples, wrongWireType("sample", wt, wtLen))
			}
			msg, next, err := readBytes(b, i, "message")
			if err != nil {
				return fmt.Errorf("sample %d: %w", nsamples, err)
			}
			t, v, err := decodeSample(msg)
			if err != nil {
				return fmt.Errorf("sample %d: %w", nsamples, err)
			}
			dst.Samples = append(dst.Samples, samples.Sample{T: t, V: v})
			nsamples++
			i = next
		case 3: // exemplars
			if wt != wtLen {
				return wrongWireType("exemplar", wt, wtLen)
			}
			msg, next, err := readBytes(b, i, "message")
			if err != nil {
				return fmt.Errorf("exemplar %d: %w", nexemplars, err)
			}
			start := len(dst.ExemplarLabels)
			t, v, err := decodeExemplar(msg, func(wt int, b []byte, i int) (int, error) {
				if wt != wtLen {
					return 0, wrongWireType("label", wt, wtLen)
				}
				lm, next, err := readBytes(b, i, "message")
				if err != nil {
					return 0, err
				}
				name, value, err := decodeLabelV1(lm)
				if err != nil {
					return 0, err
				}
				dst.ExemplarLabels = append(dst.ExemplarLabels, samples.Label{Name: name, Value: value})
				return next, nil
			})
			if err != nil {
				return fmt.Errorf("exemplar %d: %w", nexemplars, err)
			}
			addExemplar(dst, start, t, v)
			nexemplars++
			i = next
		case 4: // histograms
			if i, err = readHistogramField(b, i, wt, nhist, dst); err != nil {
				return err
			}
			nhist++
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return err
			}
		}
	}
	if nsamples == 0 && nhist == 0 && nexemplars == 0 {
		// A series with nothing to store.
		dst.Labels = dst.Labels[:s.LabelsStart]
		dst.Series = dst.Series[:len(dst.Series)-1]
		return nil
	}
	s.LabelsEnd = int32(len(dst.Labels))
	s.SamplesEnd = int32(len(dst.Samples))
	if keyStart >= 0 {
		s.Key = b[keyStart:keyEnd:keyEnd]
	}
	st.Samples += nsamples
	st.Histograms += nhist
	st.Exemplars += nexemplars
	return nil
}

// decodeLabelV1 decodes a prometheus.Label.
func decodeLabelV1(b []byte) (name, value string, err error) {
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return "", "", err
		}
		i = next
		switch field {
		case 1, 2:
			if wt != wtLen {
				if field == 1 {
					return "", "", wrongWireType("name", wt, wtLen)
				}
				return "", "", wrongWireType("value", wt, wtLen)
			}
			s, next, err := readString(b, i)
			if err != nil {
				if field == 1 {
					return "", "", fmt.Errorf("name: %w", err)
				}
				return "", "", fmt.Errorf("value: %w", err)
			}
			if field == 1 {
				name = s
			} else {
				value = s
			}
			i = next
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return "", "", err
			}
		}
	}
	return name, value, nil
}

// decodeSample decodes a Sample message, which both versions share (2.0 adds
// field 3, start_timestamp, skipped here).
func decodeSample(b []byte) (t int64, v float64, err error) {
	// Fast path: what every sender writes, value then timestamp.
	if len(b) >= 11 && len(b) <= 19 && b[0] == 0x09 && b[9] == 0x10 {
		var x uint64
		var shift uint
		j := 10
		for ; j < len(b); j++ {
			c := b[j]
			x |= uint64(c&0x7f) << shift
			shift += 7
			if c < 0x80 {
				break
			}
		}
		if j == len(b)-1 { // at most 9 varint bytes: no overflow
			return int64(x), math.Float64frombits(binary.LittleEndian.Uint64(b[1:9])), nil
		}
	}
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return 0, 0, err
		}
		i = next
		switch field {
		case 1:
			if wt != wtFixed64 {
				return 0, 0, wrongWireType("value", wt, wtFixed64)
			}
			u, next, err := readFixed64(b, i)
			if err != nil {
				return 0, 0, fmt.Errorf("value: %w", err)
			}
			v = math.Float64frombits(u)
			i = next
		case 2:
			if wt != wtVarint {
				return 0, 0, wrongWireType("timestamp", wt, wtVarint)
			}
			x, next, err := readVarint(b, i)
			if err != nil {
				return 0, 0, fmt.Errorf("timestamp: %w", err)
			}
			t = int64(x)
			i = next
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return 0, 0, err
			}
		}
	}
	return t, v, nil
}

// decodeMetadataV1 decodes a prometheus.MetricMetadata.
func decodeMetadataV1(b []byte, dst *samples.Batch) error {
	var md samples.Metadata
	typ := uint64(0)
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 1:
			if wt != wtVarint {
				return wrongWireType("type", wt, wtVarint)
			}
			typ, i, err = readVarint(b, i)
			if err != nil {
				return fmt.Errorf("type: %w", err)
			}
		case 2, 4, 5:
			names := [...]string{2: "metric_family_name", 4: "help", 5: "unit"}
			if wt != wtLen {
				return wrongWireType(names[field], wt, wtLen)
			}
			s, next, err := readString(b, i)
			if err != nil {
				return fmt.Errorf("%s: %w", names[field], err)
			}
			switch field {
			case 2:
				md.Name = s
			case 4:
				md.Help = s
			case 5:
				md.Unit = s
			}
			i = next
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return err
			}
		}
	}
	md.Type = metricTypeName(typ)
	dst.Metadata = append(dst.Metadata, md)
	return nil
}

// fastLabel decodes b[i:end] as a Label message of the form name (field 1)
// then value (field 2), each under 128 bytes. ok is false when the message
// has any other shape (including end beyond b); the caller then takes the
// general path, which also produces the right error.
func fastLabel(b []byte, i, end int) (name, value string, ok bool) {
	if end > len(b) || end-i < 4 || b[i] != 0x0a {
		return "", "", false
	}
	nl := int(b[i+1])
	j := i + 2 + nl
	if nl >= 0x80 || j+2 > end || b[j] != 0x12 {
		return "", "", false
	}
	vl := int(b[j+1])
	if vl >= 0x80 || j+2+vl != end {
		return "", "", false
	}
	name = unsafe.String(&b[i+2], nl)
	if vl > 0 {
		value = unsafe.String(&b[j+2], vl)
	}
	return name, value, true
}
