package remotewrite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/telltale-dev/telltale/protoparser/internal/parsertest"
	"github.com/telltale-dev/telltale/samples"
)

var update = flag.Bool("update", false, "rewrite the testdata request files")

// series is a test's view of one series of a Batch.
type series struct {
	labels  []samples.Label
	samples []samples.Sample
}

func ls(kv ...string) []samples.Label {
	var out []samples.Label
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, samples.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func toBatch(ss []series, md []samples.Metadata) *samples.Batch {
	b := &samples.Batch{}
	for _, s := range ss {
		b.StartSeries(nil)
		for _, l := range s.labels {
			b.AddLabel(l.Name, l.Value)
		}
		for _, x := range s.samples {
			b.AddSample(x.T, x.V)
		}
	}
	b.Metadata = append(b.Metadata, md...)
	return b
}

func fromBatch(b *samples.Batch) []series {
	var out []series
	for i := range b.Series {
		s := &b.Series[i]
		out = append(out, series{
			labels:  append([]samples.Label(nil), b.SeriesLabels(s)...),
			samples: append([]samples.Sample(nil), b.SeriesSamples(s)...),
		})
	}
	return out
}

// extrasOf renders the histograms and exemplars of every series of b, for
// comparisons (NaN renders as NaN, so equal renderings compare NaNs equal).
func extrasOf(b *samples.Batch) string {
	var sb strings.Builder
	for i := range b.Series {
		s := &b.Series[i]
		fmt.Fprintf(&sb, "series %d:", i)
		for _, h := range b.SeriesHistograms(s) {
			fmt.Fprintf(&sb, " %+v", h)
		}
		for _, e := range b.SeriesExemplars(s) {
			fmt.Fprintf(&sb, " ex{%d %v %v}", e.T, e.V, b.ExemplarLabelsOf(&e))
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

func sameFloat(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || math.IsNaN(a) && math.IsNaN(b)
}

// diffSeries returns "" when got and want hold the same series, else what
// differs. Float values compare bit for bit (any NaN equals any NaN).
func diffSeries(got, want []series) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d series; want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if fmt.Sprint(g.labels) != fmt.Sprint(w.labels) || len(g.labels) != len(w.labels) {
			return fmt.Sprintf("series %d: got labels %q; want %q", i, g.labels, w.labels)
		}
		if len(g.samples) != len(w.samples) {
			return fmt.Sprintf("series %d: got %d samples; want %d", i, len(g.samples), len(w.samples))
		}
		for j := range g.samples {
			if g.samples[j].T != w.samples[j].T || !sameFloat(g.samples[j].V, w.samples[j].V) {
				return fmt.Sprintf("series %d sample %d: got %v; want %v", i, j, g.samples[j], w.samples[j])
			}
		}
	}
	return ""
}

// testSeries covers empty values, unicode, special floats, zero values and
// timestamps (which proto3 omits on the wire) and several samples.
var testSeries = []series{
	{ls("__name__", "http_requests_total", "code", "200", "job", "api"), []samples.Sample{{T: 1700000000000, V: 12}, {T: 1700000015000, V: 15}}},
	{ls("__name__", "temp_celsius", "room", "küche ☃", "empty", ""), []samples.Sample{{T: 1, V: -0.5}}},
	{ls("__name__", "zero"), []samples.Sample{{T: 0, V: 0}}},
	{ls("__name__", "special", "kind", "nan"), []samples.Sample{{T: -1000, V: math.NaN()}, {T: 2, V: math.Inf(1)}, {T: 3, V: math.Inf(-1)}}},
	{ls("__name__", "stale"), []samples.Sample{{T: 5, V: math.Float64frombits(0x7ff0000000000002)}}},
	{ls("__name__", "req_duration_seconds_bucket", "le", "0.1"), []samples.Sample{{T: 7, V: 3}}},
	{ls("__name__", "req_duration_seconds_sum"), []samples.Sample{{T: 7, V: 0.25}}},
	{ls("__name__", "req_duration_seconds_count"), []samples.Sample{{T: 7, V: 3}}},
}

var testMetadata = []samples.Metadata{
	{Name: "http_requests_total", Type: "counter", Help: "Requests served.", Unit: ""},
	{Name: "temp_celsius", Type: "gauge", Help: "Room temperature.", Unit: "celsius"},
	{Name: "req_duration_seconds", Type: "histogram", Help: "How long requests take.", Unit: "seconds"},
}

// TestRoundTrip encodes series and metadata with each version and decodes
// them back unchanged. In 2.0 metadata travels per series and folds back
// into one entry per family.
func TestRoundTrip(t *testing.T) {
	f := func(version string, encode func([]byte, *samples.Batch) []byte, decode func([]byte, *samples.Batch) (Stats, error)) {
		t.Helper()
		data := encode(nil, toBatch(testSeries, testMetadata))
		var b samples.Batch
		st, err := decode(data, &b)
		if err != nil {
			t.Fatalf("%s: decode: %v", version, err)
		}
		if d := diffSeries(fromBatch(&b), testSeries); d != "" {
			t.Fatalf("%s: %s", version, d)
		}
		if st.Samples != b.Len() || st.Histograms != 0 || st.Exemplars != 0 {
			t.Fatalf("%s: got stats %+v; want Samples=%d and nothing else", version, st, b.Len())
		}
		if fmt.Sprint(b.Metadata) != fmt.Sprint(testMetadata) {
			t.Fatalf("%s: got metadata %q; want %q", version, b.Metadata, testMetadata)
		}
	}
	f("1.0", AppendV1, DecodeV1)
	f("2.0", AppendV2, DecodeV2)
}

// TestDecodeAppends checks that decoding into a non-empty Batch appends.
func TestDecodeAppends(t *testing.T) {
	for _, v := range []struct {
		name   string
		encode func([]byte, *samples.Batch) []byte
		decode func([]byte, *samples.Batch) (Stats, error)
	}{{"v1", AppendV1, DecodeV1}, {"v2", AppendV2, DecodeV2}} {
		first := AppendV1(nil, toBatch(testSeries[:2], nil))
		second := v.encode(nil, toBatch(testSeries[2:], nil))
		var b samples.Batch
		if _, err := DecodeV1(first, &b); err != nil {
			t.Fatal(err)
		}
		if _, err := v.decode(second, &b); err != nil {
			t.Fatal(err)
		}
		if d := diffSeries(fromBatch(&b), testSeries); d != "" {
			t.Fatalf("%s: %s", v.name, d)
		}
	}
}

func TestSeriesKeys(t *testing.T) {
	a := ls("__name__", "up", "job", "node")
	b := ls("__name__", "up", "job", "api")
	one := []samples.Sample{{T: 1, V: 1}}
	batch := toBatch([]series{{a, one}, {b, one}, {a, one}}, nil)

	var got samples.Batch
	// v1: keys alias the request and start with 0x0a.
	data := AppendV1(nil, batch)
	if _, err := DecodeV1(data, &got); err != nil {
		t.Fatal(err)
	}
	k := got.Series
	if !bytes.Equal(k[0].Key, k[2].Key) || bytes.Equal(k[0].Key, k[1].Key) || k[0].Key[0] != 0x0a {
		t.Fatalf("v1 keys: got %q, %q, %q; want first and last equal, middle different, all starting with 0x0a", k[0].Key, k[1].Key, k[2].Key)
	}

	// v2: the same labels in two requests with different symbol tables
	// must give equal keys; different labels that happen to have the same
	// refs must not.
	got.Reset()
	if _, err := DecodeV2(AppendV2(nil, toBatch([]series{{a, one}}, nil)), &got); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeV2(AppendV2(nil, toBatch([]series{{b, one}, {a, one}}, nil)), &got); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeV2(AppendV2(nil, toBatch([]series{{b, one}}, nil)), &got); err != nil {
		t.Fatal(err)
	}
	k = got.Series
	if !bytes.Equal(k[0].Key, k[2].Key) || k[0].Key[0] != 2 {
		t.Fatalf("v2: got keys %q and %q for the same labels in two requests; want equal keys starting with 2", k[0].Key, k[2].Key)
	}
	// k[3] is b in a request whose symbol table equals the first one's
	// layout (refs 1..4), so ref-based keys would collide with k[0].
	if bytes.Equal(k[0].Key, k[3].Key) || bytes.Equal(k[0].Key, k[1].Key) {
		t.Fatalf("v2: got equal keys %q for different label sets", k[0].Key)
	}
}

func TestHistogramsAndExemplarsKept(t *testing.T) {
	// Built by hand: a series with a sample, a histogram and an exemplar,
	// and a histogram-only series, which is kept too.
	label := func(n, v string) []byte {
		return appendStringField(appendStringField(nil, 0x0a, n), 0x12, v)
	}
	msg := func(tag byte, body []byte) []byte {
		return append(binary.AppendUvarint([]byte{tag}, uint64(len(body))), body...)
	}
	var ts1, ts2 []byte
	ts1 = append(ts1, msg(0x0a, label("__name__", "a"))...)
	ts1 = appendSample(ts1, 10, 1.5)
	ts1 = append(ts1, msg(0x1a, []byte{0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f})...) // exemplar value 1
	ts1 = append(ts1, msg(0x22, []byte{0x08, 0x05})...)                         // histogram count_int 5
	ts2 = append(ts2, msg(0x0a, label("__name__", "h"))...)
	ts2 = append(ts2, msg(0x22, []byte{0x08, 0x07})...)
	ts2 = append(ts2, msg(0x22, []byte{0x08, 0x08})...)
	req := append(msg(0x0a, ts1), msg(0x0a, ts2)...)

	var b samples.Batch
	st, err := DecodeV1(req, &b)
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stats{Samples: 1, Histograms: 3, Exemplars: 1}) {
		t.Fatalf("got stats %+v; want 1 sample, 3 histograms, 1 exemplar", st)
	}
	want := []series{{ls("__name__", "a"), []samples.Sample{{T: 10, V: 1.5}}}, {ls("__name__", "h"), nil}}
	if d := diffSeries(fromBatch(&b), want); d != "" {
		t.Fatal(d)
	}
	var counts []uint64
	for i := range b.Series {
		for _, h := range b.SeriesHistograms(&b.Series[i]) {
			counts = append(counts, h.IntCount)
		}
	}
	if fmt.Sprint(counts) != "[5 7 8]" || len(b.SeriesExemplars(&b.Series[0])) != 1 || b.SeriesExemplars(&b.Series[0])[0].V != 1 {
		t.Fatalf("got histogram counts %v and exemplars %+v; want [5 7 8] and one exemplar of value 1", counts, b.Exemplars)
	}
}

func TestDecodeSnappy(t *testing.T) {
	raw := bytes.Repeat([]byte("remote write "), 100)
	comp := snappy.Encode(nil, raw)

	got, err := DecodeSnappy(nil, comp, len(raw))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("got %q, %v; want the original %d bytes", got, err, len(raw))
	}
	buf := make([]byte, 0, 4096)
	got, err = DecodeSnappy(buf, comp, 0)
	if err != nil || !bytes.Equal(got, raw) || &got[0] != &buf[:1][0] {
		t.Fatalf("got %d bytes, %v; want the original bytes decoded into dst's storage", len(got), err)
	}
	_, err = DecodeSnappy(nil, comp, len(raw)-1)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(len(raw))) {
		t.Fatalf("got %v; want ErrTooLarge naming the size %d", err, len(raw))
	}
	// A header claiming 4 GiB must be refused before any allocation.
	// So must headers of 4 GiB and more, which snappy itself calls corrupt
	// (issue 22): the answer names the declared size.
	for _, declared := range []uint64{1<<32 - 1, 1 << 32, 1<<64 - 1} {
		huge := binary.AppendUvarint(nil, declared)
		_, err := DecodeSnappy(nil, huge, 1<<20)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprint(declared)) {
			t.Fatalf("header declaring %d bytes: got %v; want ErrTooLarge naming the size", declared, err)
		}
	}
	for _, bad := range [][]byte{nil, {0xff}, append(binary.AppendUvarint(nil, 100), 0xff, 0xff)} {
		if _, err := DecodeSnappy(nil, bad, 1<<20); err == nil || errors.Is(err, ErrTooLarge) {
			t.Fatalf("DecodeSnappy(%x): got %v; want a snappy error", bad, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	label := func(n, v string) []byte {
		return appendStringField(appendStringField(nil, 0x0a, n), 0x12, v)
	}
	msg := func(tag byte, body ...[]byte) []byte {
		b := bytes.Join(body, nil)
		return append(binary.AppendUvarint([]byte{tag}, uint64(len(b))), b...)
	}
	f := func(decode func([]byte, *samples.Batch) (Stats, error), data []byte, want string) {
		t.Helper()
		var b samples.Batch
		_, err := decode(data, &b)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("decoding %x: got error %v; want one containing %q", data, err, want)
		}
	}
	goodSeries := msg(0x0a, msg(0x0a, label("__name__", "up")))

	// 1.0
	f(DecodeV1, []byte{0x0a}, "remote write 1.0: timeseries 0: truncated varint")
	f(DecodeV1, []byte{0x0a, 0x05, 0x0a}, "remote write 1.0: timeseries 0: truncated message (want 5 bytes, have 1)")
	f(DecodeV1, []byte{0x80}, "truncated varint at byte 0")
	f(DecodeV1, bytes.Repeat([]byte{0xff}, 11), "more than 64 bits")
	f(DecodeV1, []byte{0x00}, "invalid field number 0")
	f(DecodeV1, []byte{0x08, 0x01}, "timeseries: wrong wire type varint; want length-delimited")
	f(DecodeV1, []byte{0x7b}, "field 15: unsupported wire type 3 (start-group)")
	f(DecodeV1, []byte{0x61, 1, 2}, "field 12: truncated fixed64")
	f(DecodeV1, []byte{0x65, 1, 2}, "field 12: truncated fixed32")
	f(DecodeV1, append(goodSeries, msg(0x0a, msg(0x0a, []byte{0x0a, 40, 'x'}))...), "timeseries 1: label 0: name: truncated string (want 40 bytes, have 1)")
	f(DecodeV1, msg(0x0a, msg(0x0a, label("a", "b")), msg(0x0a, []byte{0x12, 40, 'x'})), "timeseries 0: label 1: value: truncated string (want 40 bytes, have 1)")
	f(DecodeV1, msg(0x0a, []byte{0x08, 1}), "timeseries 0: label 0: label: wrong wire type varint")
	f(DecodeV1, msg(0x0a, msg(0x0a, []byte{0x08, 1})), "label 0: name: wrong wire type varint")
	f(DecodeV1, msg(0x0a, msg(0x12, []byte{0x09, 1, 2, 3})), "sample 0: value: truncated fixed64 (want 8 bytes, have 3)")
	f(DecodeV1, msg(0x0a, msg(0x12, []byte{0x0d, 1, 2, 3, 4})), "sample 0: value: wrong wire type fixed32; want fixed64")
	f(DecodeV1, msg(0x0a, msg(0x12, []byte{0x12, 0})), "sample 0: timestamp: wrong wire type length-delimited; want varint")
	f(DecodeV1, msg(0x0a, msg(0x12, []byte{0x10, 0x80})), "sample 0: timestamp: truncated varint")
	f(DecodeV1, msg(0x0a, []byte{0x22, 9}), "histogram 0: truncated message")
	f(DecodeV1, msg(0x0a, []byte{0x1a, 9}), "exemplar 0: truncated message")
	f(DecodeV1, msg(0x1a, []byte{0x08}), "metadata 0: type: truncated varint")
	f(DecodeV1, msg(0x1a, []byte{0x12, 1}), "metadata 0: metric_family_name: truncated string")
	f(DecodeV1, msg(0x1a, []byte{0x20, 1}), "metadata 0: help: wrong wire type varint")
	f(DecodeV1, AppendV2(nil, toBatch(testSeries, nil)), "remote write 2.0 field")

	// 2.0
	sym := func(s string) []byte { return msg(0x22, []byte(s)) }
	syms := bytes.Join([][]byte{sym(""), sym("__name__"), sym("up")}, nil)
	f(DecodeV2, []byte{0x22, 3, 'a'}, "remote write 2.0: symbol 0: truncated string (want 3 bytes, have 1)")
	f(DecodeV2, []byte{0x20, 1}, "symbol 0: wrong wire type varint")
	f(DecodeV2, []byte{0x2a, 3}, "remote write 2.0: timeseries 0: truncated message (want 3 bytes, have 0)")
	f(DecodeV2, []byte{0x28, 3}, "timeseries 0: wrong wire type varint")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x0a, 3, 1, 2, 3})...), "timeseries 0: label ref 2 is 3, out of range: the request has 3 symbols")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x0a, 1, 1})...), "timeseries 0: odd number of label refs (1)")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x0a, 1, 0x80})...), "timeseries 0: label ref 0: truncated varint")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x0a, 9, 1})...), "timeseries 0: truncated packed labels_refs (want 9 bytes, have 1)")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x0d, 1, 0, 0, 0})...), "timeseries 0: labels_refs: wrong wire type fixed32")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x08, 7})...), "timeseries 0: label ref 0 is 7, out of range")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x0a, 2, 1, 2}, msg(0x12, []byte{0x09}))...), "timeseries 0: sample 0: value: truncated fixed64")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x0a, 2, 1, 2}, msg(0x2a, []byte{0x18, 9}))...), "timeseries 0: metadata: help_ref is 9, out of range: the request has 3 symbols")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x0a, 2, 1, 2}, msg(0x2a, []byte{0x22, 0}))...), "timeseries 0: metadata: unit_ref: wrong wire type length-delimited; want varint")
	f(DecodeV2, append(syms, msg(0x2a, []byte{0x1a, 4})...), "timeseries 0: histogram 0: truncated message")
	f(DecodeV2, AppendV1(nil, toBatch(testSeries, nil)), "remote write 1.0 field")
}

// TestUnknownFieldsSkipped checks that fields a newer sender might add are
// skipped per protobuf rules, at every level.
func TestUnknownFieldsSkipped(t *testing.T) {
	unknown := []byte{0x78, 0x05, 0x81, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x85, 0x01, 1, 2, 3, 4, 0x82, 0x01, 2, 'h', 'i'} // fields 15 and 16-ish of every wire type
	label := append(appendStringField(appendStringField(nil, 0x0a, "__name__"), 0x12, "up"), unknown...)
	sample := append([]byte{0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x05}, unknown...)
	msg := func(tag byte, body ...[]byte) []byte {
		b := bytes.Join(body, nil)
		return append(binary.AppendUvarint([]byte{tag}, uint64(len(b))), b...)
	}
	req := append(msg(0x0a, msg(0x0a, label), msg(0x12, sample), unknown), unknown...)
	var b samples.Batch
	if _, err := DecodeV1(req, &b); err != nil {
		t.Fatal(err)
	}
	want := []series{{ls("__name__", "up"), []samples.Sample{{T: 5, V: 1}}}}
	if d := diffSeries(fromBatch(&b), want); d != "" {
		t.Fatal(d)
	}
}

func FuzzDecodeV1(f *testing.F) { fuzzDecode(f, ".v1.pb", DecodeV1, AppendV1, true) }

// FuzzDecodeV2 does not compare metadata after the round trip: 2.0 carries
// it per series, so a family without series does not survive re-encoding.
func FuzzDecodeV2(f *testing.F) { fuzzDecode(f, ".v2.pb", DecodeV2, AppendV2, false) }

// fuzzDecode feeds decode the testdata/*suffix seeds and whatever the fuzzer
// makes of them. What decodes must count its samples right, keep the key
// contract, and survive a round trip through encode and decode unchanged
// (its metadata too when sameMetadata is set).
func fuzzDecode(f *testing.F, suffix string, decode func([]byte, *samples.Batch) (Stats, error), encode func([]byte, *samples.Batch) []byte, sameMetadata bool) {
	for _, data := range parsertest.Files(f, "testdata/*"+suffix, "run go test -run TestPrometheusCompat -update") {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b samples.Batch
		st, err := decode(data, &b)
		if err != nil {
			return
		}
		if st.Samples != b.Len() {
			t.Fatalf("got Stats.Samples %d; want %d", st.Samples, b.Len())
		}
		parsertest.CheckKeys(t, &b)
		var b2 samples.Batch
		if _, err := decode(encode(nil, &b), &b2); err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if d := diffSeries(fromBatch(&b2), fromBatch(&b)); d != "" {
			t.Fatalf("round trip: %s", d)
		}
		if st.Histograms != len(b.Histograms) || st.Exemplars != len(b.Exemplars) {
			t.Fatalf("got Stats %+v; want %d histograms, %d exemplars", st, len(b.Histograms), len(b.Exemplars))
		}
		if g, w := extrasOf(&b2), extrasOf(&b); g != w {
			t.Fatalf("round trip: got histograms and exemplars\n%s\nwant\n%s", g, w)
		}
		if sameMetadata && fmt.Sprintf("%q", b2.Metadata) != fmt.Sprintf("%q", b.Metadata) {
			t.Fatalf("round trip: got metadata %q; want %q", b2.Metadata, b.Metadata)
		}
	})
}

// benchBatch builds a request like a node_exporter/app fleet's: n series of
// about 8 labels with one sample each.
func benchBatch(n int) *samples.Batch {
	names := []string{"node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_network_receive_bytes_total",
		"node_filesystem_avail_bytes", "node_disk_io_time_seconds_total", "http_requests_total",
		"http_request_duration_seconds_bucket", "process_resident_memory_bytes", "go_goroutines"}
	modes := []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}
	b := &samples.Batch{}
	for i := range n {
		b.StartSeries(nil)
		b.AddLabel("__name__", names[i%len(names)])
		b.AddLabel("cpu", fmt.Sprint(i%64))
		b.AddLabel("env", "production")
		b.AddLabel("instance", fmt.Sprintf("host-%03d.eu-west-1.internal:9100", i/200))
		b.AddLabel("job", "node")
		b.AddLabel("mode", modes[i%len(modes)])
		b.AddLabel("region", "eu-west-1")
		b.AddLabel("team", "platform")
		b.AddSample(1700000000000+int64(i), float64(i)*1.25+0.5)
	}
	return b
}

func benchDecode(b *testing.B, encode func([]byte, *samples.Batch) []byte, decode func([]byte, *samples.Batch) (Stats, error)) {
	src := benchBatch(2000)
	data := encode(nil, src)
	var dst samples.Batch
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		if _, err := decode(data, &dst); err != nil {
			b.Fatal(err)
		}
	}
	if dst.Len() != src.Len() {
		b.Fatalf("decoded %d samples; want %d", dst.Len(), src.Len())
	}
	b.ReportMetric(float64(src.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(src.Len()), "ns/sample")
}

func BenchmarkDecodeV1(b *testing.B) { benchDecode(b, AppendV1, DecodeV1) }
func BenchmarkDecodeV2(b *testing.B) { benchDecode(b, AppendV2, DecodeV2) }

func benchEncode(b *testing.B, encode func([]byte, *samples.Batch) []byte) {
	src := benchBatch(2000)
	buf := encode(nil, src)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = encode(buf[:0], src)
	}
	b.ReportMetric(float64(src.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkAppendV1(b *testing.B) { benchEncode(b, AppendV1) }
func BenchmarkAppendV2(b *testing.B) { benchEncode(b, AppendV2) }

func BenchmarkDecodeSnappy(b *testing.B) {
	raw := AppendV1(nil, benchBatch(2000))
	comp := snappy.Encode(nil, raw)
	var buf []byte
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = DecodeSnappy(buf, comp, 32<<20); err != nil {
			b.Fatal(err)
		}
	}
}
