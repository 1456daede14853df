package report

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/telltale-dev/telltale/bench/peer"
)

var peerColors = map[peer.Kind]color.Color{
	peer.VictoriaMetrics: color.RGBA{R: 0x5b, G: 0x3f, B: 0xa8, A: 0xff},
	peer.Prometheus:      color.RGBA{R: 0xe6, G: 0x52, B: 0x2c, A: 0xff},
	peer.NodeExporter:    color.RGBA{R: 0x2a, G: 0x8c, B: 0x55, A: 0xff},
}

// Chart draws one horizontal bar per comparison: how many times better
// Telltale is than the peer on a log2 axis (right of 1×: Telltale better;
// left: behind), grouped and coloured by peer, and saves it as PNG.
func (r *Report) Chart(file string) error {
	cs := r.Comparisons()
	if len(cs) == 0 {
		return errors.New("no comparisons to chart: no scenario has figures for Telltale and a peer")
	}
	// Group by peer so each peer's bars are one BarChart at consecutive rows;
	// gonum draws row 0 at the bottom, so reverse for top-down reading.
	var peers []peer.Kind
	for _, c := range cs {
		if !slices.Contains(peers, c.Peer) {
			peers = append(peers, c.Peer)
		}
	}
	var rows []Comparison
	for _, p := range peers {
		for _, c := range cs {
			if c.Peer == p {
				rows = append(rows, c)
			}
		}
	}
	slices.Reverse(rows)

	p := plot.New()
	p.Title.Text = "Telltale vs peers: × better (right) or worse (left), medians"
	p.X.Label.Text = fmt.Sprintf("log2 scale · %s · loadavg %s → %s", r.Machine, r.Machine.LoadStart, r.Machine.LoadEnd)
	p.X.Label.TextStyle.Font.Size = vg.Points(8)
	names := make([]string, len(rows))
	var lo, hi float64
	for i, c := range rows {
		names[i] = fmt.Sprintf("%s: %s vs %s", c.Scenario, c.Label, c.Peer.Title())
		v := math.Log2(c.Advantage)
		lo, hi = min(lo, v), max(hi, v)
	}
	p.NominalY(names...)
	p.Y.Tick.Label.Font.Size = vg.Points(8)
	for _, pk := range slices.Backward(peers) {
		var vals plotter.Values
		first := -1
		for i, c := range rows {
			if c.Peer == pk {
				if first < 0 {
					first = i
				}
				vals = append(vals, math.Log2(c.Advantage))
			}
		}
		bc, err := plotter.NewBarChart(vals, vg.Points(9))
		if err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		bc.Horizontal = true
		bc.XMin = float64(first)
		bc.Color = peerColors[pk]
		bc.LineStyle.Width = 0
		p.Add(bc)
		p.Legend.Add(pk.Title(), bc)
	}
	var xys plotter.XYLabels
	for i, c := range rows {
		v := math.Log2(c.Advantage)
		text := fmt.Sprintf(" %.2g×", c.Advantage)
		if c.Advantage < 1 {
			text = fmt.Sprintf(" 1/%.2g×", 1/c.Advantage)
		}
		xys.XYs = append(xys.XYs, plotter.XY{X: max(v, 0), Y: float64(i)})
		xys.Labels = append(xys.Labels, text)
	}
	labels, err := plotter.NewLabels(xys)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].Font.Size = vg.Points(7)
		labels.TextStyle[i].YAlign = -0.5
	}
	p.Add(labels)
	one, err := plotter.NewLine(plotter.XYs{{X: 0, Y: -0.5}, {X: 0, Y: float64(len(rows)) - 0.5}})
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	one.LineStyle.Width = vg.Points(1)
	p.Add(one)
	lo, hi = math.Floor(lo)-0.5, math.Ceil(hi)+1
	p.X.Min, p.X.Max = lo, hi
	p.X.Tick.Marker = log2Ticks{}
	p.Legend.Top = false // bottom right, clear of the labels
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	height := vg.Length(len(rows))*vg.Points(16) + 2*vg.Inch
	if err := p.Save(11*vg.Inch, height, file); err != nil {
		return fmt.Errorf("cannot save chart: %w", err)
	}
	return nil
}

// log2Ticks labels a log2 axis with ×factors: ¼×, ½×, 1×, 2×, 4× ...
type log2Ticks struct{}

func (log2Ticks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Ceil(lo); e <= hi; e++ {
		label := fmt.Sprintf("%g×", math.Exp2(e))
		if e < 0 {
			label = fmt.Sprintf("1/%g×", math.Exp2(-e))
		}
		ts = append(ts, plot.Tick{Value: e, Label: label})
	}
	return ts
}
