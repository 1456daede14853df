// Package chart draws a time-series line chart as a PNG on the server, for
// the chats that show images (the bot's !graph) and for GET
// /api/v1/render: one line per series with a legend of their labels, a y
// axis with a few ticks in the unit's readable form (KiB, ms, %, req/s),
// an x axis of UTC times, and a vertical marker with a short label for
// each change (deploy, switch flip ...) in the range, as the console's
// graphs mark them.
//
// Promises:
//   - Pure and deterministic: the same Chart draws the same pixels; no
//     I/O but the writer, no package state, safe for concurrent use.
//   - Bounded: at most MaxSeries lines and legend entries are drawn (the
//     legend says how many more there were), the image is Width×Height
//     clamped to [MinWidth, MaxWidth]×[MinHeight, MaxHeight], and text
//     is clipped to the image.
//   - Never empty: a chart without a finite sample says "no data" in
//     the middle of its plot (markers are still drawn).
//   - Non-finite samples (NaN, ±Inf) and samples further apart than
//     twice Step break a line rather than drawing through the gap.
//
// Text is drawn with golang.org/x/image's 7×13 bitmap font (ASCII and
// Latin-1); other characters show as '?'.
package chart

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Size limits and defaults, in pixels.
const (
	DefaultWidth, DefaultHeight = 800, 400
	MinWidth, MinHeight         = 300, 200
	MaxWidth, MaxHeight         = 2000, 1200
)

// MaxSeries is the most series a chart draws.
const MaxSeries = 10

// Colours. Series i is drawn in Palette[i]; markers in Marker, markers of
// changes that went wrong (a failed deploy) in BadMarker.
var (
	Background = color.RGBA{0xff, 0xff, 0xff, 0xff}
	Text       = color.RGBA{0x20, 0x20, 0x28, 0xff}
	Grid       = color.RGBA{0xe4, 0xe4, 0xea, 0xff}
	Axis       = color.RGBA{0x90, 0x90, 0x98, 0xff}
	Marker     = color.RGBA{0x8e, 0x24, 0xaa, 0xff}
	BadMarker  = color.RGBA{0xd3, 0x2f, 0x2f, 0xff}
	Palette    = [MaxSeries]color.RGBA{
		{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
		{0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff}, {0xbc, 0xbd, 0x22, 0xff},
		{0x39, 0x3b, 0x79, 0xff}, {0xff, 0xbb, 0x78, 0xff},
	}
)

// Point is one sample: T in milliseconds since the epoch, V its value.
type Point struct {
	T int64
	V float64
}

// Series is one line: its label (for the legend) and its samples in time
// order.
type Series struct {
	Label  string
	Points []Point
}

// ChangeMarker is a change to mark: a vertical line at Time with Label
// ("web@v1.2.3") above the plot. Bad draws it in BadMarker.
type ChangeMarker struct {
	Time  time.Time
	Label string
	Bad   bool
}

// Chart is what to draw. The zero value (but for Start and End) draws an
// empty 800×400 chart saying "no data".
type Chart struct {
	// Title is drawn at the top, clipped to the width.
	Title string
	// Unit is a Grafana unit id that picks the y axis' tick format:
	// bytes, Bps, s, ms, percentunit, percent, reqps, ops; anything else
	// is a plain number with k/M/G suffixes.
	Unit string
	// Start and End are the x range; End after Start.
	Start, End time.Time
	// Step is the samples' spacing; a gap of more than twice it breaks a
	// line. 0 joins every pair of finite samples.
	Step time.Duration
	// Series are the lines: the first MaxSeries are drawn.
	Series []Series
	// Markers are the changes to mark; those outside [Start, End] are
	// left out.
	Markers []ChangeMarker
	// Width and Height in pixels: 0 means the default, others are clamped
	// to the limits.
	Width, Height int
}

var face = basicfont.Face7x13

const (
	charW    = 7  // the face's advance
	lineH    = 14 // a text line
	ascent   = 11 // the face's ascent
	pad      = 8
	swatchW  = 14
	legendGx = 16 // between legend columns
)

// Size is the image size the chart draws: Width×Height after defaults
// and limits.
func (c *Chart) Size() (w, h int) {
	w, h = c.Width, c.Height
	if w == 0 {
		w = DefaultWidth
	}
	if h == 0 {
		h = DefaultHeight
	}
	return min(max(w, MinWidth), MaxWidth), min(max(h, MinHeight), MaxHeight)
}

// layout is where things go, computed once per draw.
type layout struct {
	w, h         int
	plot         image.Rectangle // the plotting area, lines and markers inside
	legendTop    int
	legendCols   int
	legendColW   int
	shown        int // series drawn
	ylo, yhi     float64
	yticks       []float64
	hasData      bool
	start, end   int64 // ms
	markerRowTop int
}

func (c *Chart) layout() layout {
	var l layout
	l.w, l.h = c.Size()
	l.start, l.end = c.Start.UnixMilli(), c.End.UnixMilli()
	if l.end <= l.start {
		l.end = l.start + 1
	}
	l.shown = min(len(c.Series), MaxSeries)
	// The legend: as many columns of equal width as fit 24 characters.
	entries := l.shown
	if len(c.Series) > l.shown {
		entries++ // "+N more series"
	}
	l.legendCols = max(1, (l.w-2*pad)/(swatchW+4+24*charW+legendGx))
	l.legendColW = (l.w - 2*pad) / l.legendCols
	rows := (entries + l.legendCols - 1) / l.legendCols
	l.legendTop = l.h - pad - rows*lineH
	// The y range over the drawn series' finite samples.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range c.Series[:l.shown] {
		for _, p := range s.Points {
			if finite(p.V) {
				lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
			}
		}
	}
	l.hasData = lo <= hi
	left := pad
	if l.hasData {
		l.ylo, l.yhi, l.yticks = unitRange(lo, hi, c.Unit)
		for _, v := range l.yticks {
			left = max(left, pad+textWidth(formatValue(v, c.Unit, l.yticks))+6)
		}
	}
	top := pad + lineH + 4 // the title
	l.markerRowTop = top
	if len(c.Markers) > 0 {
		top += 2 * lineH // two rows of marker labels
	}
	bottom := l.legendTop - lineH - 8 // the x labels above the legend
	l.plot = image.Rect(left, top+4, l.w-pad-charW, max(bottom, top+24))
	return l
}

// Plot returns the plotting area: lines and markers are drawn inside it.
func (c *Chart) Plot() image.Rectangle { return c.layout().plot }

// X returns the column of time t (which may lie outside the plot).
func (c *Chart) X(t time.Time) int { l := c.layout(); return l.x(t.UnixMilli()) }

func (l *layout) x(ms int64) int {
	f := float64(ms-l.start) / float64(l.end-l.start)
	return l.plot.Min.X + int(math.Round(f*float64(l.plot.Dx()-1)))
}

func (l *layout) y(v float64) int {
	f := (v - l.ylo) / (l.yhi - l.ylo)
	return l.plot.Max.Y - 1 - int(math.Round(f*float64(l.plot.Dy()-1)))
}

// Draw draws the chart.
func (c *Chart) Draw() *image.RGBA {
	l := c.layout()
	img := image.NewRGBA(image.Rect(0, 0, l.w, l.h))
	draw.Draw(img, img.Bounds(), image.NewUniform(Background), image.Point{}, draw.Src)
	drawText(img, pad, pad, l.w-pad, c.Title, Text)

	// Grid and axes.
	for _, v := range l.yticks {
		y := l.y(v)
		hline(img, l.plot.Min.X, l.plot.Max.X, y, Grid)
		s := formatValue(v, c.Unit, l.yticks)
		drawText(img, l.plot.Min.X-6-textWidth(s), y-lineH/2, l.plot.Min.X, s, Text)
	}
	for _, ms := range timeTicks(l.start, l.end, max(2, l.plot.Dx()/110)) {
		x := l.x(ms)
		vline(img, x, l.plot.Min.Y, l.plot.Max.Y, Grid)
		s := formatTime(ms, l.end-l.start)
		tx := min(max(x-textWidth(s)/2, 0), l.w-textWidth(s))
		drawText(img, tx, l.plot.Max.Y+4, l.w, s, Text)
	}
	hline(img, l.plot.Min.X, l.plot.Max.X, l.plot.Max.Y-1, Axis)
	vline(img, l.plot.Min.X, l.plot.Min.Y, l.plot.Max.Y, Axis)
	utc := "UTC"
	drawText(img, l.w-pad-textWidth(utc), l.plot.Max.Y+4+lineH, l.w, utc, Axis)

	// The lines.
	clip := img.SubImage(l.plot).(*image.RGBA)
	gap := int64(0)
	if c.Step > 0 {
		gap = 2 * c.Step.Milliseconds()
	}
	for i, s := range c.Series[:l.shown] {
		col := Palette[i]
		havePrev := false
		var px, py int
		var pt int64
		for _, p := range s.Points {
			if !finite(p.V) || p.T < l.start || p.T > l.end {
				havePrev = false
				continue
			}
			x, y := l.x(p.T), l.y(p.V)
			if havePrev && (gap == 0 || p.T-pt <= gap) {
				thickLine(clip, px, py, x, y, col)
			} else {
				thickLine(clip, x, y, x, y, col)
			}
			px, py, pt, havePrev = x, y, p.T, true
		}
	}
	if !l.hasData {
		msg := "no data"
		cx, cy := (l.plot.Min.X+l.plot.Max.X)/2, (l.plot.Min.Y+l.plot.Max.Y)/2
		drawText(img, cx-textWidth(msg)/2, cy-lineH/2, l.w, msg, Text)
	}

	// The change markers, over the lines; labels in two rows above the
	// plot, each starting at its line, left out where they would overlap.
	rowEnd := [2]int{-1, -1}
	for _, m := range c.Markers {
		ms := m.Time.UnixMilli()
		if ms < l.start || ms > l.end {
			continue
		}
		col := Marker
		if m.Bad {
			col = BadMarker
		}
		x := l.x(ms)
		vline(img, x, l.markerRowTop, l.plot.Max.Y, col)
		if x+1 < l.plot.Max.X {
			vline(img, x+1, l.plot.Min.Y, l.plot.Max.Y, col)
		}
		label := clipText(m.Label, 24)
		tw := textWidth(label)
		tx := min(x+3, l.w-tw)
		for r := range rowEnd {
			if tx > rowEnd[r] {
				drawText(img, tx, l.markerRowTop+r*lineH, l.w, label, col)
				rowEnd[r] = tx + tw + charW
				break
			}
		}
	}

	// The legend.
	for i := 0; i < l.shown || i == l.shown && len(c.Series) > l.shown; i++ {
		x := pad + (i%l.legendCols)*l.legendColW
		y := l.legendTop + (i/l.legendCols)*lineH
		if i == l.shown {
			drawText(img, x, y, l.w, "+"+itoa(len(c.Series)-l.shown)+" more series not drawn", Text)
			break
		}
		draw.Draw(img, image.Rect(x, y+4, x+swatchW, y+8), image.NewUniform(Palette[i]), image.Point{}, draw.Src)
		lx := x + swatchW + 4
		label := c.Series[i].Label
		if label == "" {
			label = "{}"
		}
		maxChars := (l.legendColW - swatchW - 4 - legendGx) / charW
		drawText(img, lx, y, x+l.legendColW-legendGx/2, clipText(label, maxChars), Text)
	}
	return img
}

// WritePNG draws the chart and encodes it as PNG to w.
func (c *Chart) WritePNG(w io.Writer) error {
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	return enc.Encode(w, c.Draw())
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func itoa(n int) string { return formatFixed(float64(n), 0) }

// drawText draws s with its top-left at (x, y), clipped at maxX.
func drawText(img *image.RGBA, x, y, maxX int, s string, col color.Color) {
	dst := img.SubImage(image.Rect(0, 0, maxX, img.Bounds().Max.Y)).(*image.RGBA)
	d := font.Drawer{Dst: dst, Src: image.NewUniform(col), Face: face, Dot: fixed.P(x, y+ascent)}
	d.DrawString(printable(s))
}

// printable replaces what the face has no glyph for with '?'.
func printable(s string) string {
	ok := true
	for _, r := range s {
		if _, has := face.GlyphAdvance(r); !has {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if _, has := face.GlyphAdvance(r); !has {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func textWidth(s string) int { return utf8.RuneCountInString(s) * charW }

// clipText shortens s to n characters, ending it with "..." when cut.
func clipText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 3 {
		return string([]rune(s)[:max(n, 0)])
	}
	return string([]rune(s)[:n-3]) + "..."
}

func hline(img *image.RGBA, x0, x1, y int, col color.RGBA) {
	for x := x0; x < x1; x++ {
		img.SetRGBA(x, y, col)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, col color.RGBA) {
	for y := y0; y < y1; y++ {
		img.SetRGBA(x, y, col)
	}
}

// thickLine draws a 2-pixel line from (x0, y0) to (x1, y1) (Bresenham,
// each point with the pixel right and below), clipped to img's bounds.
func thickLine(img *image.RGBA, x0, y0, x1, y1 int, col color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	r := img.Bounds()
	set := func(x, y int) {
		if (image.Point{x, y}).In(r) {
			img.SetRGBA(x, y, col)
		}
	}
	for {
		set(x0, y0)
		set(x0+1, y0)
		set(x0, y0+1)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
