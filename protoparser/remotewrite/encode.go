package remotewrite

import (
	"encoding/binary"
	"sync"

	"github.com/telltale-dev/telltale/samples"
)

// AppendV1 appends b encoded as a prometheus.WriteRequest (remote write 1.0,
// protobuf, not snappy-compressed) to dst and returns the extended buffer.
// Metadata goes into WriteRequest.metadata.
func AppendV1(dst []byte, b *samples.Batch) []byte {
	var extra, tmp []byte // exemplar and histogram fields of a series
	for si := range b.Series {
		s := &b.Series[si]
		labels := b.SeriesLabels(s)
		smpls := b.SeriesSamples(s)
		extra = extra[:0]
		for _, e := range b.SeriesExemplars(s) {
			tmp = tmp[:0]
			for _, l := range b.ExemplarLabelsOf(&e) {
				tmp = append(tmp, 0x0a)
				tmp = binary.AppendUvarint(tmp, uint64(stringFieldLen(l.Name)+stringFieldLen(l.Value)))
				tmp = appendStringField(tmp, 0x0a, l.Name)
				tmp = appendStringField(tmp, 0x12, l.Value)
			}
			tmp = appendExemplarTail(tmp, e.T, e.V)
			extra = append(extra, 0x1a)
			extra = binary.AppendUvarint(extra, uint64(len(tmp)))
			extra = append(extra, tmp...)
		}
		for _, h := range b.SeriesHistograms(s) {
			extra, tmp = appendHistogramField(extra, tmp, 0x22, &h)
		}
		n := len(extra)
		for _, l := range labels {
			m := stringFieldLen(l.Name) + stringFieldLen(l.Value)
			n += 1 + varintLen(uint64(m)) + m
		}
		for _, x := range smpls {
			m := sampleLen(x.T, x.V)
			n += 1 + varintLen(uint64(m)) + m
		}
		dst = append(dst, 0x0a)
		dst = binary.AppendUvarint(dst, uint64(n))
		for _, l := range labels {
			dst = append(dst, 0x0a)
			dst = binary.AppendUvarint(dst, uint64(stringFieldLen(l.Name)+stringFieldLen(l.Value)))
			dst = appendStringField(dst, 0x0a, l.Name)
			dst = appendStringField(dst, 0x12, l.Value)
		}
		for _, x := range smpls {
			dst = appendSample(dst, x.T, x.V)
		}
		dst = append(dst, extra...)
	}
	for _, md := range b.Metadata {
		typ := metricTypeEnum(md.Type)
		n := stringFieldLen(md.Name) + stringFieldLen(md.Help) + stringFieldLen(md.Unit)
		if typ != 0 {
			n += 1 + varintLen(typ)
		}
		dst = append(dst, 0x1a)
		dst = binary.AppendUvarint(dst, uint64(n))
		if typ != 0 {
			dst = append(dst, 0x08)
			dst = binary.AppendUvarint(dst, typ)
		}
		dst = appendStringField(dst, 0x12, md.Name)
		dst = appendStringField(dst, 0x22, md.Help)
		dst = appendStringField(dst, 0x2a, md.Unit)
	}
	return dst
}

// v2Encoder holds the scratch space of one AppendV2 call.
type v2Encoder struct {
	symbols []string
	index   map[string]uint32
	refs    []uint32 // per series: label refs, then type, help and unit refs
	exRefs  []uint32 // per exemplar of every series: its label refs
	mdIndex map[string]int
}

var v2EncoderPool = sync.Pool{New: func() any {
	return &v2Encoder{index: make(map[string]uint32), mdIndex: make(map[string]int)}
}}

func (e *v2Encoder) symbolize(s string) uint32 {
	if ref, ok := e.index[s]; ok {
		return ref
	}
	ref := uint32(len(e.symbols))
	e.symbols = append(e.symbols, s)
	e.index[s] = ref
	return ref
}

// metadataFor returns the metadata entry of the family series name belongs
// to: an exact name match, or the name without a family suffix.
func (e *v2Encoder) metadataFor(b *samples.Batch, name string) (samples.Metadata, bool) {
	if name == "" {
		return samples.Metadata{}, false
	}
	if i, ok := e.mdIndex[name]; ok {
		return b.Metadata[i], true
	}
	for _, suf := range familySuffixes {
		if len(name) > len(suf) && name[len(name)-len(suf):] == suf {
			if i, ok := e.mdIndex[name[:len(name)-len(suf)]]; ok {
				return b.Metadata[i], true
			}
		}
	}
	return samples.Metadata{}, false
}

// AppendV2 appends b encoded as an io.prometheus.write.v2.Request (remote
// write 2.0, protobuf, not snappy-compressed) to dst and returns the
// extended buffer. Each series gets the metadata entry of b whose Name is
// the series' __name__ or its metric family name (__name__ without a
// _bucket, _sum, _count, _total ... suffix).
func AppendV2(dst []byte, b *samples.Batch) []byte {
	e := v2EncoderPool.Get().(*v2Encoder)
	defer func() {
		clear(e.symbols)
		e.symbols = e.symbols[:0]
		e.refs = e.refs[:0]
		e.exRefs = e.exRefs[:0]
		clear(e.index)
		clear(e.mdIndex)
		v2EncoderPool.Put(e)
	}()
	for i, md := range b.Metadata {
		if _, ok := e.mdIndex[md.Name]; !ok {
			e.mdIndex[md.Name] = i
		}
	}
	e.symbolize("") // the spec requires the empty string first
	for si := range b.Series {
		s := &b.Series[si]
		for _, l := range b.SeriesLabels(s) {
			e.refs = append(e.refs, e.symbolize(l.Name), e.symbolize(l.Value))
		}
		md, ok := e.metadataFor(b, b.Name(s))
		var typ, help, unit uint32
		if ok {
			typ = uint32(metricTypeEnum(md.Type))
			help = e.symbolize(md.Help)
			unit = e.symbolize(md.Unit)
		}
		e.refs = append(e.refs, typ, help, unit)
		for _, x := range b.SeriesExemplars(s) {
			for _, l := range b.ExemplarLabelsOf(&x) {
				e.exRefs = append(e.exRefs, e.symbolize(l.Name), e.symbolize(l.Value))
			}
		}
	}
	var extra, tmp []byte // histogram and exemplar fields of a series
	exRefs := e.exRefs
	for _, s := range e.symbols {
		dst = append(dst, 0x22)
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	refs := e.refs
	for si := range b.Series {
		s := &b.Series[si]
		nl := int(s.LabelsEnd - s.LabelsStart)
		lrefs := refs[:2*nl]
		typ, help, unit := uint64(refs[2*nl]), uint64(refs[2*nl+1]), uint64(refs[2*nl+2])
		refs = refs[2*nl+3:]

		packed := 0
		for _, r := range lrefs {
			packed += varintLen(uint64(r))
		}
		mdLen := 0
		if typ != 0 {
			mdLen += 1 + varintLen(typ)
		}
		if help != 0 {
			mdLen += 1 + varintLen(help)
		}
		if unit != 0 {
			mdLen += 1 + varintLen(unit)
		}
		extra = extra[:0]
		for _, h := range b.SeriesHistograms(s) {
			extra, tmp = appendHistogramField(extra, tmp, 0x1a, &h)
		}
		for _, x := range b.SeriesExemplars(s) {
			nl := int(x.LabelsEnd - x.LabelsStart)
			tmp = appendPackedRefs(tmp[:0], exRefs[:2*nl])
			exRefs = exRefs[2*nl:]
			tmp = appendExemplarTail(tmp, x.T, x.V)
			extra = append(extra, 0x22)
			extra = binary.AppendUvarint(extra, uint64(len(tmp)))
			extra = append(extra, tmp...)
		}
		n := 1 + varintLen(uint64(mdLen)) + mdLen + len(extra)
		if packed > 0 {
			n += 1 + varintLen(uint64(packed)) + packed
		}
		for _, x := range b.SeriesSamples(s) {
			m := sampleLen(x.T, x.V)
			n += 1 + varintLen(uint64(m)) + m
		}

		dst = append(dst, 0x2a)
		dst = binary.AppendUvarint(dst, uint64(n))
		if packed > 0 {
			dst = append(dst, 0x0a)
			dst = binary.AppendUvarint(dst, uint64(packed))
			for _, r := range lrefs {
				dst = binary.AppendUvarint(dst, uint64(r))
			}
		}
		for _, x := range b.SeriesSamples(s) {
			dst = appendSample(dst, x.T, x.V)
		}
		dst = append(dst, extra...)
		dst = append(dst, 0x2a)
		dst = binary.AppendUvarint(dst, uint64(mdLen))
		if typ != 0 {
			dst = append(dst, 0x08)
			dst = binary.AppendUvarint(dst, typ)
		}
		if help != 0 {
			dst = append(dst, 0x18)
			dst = binary.AppendUvarint(dst, help)
		}
		if unit != 0 {
			dst = append(dst, 0x20)
			dst = binary.AppendUvarint(dst, unit)
		}
	}
	return dst
}

// appendPackedRefs appends refs as a packed field 1 (labels_refs), or
// nothing when there are none.
func appendPackedRefs(dst []byte, refs []uint32) []byte {
	if len(refs) == 0 {
		return dst
	}
	n := 0
	for _, r := range refs {
		n += varintLen(uint64(r))
	}
	dst = append(dst, 0x0a)
	dst = binary.AppendUvarint(dst, uint64(n))
	for _, r := range refs {
		dst = binary.AppendUvarint(dst, uint64(r))
	}
	return dst
}
