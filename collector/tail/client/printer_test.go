package client

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/tail"
)

// 2023-11-14T22:13:20Z
const t0 = 1_700_000_000_000

func printAll(p *Printer, msgs ...tail.Message) (out, errOut string) {
	var o, e strings.Builder
	p.Out, p.Err, p.Location = &o, &e, time.UTC
	for _, m := range msgs {
		if err := p.Print(m); err != nil {
			panic(err)
		}
	}
	return o.String(), e.String()
}

func sample(ls map[string]string, t int64, v float64) tail.Sample {
	return tail.Sample{Labels: ls, T: t, V: tail.Value(v)}
}

func TestPrinterAlignsSamples(t *testing.T) {
	out, _ := printAll(&Printer{},
		tail.Message{Type: tail.TypeSamples, Samples: []tail.Sample{
			sample(map[string]string{"__name__": "up", "job": "api"}, t0, 1),
			sample(map[string]string{"__name__": "http_requests_total", "job": "api", "code": "200"}, t0+1500, 1234.5),
			sample(map[string]string{"__name__": "up", "job": "db"}, t0+2000, math.Inf(1)),
		}},
		tail.Message{Type: tail.TypeSamples, Samples: []tail.Sample{
			sample(map[string]string{"__name__": "x"}, t0+3000, math.NaN()),
		}},
	)
	want := strings.Join([]string{
		`22:13:20.000  up{job="api"}  1`,
		`22:13:21.500  http_requests_total{code="200", job="api"}  1234.5`,
		`22:13:22.000  up{job="db"}                                +Inf`,
		`22:13:23.000  x{}                                         NaN`,
		``,
	}, "\n")
	if out != want {
		t.Fatalf("samples:\ngot\n%s\nwant\n%s", out, want)
	}
}

// TestPrinterHistograms: a native histogram sample prints its count, sum
// and number of buckets where a float prints its value, aligned the same.
func TestPrinterHistograms(t *testing.T) {
	var m tail.Message
	raw := `{"type":"samples","samples":[{"labels":{"__name__":"up","job":"api"},"t":1700000000000,"v":"1"},` +
		`{"labels":{"__name__":"latency","job":"api"},"t":1700000001000,"h":{"count":"11","sum":"20.5","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","10"]]}},` +
		`{"labels":{"__name__":"latency","job":"db"},"t":1700000002000,"h":{"count":"0","sum":"0"}}],"time":1700000002000}`
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	out, _ := printAll(&Printer{}, m)
	want := strings.Join([]string{
		`22:13:20.000  up{job="api"}  1`,
		`22:13:21.000  latency{job="api"}  count=11 sum=20.5 buckets=2`,
		`22:13:22.000  latency{job="db"}   count=0 sum=0 buckets=0`,
		``,
	}, "\n")
	if out != want {
		t.Fatalf("samples:\ngot\n%s\nwant\n%s", out, want)
	}
	for _, bad := range []string{`[0,"1","2"]`, `[7,"1","2","3"]`, `{"a":1}`, `[0,"x","2","3"]`} {
		var b tail.Bucket
		if err := json.Unmarshal([]byte(bad), &b); err == nil {
			t.Errorf("bucket %s: decoded %+v; want an error", bad, b)
		}
	}
}

func TestPrinterDeploys(t *testing.T) {
	f := func(deploy string, want string) {
		t.Helper()
		out, _ := printAll(&Printer{}, tail.Message{Type: tail.TypeDeploy, Time: t0, Deploy: json.RawMessage(deploy)})
		if out != want+"\n" {
			t.Fatalf("deploy %s:\ngot  %q\nwant %q", deploy, out, want+"\n")
		}
	}
	f(`{"id":"d1","service":"api","env":"prod","version":"1.4.2","who":"alice","message":"faster login","link":"https://git.example/c/abc","time":"2023-11-14T22:13:25Z","status":"success"}`,
		`22:13:25.000  ▶ DEPLOY api 1.4.2 (prod) by alice: faster login  https://git.example/c/abc`)
	f(`{"service":"api","commit":"0123456789abcdef0123","status":"failed"}`,
		`22:13:20.000  ▶ DEPLOY api 0123456789ab [failed]`)
	f(`{"service":"api","message":"line1\nline2\u001b[2J"}`,
		`22:13:20.000  ▶ DEPLOY api: line1 line2 [2J`)
	f(`{"something":"else"}`, `22:13:20.000  ▶ DEPLOY {"something":"else"}`)
}

func TestPrinterChanges(t *testing.T) {
	f := func(change string, want string) {
		t.Helper()
		out, _ := printAll(&Printer{}, tail.Message{Type: tail.TypeChange, Time: t0, Change: json.RawMessage(change)})
		if out != want+"\n" {
			t.Fatalf("change %s:\ngot  %q\nwant %q", change, out, want+"\n")
		}
	}
	f(`{"id":"s1","kind":"switch","service":"demo","env":"dev","subject":"slow_checkout","fields":{"state":"on"},"who":"alice","message":"simulate a bad deploy","time":"2023-11-14T22:13:25Z","status":"running"}`,
		`22:13:25.000  ▶ SWITCH slow_checkout on demo (dev) [running] by alice: simulate a bad deploy`)
	f(`{"kind":"note","service":"shop","message":"raised the timeout"}`, `22:13:20.000  ▶ NOTE shop: raised the timeout`)
	f(`{"something":"else"}`, `22:13:20.000  ▶ CHANGE {"something":"else"}`)
}

func TestPrinterNoticesGoToErr(t *testing.T) {
	out, errOut := printAll(&Printer{},
		tail.Message{Type: tail.TypeSubscribed, Selectors: []string{`up{job="api"}`, "x"}, MaxRate: 5},
		tail.Message{Type: tail.TypeNotice, Notice: tail.NoticeDropped, DroppedMessages: 3, DroppedSamples: 120, Text: "read faster"},
		tail.Message{Type: tail.TypeNotice, Notice: tail.NoticeThinned, ThinnedSamples: 9, Text: "raise max_rate"},
		tail.Message{Type: "from_the_future"},
	)
	if out != "" {
		t.Fatalf("Out: got %q; want nothing", out)
	}
	want := "tail: subscribed to up{job=\"api\"} or x, at most 5 samples/s\n" +
		"tail: MISSED 3 messages (120 samples): read faster\n" +
		"tail: thinned 9 samples: raise max_rate\n"
	if errOut != want {
		t.Fatalf("Err:\ngot\n%s\nwant\n%s", errOut, want)
	}
}

func TestPrinterColorAndEscapes(t *testing.T) {
	out, _ := printAll(&Printer{Color: true}, tail.Message{Type: tail.TypeSamples, Samples: []tail.Sample{
		sample(map[string]string{"__name__": "up", "job": "a\x1b[31m"}, t0, 1),
	}})
	want := "\x1b[2m22:13:20.000\x1b[0m  \x1b[1mup\x1b[0m{job=\"a\\x1b[31m\"}  \x1b[36m1\x1b[0m\n"
	if out != want {
		t.Fatalf("coloured sample:\ngot  %q\nwant %q", out, want)
	}
	out, _ = printAll(&Printer{Color: true}, tail.Message{Type: tail.TypeSamples, Samples: []tail.Sample{
		sample(map[string]string{"__name__": "evil\x1b[2J"}, t0, 1),
	}})
	if strings.Contains(out, "\x1b[2J") {
		t.Fatalf("a metric name's escape sequence reached the terminal: %q", out)
	}
}
