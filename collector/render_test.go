package main

import (
	"bufio"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/chart"
)

var renderNow = time.Date(2024, 5, 1, 13, 0, 0, 0, time.UTC)

func TestParseRenderRequest(t *testing.T) {
	f := func(raw string, check func(r renderRequest) bool) {
		t.Helper()
		form, _ := url.ParseQuery(raw)
		r, err := parseRenderRequest(form, renderNow)
		if err != nil || !check(r) {
			t.Fatalf("parseRenderRequest(%s): got %+v, %v", raw, r, err)
		}
	}
	f("query=up", func(r renderRequest) bool {
		return r.query == "up" && r.end.Equal(renderNow) && r.start.Equal(renderNow.Add(-time.Hour)) && r.step == 9*time.Second &&
			r.width == chart.DefaultWidth && r.height == chart.DefaultHeight && r.series == chart.MaxSeries
	})
	f("panel=In+flight&var-service=web&range=6h&step=1m&series=3", func(r renderRequest) bool {
		return r.panel == "In flight" && r.vars["service"] == "web" && r.end.Sub(r.start) == 6*time.Hour && r.step == time.Minute && r.series == 3
	})
	f("query=up&start=1714564800&end=1714568400.5&step=15", func(r renderRequest) bool {
		return r.start.Equal(time.Unix(1714564800, 0)) && r.end.Equal(time.Unix(1714568400, 5e8)) && r.step == 15*time.Second
	})
	bad := func(raw, want string) {
		t.Helper()
		form, _ := url.ParseQuery(raw)
		_, err := parseRenderRequest(form, renderNow)
		if !errors.Is(err, errBadRender) || !strings.Contains(err.Error(), want) {
			t.Fatalf("parseRenderRequest(%s): got %v; want a bad request saying %q", raw, err, want)
		}
	}
	bad("", "give exactly one of query=<PromQL> and panel=<panel title>")
	bad("query=up&panel=x", "give exactly one")
	bad("query=up&width=9000", `width="9000": want a whole number from 300 to 2000`)
	bad("query=up&step=0", `step="0": want a duration from 1s to 31d`)
	bad("query=up&start=NaN", `start="NaN": want RFC3339`)
	bad("query=up&range=40d", `range="40d": want a duration from 1s to 31d`)
	bad("query=up&start=1714568400&end=1714564800", "is not after start")
	bad("query=up&range=1d&step=1s", "step 1s gives 86400 points per series, limit 11000: raise step")
	bad(`panel=x&var-c=%22`, "var-c: a value is at most 128 bytes without quotes")
	bad(`panel=x&var-a%22b=1`, "a variable name is letters, digits and _")
}

func TestSplitGraphVars(t *testing.T) {
	f := func(arg, title, vars string) {
		t.Helper()
		gt, gv := splitGraphVars(arg)
		var got []string
		for k, v := range gv {
			got = append(got, k+"="+v)
		}
		if gt != title || strings.Join(got, " ") != vars {
			t.Fatalf("splitGraphVars(%q): got %q %q; want %q %q", arg, gt, got, title, vars)
		}
	}
	f("In flight service=web", "In flight", "service=web")
	f("In flight", "In flight", "")
	f(`rate(x{a="b"}[5m])`, `rate(x{a="b"}[5m])`, "")
	f("up == 1", "up == 1", "")
	f("service=web", "service=web", "")
}

func renderSeeds(t testing.TB) []string {
	fh, err := os.Open("testdata/render/queries.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []string
	for sc := bufio.NewScanner(fh); sc.Scan(); {
		out = append(out, sc.Text())
	}
	return out
}

// FuzzParseRenderRequest: no panic; a request either fails as a bad
// request or is within every limit; !graph's variable split keeps every
// word.
func FuzzParseRenderRequest(f *testing.F) {
	for _, s := range renderSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		form, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := parseRenderRequest(form, renderNow)
		if err != nil {
			if !errors.Is(err, errBadRender) {
				t.Fatalf("%q: error %v is not a bad request", raw, err)
			}
		} else {
			span := r.end.Sub(r.start)
			if (r.query == "") == (r.panel == "") || span <= 0 || span > renderMaxRange || r.step < time.Second || span/r.step > renderMaxPoints ||
				r.width < chart.MinWidth || r.width > chart.MaxWidth || r.height < chart.MinHeight || r.height > chart.MaxHeight ||
				r.series < 1 || r.series > chart.MaxSeries || len(r.vars) > renderMaxVars {
				t.Fatalf("%q: accepted out of limits: %+v", raw, r)
			}
			for k, v := range r.vars {
				if checkVar(k, v) != nil {
					t.Fatalf("%q: accepted var %q=%q", raw, k, v)
				}
			}
		}
		title, vars := splitGraphVars(raw)
		n := len(strings.Fields(title))
		if vars == nil {
			n = len(strings.Fields(raw))
		}
		if n+len(vars) != len(strings.Fields(raw)) && vars != nil {
			t.Fatalf("splitGraphVars(%q): %q and %v do not add up to the words", raw, title, vars)
		}
	})
}
