package remotewrite

import (
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/telltale-dev/telltale/samples"
)

// v2Decoder holds the scratch space of one DecodeV2 call.
type v2Decoder struct {
	symbols []string
	// encoded holds each symbol with its varint length prefix, as the
	// request has it: series keys are built from these.
	encoded []string
	// refs holds the label refs of the series being decoded, exRefs those
	// of its exemplar being decoded.
	refs, exRefs []uint32
	// lastMD is the index in dst.Metadata of the entry this call appended
	// last, or -1.
	lastMD int
}

var v2DecoderPool = sync.Pool{New: func() any { return new(v2Decoder) }}

// DecodeV2 appends the series, float samples and per-series metadata of
// data, a snappy-decoded io.prometheus.write.v2.Request (remote write 2.0),
// to dst. A series' metadata becomes a samples.Metadata named after the
// series' metric family (its __name__ without the _bucket, _sum, _count ...
// suffix for histograms and summaries); consecutive duplicates are dropped.
// On error dst may hold part of the request; the caller should Reset it.
func DecodeV2(data []byte, dst *samples.Batch) (Stats, error) {
	d := v2DecoderPool.Get().(*v2Decoder)
	st, err := d.decode(data, dst)
	clear(d.symbols) // drop references into data
	d.symbols = d.symbols[:0]
	clear(d.encoded)
	d.encoded = d.encoded[:0]
	v2DecoderPool.Put(d)
	return st, err
}

func (d *v2Decoder) decode(data []byte, dst *samples.Batch) (Stats, error) {
	var st Stats
	d.lastMD = -1
	series := 0
	// Pass 1: the symbol table, which the sender may write after the series.
	for i := 0; i < len(data); {
		field, wt, next, err := readTag(data, i)
		if err != nil {
			return st, fmt.Errorf("remote write 2.0: %w", err)
		}
		i = next
		switch field {
		case 4:
			if wt != wtLen {
				return st, fmt.Errorf("remote write 2.0: %w", wrongWireType(fmt.Sprintf("symbol %d", len(d.symbols)), wt, wtLen))
			}
			s, next, err := readString(data, i)
			if err != nil {
				return st, fmt.Errorf("remote write 2.0: symbol %d: %w", len(d.symbols), err)
			}
			d.symbols = append(d.symbols, s)
			d.encoded = append(d.encoded, unsafe.String(&data[i], next-i))
			i = next
		case 5:
			if wt != wtLen {
				return st, fmt.Errorf("remote write 2.0: %w", wrongWireType(fmt.Sprintf("timeseries %d", series), wt, wtLen))
			}
			_, next, err := readBytes(data, i, "message")
			if err != nil {
				return st, fmt.Errorf("remote write 2.0: timeseries %d: %w", series, err)
			}
			series++
			i = next
		case 1, 2, 3:
			return st, fmt.Errorf("remote write 2.0: unexpected field %d, reserved in 2.0 because it is a remote write 1.0 field: "+
				"a 1.0 sender must set Content-Type: application/x-protobuf (or proto=prometheus.WriteRequest)", field)
		default:
			i, err = skipField(data, i, field, wt)
			if err != nil {
				return st, fmt.Errorf("remote write 2.0: %w", err)
			}
		}
	}
	// Pass 2: the series. Framing was checked by pass 1.
	series = 0
	for i := 0; i < len(data); {
		field, wt, next, _ := readTag(data, i)
		i = next
		if field != 5 {
			i, _ = skipField(data, i, field, wt)
			continue
		}
		msg, next, _ := readBytes(data, i, "message")
		if err := d.decodeSeries(msg, dst, &st); err != nil {
			return st, fmt.Errorf("remote write 2.0: timeseries %d: %w", series, err)
		}
		series++
		i = next
	}
	return st, nil
}

// decodeSeries decodes an io.prometheus.write.v2.TimeSeries.
func (d *v2Decoder) decodeSeries(b []byte, dst *samples.Batch, st *Stats) error {
	dst.StartSeries(nil)
	s := &dst.Series[len(dst.Series)-1]
	d.refs = d.refs[:0]
	nsamples, nhist, nexemplars := 0, 0, 0
	var mdType, helpRef, unitRef uint64
	hasMD := false
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 1: // labels_refs, packed (or, as protobuf allows, not)
			d.refs, i, err = d.readRefs(b, i, wt, d.refs)
			if err != nil {
				return err
			}
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
		case 3: // histograms
			if i, err = readHistogramField(b, i, wt, nhist, dst); err != nil {
				return err
			}
			nhist++
		case 4: // exemplars
			if wt != wtLen {
				return wrongWireType("exemplar", wt, wtLen)
			}
			msg, next, err := readBytes(b, i, "message")
			if err != nil {
				return fmt.Errorf("exemplar %d: %w", nexemplars, err)
			}
			start := len(dst.ExemplarLabels)
			d.exRefs = d.exRefs[:0]
			t, v, err := decodeExemplar(msg, func(wt int, b []byte, i int) (int, error) {
				var next int
				var err error
				d.exRefs, next, err = d.readRefs(b, i, wt, d.exRefs)
				return next, err
			})
			if err != nil {
				return fmt.Errorf("exemplar %d: %w", nexemplars, err)
			}
			if len(d.exRefs)%2 != 0 {
				return fmt.Errorf("exemplar %d: odd number of label refs (%d): refs must come in name, value pairs", nexemplars, len(d.exRefs))
			}
			for j := 0; j+1 < len(d.exRefs); j += 2 {
				dst.ExemplarLabels = append(dst.ExemplarLabels, samples.Label{Name: d.symbols[d.exRefs[j]], Value: d.symbols[d.exRefs[j+1]]})
			}
			addExemplar(dst, start, t, v)
			nexemplars++
			i = next
		case 5: // metadata
			if wt != wtLen {
				return wrongWireType("metadata", wt, wtLen)
			}
			msg, next, err := readBytes(b, i, "message")
			if err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			mdType, helpRef, unitRef, err = d.decodeMetadata(msg, mdType, helpRef, unitRef)
			if err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			hasMD = true
			i = next
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return err
			}
		}
	}
	refs := d.refs
	if len(refs)%2 != 0 {
		return fmt.Errorf("odd number of label refs (%d): refs must come in name, value pairs", len(refs))
	}
	for j := 0; j+1 < len(refs); j += 2 {
		dst.Labels = append(dst.Labels, samples.Label{Name: d.symbols[refs[j]], Value: d.symbols[refs[j+1]]})
	}
	s.LabelsEnd = int32(len(dst.Labels))
	if hasMD && (mdType != 0 || helpRef != 0 || unitRef != 0) {
		d.addMetadata(dst, dst.Name(s), mdType, helpRef, unitRef)
	}
	if nsamples == 0 && nhist == 0 && nexemplars == 0 {
		// A series with nothing to store.
		dst.Labels = dst.Labels[:s.LabelsStart]
		dst.Series = dst.Series[:len(dst.Series)-1]
		return nil
	}
	s.SamplesEnd = int32(len(dst.Samples))
	s.Key = d.appendKey(dst)
	st.Samples += nsamples
	st.Histograms += nhist
	st.Exemplars += nexemplars
	return nil
}

// readRefs reads a repeated uint32 of symbol references, packed or (as
// protobuf allows) not, at b[i:] into refs, checking each is in range.
func (d *v2Decoder) readRefs(b []byte, i, wt int, refs []uint32) ([]uint32, int, error) {
	nsym := uint64(len(d.symbols))
	check := func(ref uint64) error {
		if ref >= nsym {
			return fmt.Errorf("label ref %d is %d, out of range: the request has %d symbols", len(refs), ref, nsym)
		}
		return nil
	}
	switch wt {
	case wtLen:
		packed, next, err := readBytes(b, i, "packed labels_refs")
		if err != nil {
			return refs, 0, err
		}
		for j := 0; j < len(packed); {
			var ref uint64
			if packed[j] < 0x80 {
				ref = uint64(packed[j])
				j++
			} else if ref, j, err = readVarint(packed, j); err != nil {
				return refs, 0, fmt.Errorf("label ref %d: %w", len(refs), err)
			}
			if err := check(ref); err != nil {
				return refs, 0, err
			}
			refs = append(refs, uint32(ref))
		}
		return refs, next, nil
	case wtVarint:
		ref, next, err := readVarint(b, i)
		if err != nil {
			return refs, 0, fmt.Errorf("label ref %d: %w", len(refs), err)
		}
		if err := check(ref); err != nil {
			return refs, 0, err
		}
		return append(refs, uint32(ref)), next, nil
	}
	return refs, 0, wrongWireType("labels_refs", wt, wtLen)
}

// appendKey appends the key of the series whose label refs are d.refs to
// dst.KeyBuf and returns it: 0x02, then each label name and value with its
// varint length prefix. The prefixes are copied from the request as they are
// (a sender may write a non-minimal varint): that only makes equal label
// sets miss the cache, never makes different ones share a key.
func (d *v2Decoder) appendKey(dst *samples.Batch) []byte {
	n := 1
	for _, r := range d.refs {
		n += len(d.encoded[r])
	}
	start := len(dst.KeyBuf)
	kb := slices.Grow(dst.KeyBuf, n)[:start+n]
	k := kb[start:]
	k[0] = 2
	j := 1
	for _, r := range d.refs {
		j += copy(k[j:], d.encoded[r])
	}
	dst.KeyBuf = kb
	return k[:n:n]
}

// decodeMetadata decodes an io.prometheus.write.v2.Metadata; a repeated
// message field merges, so it starts from the values seen so far.
func (d *v2Decoder) decodeMetadata(b []byte, typ, help, unit uint64) (uint64, uint64, uint64, error) {
	for i := 0; i < len(b); {
		field, wt, next, err := readTag(b, i)
		if err != nil {
			return 0, 0, 0, err
		}
		i = next
		switch field {
		case 1, 3, 4:
			names := [...]string{1: "type", 3: "help_ref", 4: "unit_ref"}
			if wt != wtVarint {
				return 0, 0, 0, wrongWireType(names[field], wt, wtVarint)
			}
			x, next, err := readVarint(b, i)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("%s: %w", names[field], err)
			}
			if field != 1 && x >= uint64(len(d.symbols)) {
				return 0, 0, 0, fmt.Errorf("%s is %d, out of range: the request has %d symbols", names[field], x, len(d.symbols))
			}
			switch field {
			case 1:
				typ = x
			case 3:
				help = x
			case 4:
				unit = x
			}
			i = next
		default:
			i, err = skipField(b, i, field, wt)
			if err != nil {
				return 0, 0, 0, err
			}
		}
	}
	return typ, help, unit, nil
}

func (d *v2Decoder) addMetadata(dst *samples.Batch, name string, typ, help, unit uint64) {
	md := samples.Metadata{Type: metricTypeName(typ), Help: d.symbol(help), Unit: d.symbol(unit)}
	md.Name = familyName(name, md.Type)
	if d.lastMD >= 0 && dst.Metadata[d.lastMD] == md {
		return
	}
	d.lastMD = len(dst.Metadata)
	dst.Metadata = append(dst.Metadata, md)
}

// symbol returns symbol ref, checked by the caller, or "" for ref 0 of an
// empty table.
func (d *v2Decoder) symbol(ref uint64) string {
	if ref < uint64(len(d.symbols)) {
		return d.symbols[ref]
	}
	return ""
}
