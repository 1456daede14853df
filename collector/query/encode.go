package query

import (
	"sync"
	"unsafe"

	jsoniter "github.com/json-iterator/go"
	"github.com/modern-go/reflect2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/jsonutil"

	// Its init registers Prometheus' JSON encoders, which this file's
	// init wraps: it must run first.
	_ "github.com/prometheus/prometheus/web/api/v1"
)

// The JSON of cached steps. A dashboard refresh whose steps come from the
// result cache spent a fifth of the collector's CPU writing those steps'
// points as JSON again, each float through strconv's shortest formatting
// (profile of the bench's refresh scenario: 0.62 of 3.37 CPU-s in
// marshalFPointJSON). A cached chunk now keeps its points as Prometheus'
// API writes them; merge notes which points of the answer came from which
// chunk, and the matrix encoder copies those bytes instead of formatting
// the floats again. The bytes are what Prometheus writes for the same
// points (jsonutil's MarshalTimestamp and MarshalFloat, as
// marshalFPointJSON calls them), and everything else in the answer is
// written by Prometheus' own encoders (TestMatrixEncoderMatchesPrometheus).

// pointsEnc is a series' points as the API writes them, joined by commas:
// point j is b[offs[j]:offs[j+1]-1].
type pointsEnc struct {
	b    []byte
	offs []int32 // len(points)+1; the last is len(b)+1
}

// span returns the bytes of points [a, b).
func (e *pointsEnc) span(a, b int) []byte { return e.b[e.offs[a] : e.offs[b]-1] }

// pointSeg says that points [at, at+n) of an answer's series are points
// [from, from+n) of enc.
type pointSeg struct {
	at, from, n int
	enc         *pointsEnc
}

// encodedSeries is what the encoder needs to use a series' segments: the
// points they were noted for (the encoder checks that the series it
// writes still has exactly these) and the segments, in point order.
type encodedSeries struct {
	floats *promql.FPoint
	n      int
	segs   []pointSeg
}

// encStream writes points for encodePoints.
var encStreams = sync.Pool{New: func() any {
	return jsoniter.NewStream(jsoniter.ConfigCompatibleWithStandardLibrary, nil, 4096)
}}

// writePoint writes p as Prometheus' marshalFPointJSON does.
func writePoint(s *jsoniter.Stream, p promql.FPoint) {
	s.WriteArrayStart()
	jsonutil.MarshalTimestamp(p.T, s)
	s.WriteMore()
	jsonutil.MarshalFloat(p.F, s)
	s.WriteArrayEnd()
}

// encodePoints encodes ps, copying the bytes of the points segs cover
// (segs in point order, within ps) and writing the others.
func encodePoints(ps []promql.FPoint, segs []pointSeg) *pointsEnc {
	s := encStreams.Get().(*jsoniter.Stream)
	defer encStreams.Put(s)
	s.Reset(nil)
	offs := make([]int32, 0, len(ps)+1)
	for j := 0; j < len(ps); {
		if j > 0 {
			s.WriteMore()
		}
		if len(segs) > 0 && segs[0].at == j {
			g := segs[0]
			segs = segs[1:]
			base := int32(len(s.Buffer())) - g.enc.offs[g.from]
			for k := g.from; k < g.from+g.n; k++ {
				offs = append(offs, g.enc.offs[k]+base)
			}
			_, _ = s.Write(g.enc.span(g.from, g.from+g.n))
			j += g.n
			continue
		}
		offs = append(offs, int32(len(s.Buffer())))
		writePoint(s, ps[j])
		j++
	}
	b := append([]byte(nil), s.Buffer()...)
	offs = append(offs, int32(len(b))+1)
	return &pointsEnc{b: b, offs: offs}
}

// chunkEncoding encodes the float points of a chunk's series; nil for a
// series with histograms (the encoder writes those itself). A chunk over
// 2 GiB of JSON is not encoded (offsets are int32).
func chunkEncoding(series []promql.Series) []*pointsEnc {
	out := make([]*pointsEnc, len(series))
	for i, s := range series {
		if len(s.Histograms) == 0 && len(s.Floats) > 0 && len(s.Floats) < 1<<26 {
			out[i] = encodePoints(s.Floats, nil)
		}
	}
	return out
}

// encSize is the memory the encodings hold.
func encSize(encs []*pointsEnc) int64 {
	var n int64
	for _, e := range encs {
		if e != nil {
			n += int64(cap(e.b)) + 4*int64(cap(e.offs)) + 64
		}
	}
	return n
}

// encodedAnswers holds, for the answers being written, what merge noted:
// keyed by the answer matrix's first series, from Exec to Close. An answer
// nobody closes stays until more than maxEncodedAnswers are held, then all
// go (the encoder writes their points afresh). Nothing else may hold these
// keys: they keep the answers' memory alive.
var encodedAnswers = struct {
	sync.Mutex
	m map[*promql.Series][]encodedSeries
}{m: map[*promql.Series][]encodedSeries{}}

// maxEncodedAnswers is far above the answers written at once (the API's
// -query.max-concurrency).
const maxEncodedAnswers = 256

func noteEncoded(m promql.Matrix, es []encodedSeries) {
	if len(m) == 0 {
		return
	}
	encodedAnswers.Lock()
	defer encodedAnswers.Unlock()
	if len(encodedAnswers.m) >= maxEncodedAnswers {
		clear(encodedAnswers.m)
	}
	encodedAnswers.m[unsafe.SliceData(m)] = es
}

func forgetEncoded(m promql.Matrix) {
	if len(m) == 0 {
		return
	}
	encodedAnswers.Lock()
	delete(encodedAnswers.m, unsafe.SliceData(m))
	encodedAnswers.Unlock()
}

func lookupEncoded(m promql.Matrix) []encodedSeries {
	if len(m) == 0 {
		return nil
	}
	encodedAnswers.Lock()
	defer encodedAnswers.Unlock()
	return encodedAnswers.m[unsafe.SliceData(m)]
}

// Prometheus' encoders, as its init registered them, from a config of
// their own (the shared config, asked after the init below, would return
// the wrapping encoder).
var promMatrixEnc, promSeriesEnc, promLabelsEnc jsoniter.ValEncoder

func init() {
	own := jsoniter.Config{EscapeHTML: true, SortMapKeys: true, ValidateJsonRawMessage: true}.Froze()
	promMatrixEnc = own.EncoderOf(reflect2.TypeOf(promql.Matrix{}))
	promSeriesEnc = own.EncoderOf(reflect2.TypeOf(promql.Series{}))
	promLabelsEnc = own.EncoderOf(reflect2.TypeOf(labels.Labels{}))
	jsoniter.RegisterTypeEncoderFunc("promql.Matrix", encodeMatrix, func(unsafe.Pointer) bool { return false })
}

// encodeMatrix writes a matrix as Prometheus' unsafeMarshalMatrixJSON
// does, copying the bytes of cached points merge noted.
func encodeMatrix(ptr unsafe.Pointer, s *jsoniter.Stream) {
	m := *(*promql.Matrix)(ptr)
	es := lookupEncoded(m)
	if es == nil {
		promMatrixEnc.Encode(ptr, s)
		return
	}
	s.WriteArrayStart()
	for i := range m {
		if i >= len(es) || !writeEncodedSeries(s, &m[i], es[i]) {
			promSeriesEnc.Encode(unsafe.Pointer(&m[i]), s)
		}
		if i != len(m)-1 {
			s.WriteMore()
		}
	}
	s.WriteArrayEnd()
}

// writeEncodedSeries writes ser as marshalSeriesJSON does, with the
// points of e's segments copied; false (nothing written) where e does not
// describe ser's points as they are now.
func writeEncodedSeries(s *jsoniter.Stream, ser *promql.Series, e encodedSeries) bool {
	if len(e.segs) == 0 || len(ser.Histograms) > 0 || len(ser.Floats) != e.n || unsafe.SliceData(ser.Floats) != e.floats {
		return false
	}
	s.WriteObjectStart()
	s.WriteObjectField(`metric`)
	promLabelsEnc.Encode(unsafe.Pointer(&ser.Metric), s)
	if len(ser.Floats) > 0 {
		s.WriteMore()
		s.WriteObjectField(`values`)
		s.WriteArrayStart()
		segs := e.segs
		for j := 0; j < len(ser.Floats); {
			if j > 0 {
				s.WriteMore()
			}
			if len(segs) > 0 && segs[0].at == j {
				g := segs[0]
				segs = segs[1:]
				_, _ = s.Write(g.enc.span(g.from, g.from+g.n))
				j += g.n
				continue
			}
			writePoint(s, ser.Floats[j])
			j++
		}
		s.WriteArrayEnd()
	}
	s.WriteObjectEnd()
	return true
}
