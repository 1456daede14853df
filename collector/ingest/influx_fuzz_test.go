package ingest

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/telltale-dev/telltale/samples"
)

// FuzzDBLabel checks the db label step on top of the parser (whose own
// fuzz target lives in protoparser/influx): with db=<x> every series keeps
// its samples and its labels, and gets db=<x> exactly when its line has no
// db tag; and series keys stay a function of the labels across requests
// with different db values and both label paths.
func FuzzDBLabel(f *testing.F) {
	files, _ := filepath.Glob("testdata/influx/*.txt")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "telegraf")
	}
	f.Add([]byte("m v=1"), "")
	var plain, a, b influxRequest
	f.Fuzz(func(t *testing.T, data []byte, db string) {
		const now = 1772366400000
		plain.batch.Reset()
		want, _, err := plain.parse(data, "ns", now, "", 0)
		if err != nil {
			return
		}
		a.batch.Reset()
		got, _, err := a.parse(data, "ns", now, db, 0)
		if err != nil {
			t.Fatalf("parse with db=%q failed where parsing without it did not: %v", db, err)
		}
		if len(got.Series) != len(want.Series) || got.Len() != want.Len() {
			t.Fatalf("db=%q: got %d series, %d samples; want %d, %d", db, len(got.Series), got.Len(), len(want.Series), want.Len())
		}
		for i := range want.Series {
			ws, gs := &want.Series[i], &got.Series[i]
			if !sameSamples(want.SeriesSamples(ws), got.SeriesSamples(gs)) {
				t.Fatalf("series %d: samples changed", i)
			}
			wl, gl := want.SeriesLabels(ws), got.SeriesLabels(gs)
			hasDB := slices.ContainsFunc(wl, func(l samples.Label) bool { return l.Name == "db" })
			exp := slices.Clone(wl)
			if db != "" && !hasDB {
				exp = append(exp, samples.Label{Name: "db", Value: db})
			}
			if !sameLabels(exp, gl) {
				t.Fatalf("series %d, db=%q: got labels %v; want %v", i, db, gl, exp)
			}
		}
		// Keys: across two requests with different db values, equal keys
		// must mean equal label sets.
		b.batch.Reset()
		other, _, err := b.parse(data, "ns", now, db+"x", 0)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, bt := range []*samples.Batch{want, got, other} {
			for i := range bt.Series {
				s := &bt.Series[i]
				ls := labelString(bt.SeriesLabels(s))
				if prev, ok := seen[string(s.Key)]; ok && prev != ls {
					t.Fatalf("key %q means %s and %s", s.Key, prev, ls)
				}
				seen[string(s.Key)] = ls
			}
		}
	})
}

// sameSamples compares samples bit for bit (NaN equals NaN).
func sameSamples(a, b []samples.Sample) bool {
	return slices.EqualFunc(a, b, func(x, y samples.Sample) bool {
		return x.T == y.T && math.Float64bits(x.V) == math.Float64bits(y.V)
	})
}

// sameLabels compares label lists as multisets.
func sameLabels(a, b []samples.Label) bool {
	return labelString(a) == labelString(b)
}

func labelString(ls []samples.Label) string {
	var sb labels.ScratchBuilder
	for _, l := range ls {
		sb.Add(l.Name, l.Value)
	}
	sb.Sort()
	return sb.Labels().String()
}
