package chart_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/chart"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// decode renders c as PNG and decodes it again, so every check reads the
// bytes a chat would receive.
func decode(t *testing.T, c *chart.Chart) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := c.WritePNG(&buf); err != nil {
		t.Fatalf("WritePNG: %v", err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	return img
}

func same(c color.Color, want color.RGBA) bool {
	r, g, b, a := c.RGBA()
	wr, wg, wb, wa := want.RGBA()
	return r == wr && g == wg && b == wb && a == wa
}

// rows returns the rows of r where col appears, in order.
func rows(img image.Image, r image.Rectangle, col color.RGBA) []int {
	var out []int
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if same(img.At(x, y), col) {
				out = append(out, y)
				break
			}
		}
	}
	return out
}

func count(img image.Image, r image.Rectangle, col color.RGBA) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if same(img.At(x, y), col) {
				n++
			}
		}
	}
	return n
}

func constant(label string, v float64, from, to time.Time, step time.Duration) chart.Series {
	s := chart.Series{Label: label}
	for t := from; !t.After(to); t = t.Add(step) {
		s.Points = append(s.Points, chart.Point{T: t.UnixMilli(), V: v})
	}
	return s
}

func TestSize(t *testing.T) {
	f := func(w, h, wantW, wantH int) {
		t.Helper()
		img := decode(t, &chart.Chart{Start: t0, End: t0.Add(time.Hour), Width: w, Height: h})
		if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
			t.Fatalf("%dx%d: got a %dx%d PNG; want %dx%d", w, h, b.Dx(), b.Dy(), wantW, wantH)
		}
	}
	f(0, 0, chart.DefaultWidth, chart.DefaultHeight)
	f(640, 320, 640, 320)
	f(10, 10, chart.MinWidth, chart.MinHeight)
	f(1e6, 1e6, chart.MaxWidth, chart.MaxHeight)
}

// TestLinesAndMarkers: each series is drawn in its palette colour inside
// the plot, the higher value above the lower; a deploy's marker is a
// column of the marker colour at the deploy's x, a failed one's in the
// bad colour; a marker outside the range is left out.
func TestLinesAndMarkers(t *testing.T) {
	step := 15 * time.Second
	dep, failed := t0.Add(20*time.Minute), t0.Add(40*time.Minute)
	c := &chart.Chart{Title: "Request rate", Unit: "reqps", Start: t0, End: t0.Add(time.Hour), Step: step, Width: 640, Height: 320,
		Series: []chart.Series{
			constant(`{route="/a"}`, 10, t0, t0.Add(time.Hour), step),
			constant(`{route="/b"}`, 20, t0, t0.Add(time.Hour), step),
		},
		Markers: []chart.ChangeMarker{
			{Time: dep, Label: "web@v1.2.3"},
			{Time: failed, Label: "web@v1.2.4", Bad: true},
			{Time: t0.Add(-time.Hour), Label: "before the range"},
		},
	}
	img := decode(t, c)
	plot := c.Plot()
	if !plot.In(img.Bounds()) || plot.Dx() < 400 || plot.Dy() < 100 {
		t.Fatalf("plot %v in a %v image; want most of it", plot, img.Bounds())
	}
	low, high := rows(img, plot, chart.Palette[0]), rows(img, plot, chart.Palette[1])
	if len(low) == 0 || len(high) == 0 {
		t.Fatalf("series rows: %v and %v; want both series drawn", low, high)
	}
	if len(low) > 3 || len(high) > 3 || high[len(high)-1] >= low[0] {
		t.Fatalf("rows of value 10: %v, of value 20: %v; want each a flat line, 20 above 10", low, high)
	}
	for _, m := range []struct {
		at  time.Time
		col color.RGBA
	}{{dep, chart.Marker}, {failed, chart.BadMarker}} {
		x := c.X(m.at)
		col := image.Rect(x, plot.Min.Y, x+1, plot.Max.Y)
		if n := count(img, col, m.col); n < plot.Dy()-2 {
			t.Fatalf("marker at %s (x=%d): %d of %d pixels in its colour; want the whole column", m.at.Format(time.TimeOnly), x, n, plot.Dy())
		}
	}
	if n := count(img, img.Bounds(), chart.Marker); n > 2*(plot.Dy()+40)+300 {
		t.Fatalf("%d pixels of the marker colour; want one marker's (the one before the range left out)", n)
	}
	// Nothing of the lines is drawn outside the plot.
	outside := count(img, img.Bounds(), chart.Palette[1]) - count(img, plot, chart.Palette[1])
	if legend := 14 * 4; outside > legend {
		t.Fatalf("%d pixels of series 1 outside the plot; want only its legend swatch (%d)", outside, legend)
	}
}

// TestGapsAndNaN: samples further apart than twice the step, and NaN,
// break the line: no series pixel in the middle of the gap.
func TestGapsAndNaN(t *testing.T) {
	step := time.Minute
	s := constant("a", 5, t0, t0.Add(20*time.Minute), step)
	s.Points = append(s.Points, constant("", 7, t0.Add(40*time.Minute), t0.Add(time.Hour), step).Points...)
	s.Points[5].V = math.NaN()
	c := &chart.Chart{Start: t0, End: t0.Add(time.Hour), Step: step, Series: []chart.Series{s}}
	img := decode(t, c)
	plot := c.Plot()
	mid := c.X(t0.Add(30 * time.Minute))
	if n := count(img, image.Rect(mid-3, plot.Min.Y, mid+3, plot.Max.Y), chart.Palette[0]); n != 0 {
		t.Fatalf("%d series pixels in the gap; want none", n)
	}
	if n := count(img, image.Rect(c.X(t0.Add(45*time.Minute)), plot.Min.Y, c.X(t0.Add(50*time.Minute)), plot.Max.Y), chart.Palette[0]); n == 0 {
		t.Fatal("no series pixels after the gap")
	}
}

// TestNoData: a chart without a finite sample says "no data" in the
// middle of its plot and draws no line; its markers are still there.
func TestNoData(t *testing.T) {
	dep := t0.Add(10 * time.Minute)
	for _, series := range [][]chart.Series{nil, {{Label: "nan", Points: []chart.Point{{T: t0.UnixMilli(), V: math.NaN()}}}}} {
		c := &chart.Chart{Start: t0, End: t0.Add(time.Hour), Series: series, Markers: []chart.ChangeMarker{{Time: dep, Label: "web@v1"}}}
		img := decode(t, c)
		plot := c.Plot()
		cx, cy := (plot.Min.X+plot.Max.X)/2, (plot.Min.Y+plot.Max.Y)/2
		center := image.Rect(cx-30, cy-10, cx+30, cy+10)
		// "no data" is 7 glyphs of 7x13: a few dozen pixels of ink.
		if n := count(img, center, chart.Text); n < 40 {
			t.Fatalf("%d text pixels in the plot's middle; want the words no data", n)
		}
		for i, col := range chart.Palette {
			if n := count(img, plot, col); n != 0 {
				t.Fatalf("%d pixels of series colour %d; want no line", n, i)
			}
		}
		if x := c.X(dep); count(img, image.Rect(x, plot.Min.Y, x+1, plot.Max.Y), chart.Marker) < plot.Dy()-2 {
			t.Fatal("the marker is missing on a chart without data")
		}
	}
}

// TestManySeries: more than MaxSeries draws MaxSeries lines; every
// palette colour is used once.
func TestManySeries(t *testing.T) {
	var ss []chart.Series
	for i := range 13 {
		ss = append(ss, constant("s", float64(i), t0, t0.Add(time.Hour), time.Minute))
	}
	c := &chart.Chart{Start: t0, End: t0.Add(time.Hour), Series: ss}
	img := decode(t, c)
	for i, col := range chart.Palette {
		if count(img, c.Plot(), col) == 0 {
			t.Fatalf("series %d (palette colour %d) not drawn", i, i)
		}
	}
}

// TestNonASCII: labels outside the font do not break drawing.
func TestNonASCII(t *testing.T) {
	c := &chart.Chart{Title: "déploiement → prod 日本", Start: t0, End: t0.Add(time.Hour),
		Series:  []chart.Series{constant("{a=\"→\"}", 1, t0, t0.Add(time.Hour), time.Minute)},
		Markers: []chart.ChangeMarker{{Time: t0.Add(time.Minute), Label: "web → prod"}}}
	decode(t, c)
}
