package client

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/telltale-dev/telltale/collector/tail"
)

// ANSI styles used when Printer.Color is set.
const (
	styleReset  = "\x1b[0m"
	styleDim    = "\x1b[2m"
	styleBold   = "\x1b[1m"
	styleValue  = "\x1b[36m"   // cyan
	styleDeploy = "\x1b[1;33m" // bold yellow
	styleNotice = "\x1b[33m"   // yellow
)

// maxSeriesWidth caps the series column; longer series push their value
// right instead of widening every line.
const maxSeriesWidth = 100

// Printer renders live-tail messages for people: one line per sample
// (time, series, value; a native histogram as count=, sum= and its number
// of non-empty buckets) with the series column aligned, deploy events
// highlighted, and notices on Err. It is not safe for concurrent use.
type Printer struct {
	// Out receives samples and deploy events.
	Out io.Writer
	// Err receives subscription and notice lines; nil means Out.
	Err io.Writer
	// Color turns on ANSI colours (for terminals).
	Color bool
	// Location is the time zone times are shown in; nil means time.Local.
	Location *time.Location

	width int // current width of the series column
	buf   []byte
}

// Print renders m.
func (p *Printer) Print(m tail.Message) error {
	p.buf = p.buf[:0]
	errOut := p.Err
	if errOut == nil {
		errOut = p.Out
	}
	switch m.Type {
	case tail.TypeSamples:
		for _, s := range m.Samples {
			p.appendSample(s)
		}
		_, err := p.Out.Write(p.buf)
		return err
	case tail.TypeDeploy, tail.TypeChange:
		p.appendDeploy(m)
		_, err := p.Out.Write(p.buf)
		return err
	case tail.TypeSubscribed:
		rate := ""
		if m.MaxRate > 0 {
			rate = fmt.Sprintf(", at most %g samples/s", m.MaxRate)
		}
		_, err := fmt.Fprintf(errOut, "tail: subscribed to %s%s\n", printable(strings.Join(m.Selectors, " or ")), rate)
		return err
	case tail.TypeNotice:
		var what string
		switch m.Notice {
		case tail.NoticeDropped:
			what = fmt.Sprintf("MISSED %d messages (%d samples): %s", m.DroppedMessages, m.DroppedSamples, m.Text)
		case tail.NoticeThinned:
			what = fmt.Sprintf("thinned %d samples: %s", m.ThinnedSamples, m.Text)
		default:
			what = m.Notice + ": " + m.Text
		}
		_, err := fmt.Fprintln(errOut, "tail: "+p.style(styleNotice, printable(what)))
		return err
	}
	return nil // a newer server's message type: skip it
}

func (p *Printer) loc() *time.Location {
	if p.Location == nil {
		return time.Local
	}
	return p.Location
}

func (p *Printer) appendTime(ms int64) {
	t := time.UnixMilli(ms).In(p.loc())
	if p.Color {
		p.buf = append(p.buf, styleDim...)
	}
	p.buf = t.AppendFormat(p.buf, "15:04:05.000")
	if p.Color {
		p.buf = append(p.buf, styleReset...)
	}
	p.buf = append(p.buf, "  "...)
}

func (p *Printer) appendSample(s tail.Sample) {
	p.appendTime(s.T)
	series := printable(tail.SeriesString(s.Labels))
	n := utf8.RuneCountInString(series)
	if n > p.width && n <= maxSeriesWidth {
		p.width = n
	}
	name := printable(s.Labels["__name__"])
	if p.Color && strings.HasPrefix(series, name) {
		p.buf = append(p.buf, styleBold...)
		p.buf = append(p.buf, name...)
		p.buf = append(p.buf, styleReset...)
		p.buf = append(p.buf, series[len(name):]...)
	} else {
		p.buf = append(p.buf, series...)
	}
	for i := n; i < p.width; i++ {
		p.buf = append(p.buf, ' ')
	}
	p.buf = append(p.buf, "  "...)
	if p.Color {
		p.buf = append(p.buf, styleValue...)
	}
	if s.H != nil {
		p.appendHistogram(s.H)
	} else {
		p.buf = append(p.buf, formatValue(float64(s.V))...)
	}
	if p.Color {
		p.buf = append(p.buf, styleReset...)
	}
	p.buf = append(p.buf, '\n')
}

// appendHistogram renders a native histogram sample on one line as
// count=11 sum=20 buckets=4 (the non-empty buckets).
func (p *Printer) appendHistogram(h *tail.Histogram) {
	p.buf = append(p.buf, "count="...)
	p.buf = append(p.buf, formatValue(float64(h.Count))...)
	p.buf = append(p.buf, " sum="...)
	p.buf = append(p.buf, formatValue(float64(h.Sum))...)
	p.buf = append(p.buf, " buckets="...)
	p.buf = strconv.AppendInt(p.buf, int64(len(h.Buckets)), 10)
}

func formatValue(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// appendDeploy renders a deploy (or a change of another kind) as one
// highlighted line:
// time  DEPLOY service version (env) status by who: message  link
// time  SWITCH slow_checkout on demo (env) by who: reason
// An event without the change log's usual fields is shown as its JSON.
func (p *Printer) appendDeploy(m tail.Message) {
	raw, label := m.Deploy, "DEPLOY"
	if m.Type == tail.TypeChange {
		raw, label = m.Change, "CHANGE"
	}
	var d map[string]any
	_ = json.Unmarshal(raw, &d)
	str := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := d[k].(string); ok && v != "" {
				return v
			}
		}
		return ""
	}
	ms := m.Time
	if ts := str("time"); ts != "" {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			ms = t.UnixMilli()
		}
	}
	var parts []string
	add := func(format, v string) {
		if v != "" {
			parts = append(parts, fmt.Sprintf(format, v))
		}
	}
	if k := str("kind"); k != "" && m.Type == tail.TypeChange {
		label = strings.ToUpper(k)
	}
	add("%s", str("subject"))
	if f, ok := d["fields"].(map[string]any); ok {
		if st, ok := f["state"].(string); ok {
			add("%s", st)
		}
	}
	add("%s", str("service", "app"))
	version := str("version")
	if version == "" {
		version = str("commit")
		if len(version) > 12 {
			version = version[:12]
		}
	}
	add("%s", version)
	add("(%s)", str("env", "environment"))
	if st := str("status"); st != "" && st != "success" {
		add("[%s]", st)
	}
	add("by %s", str("who", "author", "user"))
	msg := str("message", "description")
	line := strings.Join(parts, " ")
	if msg != "" {
		line += ": " + msg
	}
	if link := str("link", "url"); link != "" {
		line += "  " + link
	}
	if len(parts) == 0 && msg == "" {
		line = string(raw)
	}
	p.appendTime(ms)
	p.buf = append(p.buf, p.style(styleDeploy, "▶ "+printable(label)+" "+printable(line))...)
	p.buf = append(p.buf, '\n')
}

func (p *Printer) style(style, s string) string {
	if !p.Color {
		return s
	}
	return style + s + styleReset
}

// printable replaces control characters, so text from the network cannot
// move the cursor or change the terminal's colours.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}
