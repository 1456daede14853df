package influx

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/protoparser/internal/parsertest"
	"github.com/telltale-dev/telltale/samples"
)

// render prints a batch one series per line as name="value",... t v.
func render(b *samples.Batch) string {
	return parsertest.Render(b, func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) })
}

func TestParse(t *testing.T) {
	f := func(in, precision, want string, wantSkipped int) {
		t.Helper()
		var p Parser
		var b samples.Batch
		st, err := p.Parse([]byte(in), precision, 1000, &b)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got := render(&b); got != want {
			t.Fatalf("Parse(%q):\ngot\n%s\nwant\n%s", in, got, want)
		}
		if st.SkippedStrings != wantSkipped {
			t.Fatalf("Parse(%q): got %d skipped strings; want %d", in, st.SkippedStrings, wantSkipped)
		}
	}
	f("", "", "", 0)
	f("\n\n# comment\n  \n", "", "", 0)
	f("cpu value=1", "", `__name__="cpu" 1000 1`+"\n", 0)
	f("cpu,host=a,region=eu usage_idle=99.5,usage_user=0.5 1700000000000000000\n", "",
		`__name__="cpu_usage_idle",host="a",region="eu" 1700000000000 99.5`+"\n"+
			`__name__="cpu_usage_user",host="a",region="eu" 1700000000000 0.5`+"\n", 0)
	f("m a=12i,b=-7i,c=18446744073709551615u,d=1e3,e=-.5,f=1.", "",
		`__name__="m_a" 1000 12`+"\n"+`__name__="m_b" 1000 -7`+"\n"+`__name__="m_c" 1000 1.8446744073709552e+19`+"\n"+
			`__name__="m_d" 1000 1000`+"\n"+`__name__="m_e" 1000 -0.5`+"\n"+`__name__="m_f" 1000 1`+"\n", 0)
	f("m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE", "",
		`__name__="m_a" 1000 1`+"\n"+`__name__="m_b" 1000 1`+"\n"+`__name__="m_c" 1000 1`+"\n"+`__name__="m_d" 1000 1`+"\n"+`__name__="m_e" 1000 1`+"\n"+
			`__name__="m_f" 1000 0`+"\n"+`__name__="m_g" 1000 0`+"\n"+`__name__="m_h" 1000 0`+"\n"+`__name__="m_i" 1000 0`+"\n"+`__name__="m_j" 1000 0`+"\n", 0)
	// String fields are skipped and counted, whatever they hold.
	f(`syslog,host=a msg="a \"quoted\", spaced = string\\",severity=3i,x="multi`+"\n"+`line" 5`+"\n"+`next value=2`, "ms",
		`__name__="syslog_severity",host="a" 5 3`+"\n"+`__name__="next" 1000 2`+"\n", 2)
	f(`only,host=a msg="text"`, "", "", 1)
	// Escapes in measurement, tag keys, tag values and field keys.
	f(`my\ meas\,ure,ta\ g\=k=v\,a\ l\=ue\\ fi\=eld\ x=1`, "",
		`__name__="my meas,ure_fi=eld x",ta g=k="v,a l=ue\\" 1000 1`+"\n", 0)
	f(`m\x,t=a\b v\q=1`, "", `__name__="m\\x_v\\q",t="a\\b" 1000 1`+"\n", 0) // other backslashes are literal
	f("m,t=\"q\" value=1", "", `__name__="m",t="\"q\"" 1000 1`+"\n", 0)
	// Whitespace and line endings.
	f("  m value=1   2  \r\n\tn value=3\r\n", "s", `__name__="m" 2000 1`+"\n"+`__name__="n" 1000 3`+"\n", 0)
	f("m value=1 -1000000", "", `__name__="m" -1 1`+"\n", 0)
	// Precisions.
	for _, c := range []struct {
		precision string
		ts        int64
	}{{"", 1700000000123456789}, {"ns", 1700000000123456789}, {"n", 1700000000123456789},
		{"us", 1700000000123456}, {"u", 1700000000123456}, {"µs", 1700000000123456},
		{"ms", 1700000000123}, {"s", 1700000000}, {"m", 28333333}, {"h", 472222}} {
		want := map[string]int64{"s": 1700000000000, "m": 1699999980000, "h": 1699999200000}[c.precision]
		if want == 0 {
			want = 1700000000123
		}
		f(fmt.Sprintf("m value=1 %d", c.ts), c.precision, fmt.Sprintf(`__name__="m" %d 1`+"\n", want), 0)
	}
}

func TestParseErrors(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		var p Parser
		var b samples.Batch
		_, err := p.Parse([]byte(in), "", 0, &b)
		if err == nil || err.Error() != want {
			t.Fatalf("Parse(%q):\ngot error  %v\nwant error %s", in, err, want)
		}
	}
	valueWant := `want a float (1.5), an integer (12i), an unsigned integer (12u), a boolean (t, f, true, false) or a string ("s")`
	f("ok value=1\n\ncpu usage=12x", `line 3: cannot parse value "12x" of field "usage" in "cpu usage=12x": `+valueWant)
	f("m v=", `line 1: cannot parse value "" of field "v" in "m v=": `+valueWant)
	f("m v=inf", `line 1: cannot parse value "inf" of field "v" in "m v=inf": `+valueWant)
	f("m v=NaN", `line 1: cannot parse value "NaN" of field "v" in "m v=NaN": `+valueWant)
	f("m v=0x10", `line 1: cannot parse value "0x10" of field "v" in "m v=0x10": `+valueWant)
	f("m v=1.5i", `line 1: cannot parse value "1.5i" of field "v" in "m v=1.5i": `+valueWant)
	f("m v=-1u", `line 1: cannot parse value "-1u" of field "v" in "m v=-1u": `+valueWant)
	f("m v=yes", `line 1: cannot parse value "yes" of field "v" in "m v=yes": `+valueWant)
	f("m v=9223372036854775808i", `line 1: cannot parse value "9223372036854775808i" of field "v" in "m v=9223372036854775808i": integer out of the int64 range`)
	f("m v=18446744073709551616u", `line 1: cannot parse value "18446744073709551616u" of field "v" in "m v=18446744073709551616u": integer out of the uint64 range`)
	f("m v=1e400", `line 1: cannot parse value "1e400" of field "v" in "m v=1e400": float out of the float64 range`)
	f(",t=a v=1", `line 1: missing measurement in ",t=a v=1"`)
	f("m", `line 1: missing fields in "m": want measurement[,tag=value...] field=value[,field=value...] [timestamp]`)
	f("m,t=a", `line 1: missing fields in "m,t=a": want measurement[,tag=value...] field=value[,field=value...] [timestamp]`)
	f("m ", `line 1: missing fields in "m ": want measurement[,tag=value...] field=value[,field=value...] [timestamp]`)
	f("m,t v=1", `line 1: tag "t" has no '=' in "m,t v=1": want tag=value`)
	f("m,t= v=1", `line 1: tag "t" has no value in "m,t= v=1": drop the tag or give it a value`)
	f("m,=a v=1", `line 1: empty tag key in "m,=a v=1"`)
	f("m v", `line 1: field "v" has no '=' in "m v": want field=value`)
	f("m =1", `line 1: empty field key in "m =1"`)
	f("m v=1,", `line 1: missing fields in "m v=1,": want measurement[,tag=value...] field=value[,field=value...] [timestamp]`)
	f(`m s="open`, `line 1: string value of field "s" has no closing '"' in "m s=\"open"`)
	f("m v=1 12x", `line 1: cannot parse timestamp "12x" in "m v=1 12x": want an integer in the request's precision`)
	f("m v=1 1.5", `line 1: cannot parse timestamp "1.5" in "m v=1 1.5": want an integer in the request's precision`)
	f("m v=1 1 2", `line 1: unexpected text "2" after the timestamp in "m v=1 1 2"`)
	f("m s=\"a\nb\nc\"\nm v=x", `line 4: cannot parse value "x" of field "v" in "m v=x": `+valueWant)
	f("m\\\nv=1", `line 1: missing fields in "m\\": want measurement[,tag=value...] field=value[,field=value...] [timestamp]`)
	long := "m,host=" + strings.Repeat("h", 100) + " v=1x"
	f(long, `line 1: cannot parse value "1x" of field "v" in "m,host=hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"...: `+valueWant)

	var p Parser
	var b samples.Batch
	if _, err := p.Parse([]byte("m v=1"), "ps", 0, &b); err == nil || err.Error() != `unknown precision "ps": want ns, us, ms, s, m or h` {
		t.Fatalf("got %v; want an unknown precision error", err)
	}
	if _, err := p.Parse([]byte("m v=1 9223372036854775807"), "h", 0, &b); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("got %v; want a timestamp out of range error", err)
	}
}

func TestMaxLineLen(t *testing.T) {
	p := Parser{MaxLineLen: 20}
	var b samples.Batch
	if _, err := p.Parse([]byte("m value=1\nshort,t=a value=2\n"), "", 0, &b); err != nil {
		t.Fatalf("lines within the limit: %v", err)
	}
	f := func(in, want string) {
		t.Helper()
		_, err := p.Parse([]byte(in), "", 0, &b)
		if !errors.Is(err, ErrLineTooLong) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q): got %v; want ErrLineTooLong with %q", in, err, want)
		}
	}
	f("m value=1\nm,host=a-very-long-host value=1\n", "line 2: line too long: 31 bytes, over the limit of 20 bytes")
	f("m s=\"a\nb\nc\nd\ne\nf\ng\nh\",v=1\n", "line 1: line too long: 25 bytes, over the limit of 20 bytes")
}

func TestExtraLabels(t *testing.T) {
	p := Parser{ExtraLabels: []samples.Label{{Name: "db", Value: "telegraf"}}}
	var b samples.Batch
	in := "cpu,db=other,host=a usage=1,value=2 1000000000\n"
	if _, err := p.Parse([]byte(in), "", 0, &b); err != nil {
		t.Fatal(err)
	}
	want := `__name__="cpu_usage",host="a",db="telegraf" 1000 1` + "\n" + `__name__="cpu",host="a",db="telegraf" 1000 2` + "\n"
	if got := render(&b); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	k := b.Series[0].Key
	var b2 samples.Batch
	if _, err := (&Parser{}).Parse([]byte(in), "", 0, &b2); err != nil {
		t.Fatal(err)
	}
	if string(b2.Series[0].Key) == string(k) {
		t.Fatalf("got the same key %q with and without extra labels", k)
	}
	if k[0] != 4 {
		t.Fatalf("got key %q; want it to start with 0x04", k)
	}
}

func TestKeys(t *testing.T) {
	var p Parser
	var b samples.Batch
	in := "m,t=a x=1,y=2\nm,t=b x=1\nm,t=a x=3 5\nm,t=a value=1\nm_x,t=a value=1\n"
	if _, err := p.Parse([]byte(in), "", 0, &b); err != nil {
		t.Fatal(err)
	}
	parsertest.CheckKeys(t, &b)
	s := b.Series
	if string(s[0].Key) != string(s[3].Key) {
		t.Fatalf("got keys %q and %q for the same series; want equal", s[0].Key, s[3].Key)
	}
	// m_x{t=a} from field x of m and from field value of m_x is the same
	// series with different keys: a cache miss, which is fine; what
	// matters is that different series never share a key.
	for i, j := range [][2]int{{0, 1}, {0, 2}, {0, 4}, {2, 4}} {
		if string(s[j[0]].Key) == string(s[j[1]].Key) {
			t.Fatalf("case %d: got equal keys %q for different series", i, s[j[0]].Key)
		}
	}
}

// appendLines writes b as line protocol, one line per sample with the
// series' name as measurement, its other labels as tags and the value in
// the field "value", timestamps in ms: what Parse maps back to b.
func appendLines(dst []byte, b *samples.Batch) []byte {
	esc := func(dst []byte, s string) []byte {
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case ',', ' ', '=', '\\':
				dst = append(dst, '\\')
			}
			dst = append(dst, s[i])
		}
		return dst
	}
	for i := range b.Series {
		s := &b.Series[i]
		labels := b.SeriesLabels(s)
		for _, x := range b.SeriesSamples(s) {
			dst = esc(dst, labels[0].Value) // __name__
			for _, l := range labels[1:] {
				dst = append(dst, ',')
				dst = esc(dst, l.Name)
				dst = append(dst, '=')
				dst = esc(dst, l.Value)
			}
			dst = append(dst, " value="...)
			dst = strconv.AppendFloat(dst, x.V, 'g', -1, 64)
			dst = append(dst, ' ')
			dst = strconv.AppendInt(dst, x.T, 10)
			dst = append(dst, '\n')
		}
	}
	return dst
}

func TestTestdata(t *testing.T) {
	for _, data := range parsertest.Files(t, "testdata/*.txt", "") {
		var p Parser
		var b samples.Batch
		if _, err := p.Parse(data, "", 0, &b); err != nil {
			t.Fatal(err)
		}
		if b.Len() == 0 {
			t.Fatalf("no samples in\n%s", data)
		}
		parsertest.CheckKeys(t, &b)
	}
}

func FuzzParse(f *testing.F) {
	for _, data := range parsertest.Files(f, "testdata/*.txt", "") {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := Parser{MaxLineLen: 1 << 10}
		var b samples.Batch
		st, err := p.Parse(data, "ns", 42, &b)
		if err != nil {
			return
		}
		if st.SkippedStrings < 0 || len(b.Series) != b.Len() {
			t.Fatalf("got %d series and %d samples; want one sample per series", len(b.Series), b.Len())
		}
		parsertest.CheckKeys(t, &b)
		for i := range b.Samples {
			if math.IsNaN(b.Samples[i].V) || math.IsInf(b.Samples[i].V, 0) {
				t.Fatalf("got value %v; line protocol has no NaN or Inf", b.Samples[i].V)
			}
		}
		// Written back as line protocol and parsed again, it is the same.
		want := render(&b)
		var b2 samples.Batch
		text := appendLines(nil, &b)
		if _, err := (&Parser{}).Parse(text, "ms", 42, &b2); err != nil {
			t.Fatalf("re-emitted lines do not parse: %v\n%s", err, text)
		}
		if got := render(&b2); got != want {
			t.Fatalf("round trip:\ngot\n%s\nwant\n%s\ntext\n%s", got, want, text)
		}
	})
}

// telegrafBody returns n lines like Telegraf's cpu, mem, disk, net and
// system inputs write, nanosecond timestamps.
func telegrafBody(n int) []byte {
	var sb strings.Builder
	for i := 0; sb.Len() == 0 || strings.Count(sb.String(), "\n") < n; i++ {
		host := fmt.Sprintf("web-%02d.eu-west-1.example.com", i%20)
		ts := 1700000000000000000 + int64(i)*10e9
		switch i % 5 {
		case 0:
			fmt.Fprintf(&sb, "cpu,cpu=cpu%d,host=%s,region=eu-west-1 usage_guest=0,usage_idle=%.4f,usage_iowait=0.1,usage_system=%.4f,usage_user=%.4f %d\n", i%8, host, 90.5+float64(i%7), 2.25, 7.125, ts)
		case 1:
			fmt.Fprintf(&sb, "mem,host=%s,region=eu-west-1 active=%di,available=%di,available_percent=%.3f,buffered=%di,free=%di,used=%di %d\n", host, 4000000000+i, 8000000000+i, 61.234, 300000000, 2000000000, 6000000000, ts)
		case 2:
			fmt.Fprintf(&sb, "disk,device=nvme0n1p1,fstype=ext4,host=%s,mode=rw,path=/ free=%di,inodes_free=%di,inodes_total=6553600i,used_percent=%.2f %d\n", host, 100000000000+i, 6000000, 42.42, ts)
		case 3:
			fmt.Fprintf(&sb, "net,host=%s,interface=eth0 bytes_recv=%di,bytes_sent=%di,drop_in=0i,err_in=0i,packets_recv=%du %d\n", host, 123456789+i, 98765432+i, 1234567+i, ts)
		case 4:
			fmt.Fprintf(&sb, "system,host=%s load1=%.2f,load5=0.5,n_cpus=8i,uptime=%di,uptime_format=\"12 days, 3:04\" %d\n", host, 0.25, 1000000+i, ts)
		}
	}
	return []byte(sb.String())
}

func BenchmarkParse(b *testing.B) {
	body := telegrafBody(2000)
	var p Parser
	var dst samples.Batch
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		if _, err := p.Parse(body, "ns", 0, &dst); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(dst.Len())*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(dst.Len()), "ns/sample")
}
