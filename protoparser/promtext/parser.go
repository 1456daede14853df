// Package promtext parses and writes the Prometheus text exposition format
// 0.0.4: what /metrics endpoints serve and what VictoriaMetrics/metrics
// pushes. It also accepts what OpenMetrics text adds (# UNIT, # EOF,
// exemplars after " # ", _created series, float-second timestamps when
// Parser.OpenMetrics is set) and the quoted UTF-8 metric and label names of
// Prometheus 3 ({"my.metric", "label.name"="v"}).
//
// Parser.Parse fills a samples.Batch without allocating once the Batch has
// grown: names and values alias the input, and the few values with escape
// sequences are unescaped into Batch.KeyBuf. Each sample line becomes one
// series with one sample, labels in the order of the text (the metric name
// first as __name__, then Parser.ExtraLabels last). The parser does not sort
// labels or reject duplicate names: that is the ingest path's job.
//
// Series keys (samples.Series): without extra labels, the raw name{labels}
// text of the line, aliasing the input; it begins with a metric-name
// character or '{'. With extra labels, 0x03, the number of extra labels and
// each extra name and value (varint length-prefixed), then the raw text, in
// Batch.KeyBuf. Neither form can be mistaken for a key of another Telltale
// format (remote write keys begin with 0x0a or 0x02, Influx keys with 0x04).
//
// Errors name the 1-based line number and the offending text.
package promtext

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/telltale-dev/telltale/protoparser/internal/excerpt"
	"github.com/telltale-dev/telltale/protoparser/internal/numparse"
	"github.com/telltale-dev/telltale/samples"
)

// Parser parses Prometheus text exposition bodies. The zero value is ready
// for use. A Parser is not safe for concurrent use; keep one per goroutine
// (or in a sync.Pool) and reuse it.
type Parser struct {
	// ExtraLabels are added to every series, after the labels of the text.
	// An extra label replaces a label of the same name from the text.
	ExtraLabels []samples.Label
	// OpenMetrics makes the parser read timestamps as float seconds, as
	// OpenMetrics specifies, and skip the _created series of counters,
	// histograms and summaries, as Prometheus does. Set it when the body's
	// Content-Type is application/openmetrics-text. Without it timestamps
	// are integer milliseconds, as in the 0.0.4 format.
	OpenMetrics bool

	meta      map[string]int // family name -> index in dst.Metadata, per Parse
	keyPrefix []byte         // key prefix for ExtraLabels, per Parse
	family    string         // the family of the last # TYPE line
	familyTyp string
}

// nameChar[c] has bit 1 set for the characters of legacy metric names
// [a-zA-Z0-9_:] and bit 2 for those of label names [a-zA-Z0-9_].
var nameChar = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = 3, 3
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 3
	}
	t['_'] = 3
	t[':'] = 1
	return t
}()

// Parse appends the samples and metadata of data to dst. Samples without a
// timestamp get defaultTimestamp (milliseconds since the Unix epoch). On
// error dst may hold part of the body; the caller should Reset it.
func (p *Parser) Parse(data []byte, defaultTimestamp int64, dst *samples.Batch) error {
	p.keyPrefix = p.keyPrefix[:0]
	if len(p.ExtraLabels) > 0 {
		p.keyPrefix = append(p.keyPrefix, 3)
		p.keyPrefix = binary.AppendUvarint(p.keyPrefix, uint64(len(p.ExtraLabels)))
		for _, l := range p.ExtraLabels {
			p.keyPrefix = appendString(p.keyPrefix, l.Name)
			p.keyPrefix = appendString(p.keyPrefix, l.Value)
		}
	}
	p.family, p.familyTyp = "", ""
	err := p.parse(data, defaultTimestamp, dst)
	clear(p.meta) // drop references into data
	p.family = ""
	return err
}

func (p *Parser) parse(data []byte, defaultTimestamp int64, dst *samples.Batch) error {
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if n := bytes.IndexByte(data, '\n'); n >= 0 {
			line, data = data[:n], data[n+1:]
		} else {
			line, data = data, nil
		}
		i := skipSpace(line, 0)
		if i == len(line) {
			continue
		}
		if line[i] == '#' {
			eof, err := p.parseComment(line[i:], dst)
			if err != nil {
				return fmt.Errorf("line %d: %w", lineNo, err)
			}
			if eof {
				return nil
			}
			continue
		}
		if err := p.parseSample(line[i:], defaultTimestamp, dst); err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// parseSample parses a sample line; s starts at its first non-space byte.
func (p *Parser) parseSample(s []byte, defaultTimestamp int64, dst *samples.Batch) error {
	dst.StartSeries(nil)
	si := len(dst.Series) - 1
	labelsStart := len(dst.Labels)
	// The name goes first; its value is set once known (it may be quoted
	// inside the braces).
	dst.Labels = append(dst.Labels, samples.Label{Name: "__name__"})

	var name string
	i, keyEnd := 0, 0
	if s[0] == '{' {
		var err error
		if i, name, err = p.parseLabels(s, 1, "", dst); err != nil {
			return err
		}
		keyEnd = i
	} else {
		for i < len(s) && nameChar[s[i]] != 0 {
			i++
		}
		if i == 0 || s[0] >= '0' && s[0] <= '9' {
			return fmt.Errorf("invalid metric name at %s: want [a-zA-Z_:][a-zA-Z0-9_:]*, or a quoted name in braces such as {\"my.metric\"}", excerpt.Quote(s))
		}
		name = bytesToString(s[:i])
		keyEnd = i
		j := skipSpace(s, i)
		if j < len(s) && s[j] == '{' {
			var err error
			if i, _, err = p.parseLabels(s, j+1, name, dst); err != nil {
				return err
			}
			keyEnd = i
		} else if j == i && i < len(s) {
			return fmt.Errorf("invalid character %q after metric name %q in %s", s[i], name, excerpt.Quote(s))
		}
	}
	if name == "" {
		return fmt.Errorf("metric name missing in %s: put it before the braces or quoted inside them, as {\"my.metric\", a=\"b\"}", excerpt.Quote(s))
	}
	if p.overridden("__name__") {
		copy(dst.Labels[labelsStart:], dst.Labels[labelsStart+1:])
		dst.Labels = dst.Labels[:len(dst.Labels)-1]
	} else {
		dst.Labels[labelsStart].Value = name
	}
	dst.Labels = append(dst.Labels, p.ExtraLabels...)

	// Value.
	i = skipSpace(s, i)
	start := i
	for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' {
		i++
	}
	if start == i {
		return fmt.Errorf("metric %q has no value: want a line like %s 1.5", name, bytesToString(s[:keyEnd]))
	}
	v, err := numparse.ParseFloat(s[start:i])
	if err != nil {
		if errors.Is(err, numparse.ErrRange) {
			return fmt.Errorf("value %s of metric %q is out of the float64 range", excerpt.Quote(s[start:i]), name)
		}
		return fmt.Errorf("cannot parse value %s of metric %q: want a float such as 1.5, NaN or +Inf", excerpt.Quote(s[start:i]), name)
	}

	// Optional timestamp, then an optional exemplar (" # {trace_id=...} 1"),
	// which is skipped.
	t := defaultTimestamp
	i = skipSpace(s, i)
	if i < len(s) && s[i] != '#' {
		start = i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' {
			i++
		}
		if t, err = p.parseTimestamp(s[start:i], name); err != nil {
			return err
		}
		i = skipSpace(s, i)
		if i < len(s) && s[i] != '#' {
			return fmt.Errorf("unexpected text %s after the sample of metric %q: want name{labels} value [timestamp]", excerpt.Quote(s[i:]), name)
		}
	}

	if p.OpenMetrics && p.isCreated(name) {
		dst.Labels = dst.Labels[:labelsStart]
		dst.Series = dst.Series[:si]
		return nil
	}
	ser := &dst.Series[si]
	ser.LabelsEnd = int32(len(dst.Labels))
	dst.Samples = append(dst.Samples, samples.Sample{T: t, V: v})
	ser.SamplesEnd = int32(len(dst.Samples))
	if len(p.keyPrefix) == 0 {
		ser.Key = s[:keyEnd:keyEnd]
	} else {
		n := len(dst.KeyBuf)
		dst.KeyBuf = append(append(dst.KeyBuf, p.keyPrefix...), s[:keyEnd]...)
		ser.Key = dst.KeyBuf[n:len(dst.KeyBuf):len(dst.KeyBuf)]
	}
	return nil
}

// overridden reports whether an extra label named name replaces the text's.
func (p *Parser) overridden(name string) bool {
	for i := range p.ExtraLabels {
		if p.ExtraLabels[i].Name == name {
			return true
		}
	}
	return false
}

// isCreated reports whether name is the _created series of the current
// counter, histogram or summary family (OpenMetrics only).
func (p *Parser) isCreated(name string) bool {
	switch p.familyTyp {
	case "counter", "histogram", "gaugehistogram", "summary":
		return len(name) == len(p.family)+len("_created") && name[:len(p.family)] == p.family && name[len(p.family):] == "_created"
	}
	return false
}

func (p *Parser) parseTimestamp(b []byte, name string) (int64, error) {
	if p.OpenMetrics {
		f, err := numparse.ParseFloat(b)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64/1000 {
			return 0, fmt.Errorf("cannot parse timestamp %s of metric %q: want seconds since the Unix epoch such as 1700000000.123 (OpenMetrics)", excerpt.Quote(b), name)
		}
		return int64(math.Round(f * 1000)), nil
	}
	t, err := numparse.ParseInt(b)
	if err != nil {
		return 0, fmt.Errorf("cannot parse timestamp %s of metric %q: want integer milliseconds since the Unix epoch such as 1700000000123 "+
			"(an OpenMetrics body, with timestamps in seconds, must be sent with Content-Type application/openmetrics-text)", excerpt.Quote(b), name)
	}
	return t, nil
}

// parseLabels parses the label set after '{' at s[i:] and returns the index
// after '}'. A quoted string that is not followed by '=' is the metric name.
func (p *Parser) parseLabels(s []byte, i int, name string, dst *samples.Batch) (int, string, error) {
	for {
		i = skipSpace(s, i)
		if i == len(s) {
			return 0, "", fmt.Errorf("missing '}' at the end of the labels of %s", excerpt.Quote(s))
		}
		if s[i] == '}' {
			return i + 1, name, nil
		}
		var lname string
		if s[i] == '"' {
			str, next, err := unquote(s, i, dst)
			if err != nil {
				return 0, "", fmt.Errorf("%w in the labels of %s", err, excerpt.Quote(s))
			}
			i = skipSpace(s, next)
			if i < len(s) && (s[i] == ',' || s[i] == '}') {
				// {"my.metric", ...}: the metric name.
				if name != "" {
					return 0, "", fmt.Errorf("metric name given twice (%q and %q) in %s", name, str, excerpt.Quote(s))
				}
				if str == "" {
					return 0, "", fmt.Errorf("empty metric name in %s", excerpt.Quote(s))
				}
				name = str
				if s[i] == ',' {
					i++
				}
				continue
			}
			lname = str
			if lname == "" {
				return 0, "", fmt.Errorf("empty label name in %s", excerpt.Quote(s))
			}
		} else {
			start := i
			for i < len(s) && nameChar[s[i]]&2 != 0 {
				i++
			}
			if i == start || s[start] >= '0' && s[start] <= '9' {
				return 0, "", fmt.Errorf("invalid label name at %s: want [a-zA-Z_][a-zA-Z0-9_]*, or a quoted name such as \"my.label\"", excerpt.Quote(s[start:]))
			}
			lname = bytesToString(s[start:i])
			i = skipSpace(s, i)
		}
		if i == len(s) || s[i] != '=' {
			return 0, "", fmt.Errorf("missing '=' after label name %q in %s", lname, excerpt.Quote(s))
		}
		i = skipSpace(s, i+1)
		if i == len(s) || s[i] != '"' {
			return 0, "", fmt.Errorf("value of label %q must be in double quotes in %s", lname, excerpt.Quote(s))
		}
		value, next, err := unquote(s, i, dst)
		if err != nil {
			return 0, "", fmt.Errorf("%w: value of label %q in %s", err, lname, excerpt.Quote(s))
		}
		if !p.overridden(lname) {
			dst.Labels = append(dst.Labels, samples.Label{Name: lname, Value: value})
		}
		i = skipSpace(s, next)
		if i < len(s) && s[i] == ',' {
			i++
			continue
		}
		if i < len(s) && s[i] == '}' {
			return i + 1, name, nil
		}
		if i == len(s) {
			return 0, "", fmt.Errorf("missing '}' at the end of the labels of %s", excerpt.Quote(s))
		}
		return 0, "", fmt.Errorf("want ',' or '}' after label %q, got %s", lname, excerpt.Quote(s[i:]))
	}
}

// unquote reads the double-quoted string at s[i] (s[i] == '"') and returns
// it and the index after the closing quote. \\, \" and \n are unescaped,
// into dst.KeyBuf; any other backslash is kept as it is.
func unquote(s []byte, i int, dst *samples.Batch) (string, int, error) {
	i++
	start := i
	for i < len(s) {
		c := s[i]
		if c == '"' {
			return bytesToString(s[start:i]), i + 1, nil
		}
		if c == '\\' {
			break
		}
		i++
	}
	if i == len(s) {
		return "", 0, fmt.Errorf("missing closing '\"'")
	}
	// Slow path: escapes.
	n := len(dst.KeyBuf)
	buf := append(dst.KeyBuf, s[start:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			dst.KeyBuf = buf
			return bytesToString(buf[n:len(buf):len(buf)]), i + 1, nil
		case c == '\\' && i+1 < len(s):
			switch s[i+1] {
			case '\\':
				buf = append(buf, '\\')
			case '"':
				buf = append(buf, '"')
			case 'n':
				buf = append(buf, '\n')
			default:
				buf = append(buf, '\\', s[i+1])
			}
			i += 2
		default:
			buf = append(buf, c)
			i++
		}
	}
	dst.KeyBuf = buf[:n] // drop the partial value
	return "", 0, fmt.Errorf("missing closing '\"'")
}

// metricTypes maps the type words of # TYPE lines to samples.Metadata types.
var metricTypes = map[string]string{
	"counter": "counter", "gauge": "gauge", "histogram": "histogram", "gaugehistogram": "gaugehistogram",
	"summary": "summary", "info": "info", "stateset": "stateset", "unknown": "unknown", "untyped": "unknown",
}

// parseComment handles a line starting with '#': # HELP, # TYPE, # UNIT and
// # EOF; anything else is a comment. eof is true for # EOF.
func (p *Parser) parseComment(s []byte, dst *samples.Batch) (eof bool, err error) {
	i := skipSpace(s, 1)
	start := i
	for i < len(s) && s[i] >= 'A' && s[i] <= 'Z' {
		i++
	}
	kw := bytesToString(s[start:i])
	if i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' {
		return false, nil // "# HELPER ..." is a comment
	}
	switch kw {
	case "EOF":
		return true, nil
	case "HELP", "TYPE", "UNIT":
	default:
		return false, nil
	}
	i = skipSpace(s, i)
	var name string
	if i < len(s) && s[i] == '"' {
		str, next, err := unquote(s, i, dst)
		if err != nil {
			return false, fmt.Errorf("%w in the metric name of %s", err, excerpt.Quote(s))
		}
		if str == "" {
			return false, fmt.Errorf("empty metric name in %s", excerpt.Quote(s))
		}
		name, i = str, next
	} else {
		start := i
		for i < len(s) && nameChar[s[i]] != 0 {
			i++
		}
		if i == start || s[start] >= '0' && s[start] <= '9' {
			return false, fmt.Errorf("invalid metric name in %s: want # %s name ..., the name matching [a-zA-Z_:][a-zA-Z0-9_:]* or quoted", excerpt.Quote(s), kw)
		}
		name = bytesToString(s[start:i])
	}
	if i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' {
		return false, fmt.Errorf("want a space after the metric name in %s", excerpt.Quote(s))
	}
	i = skipSpace(s, i)
	rest := s[i:]
	md := p.metadata(name, dst)
	switch kw {
	case "HELP":
		md.Help = unescapeHelp(rest, p.OpenMetrics, dst)
	case "TYPE":
		rest = bytes.TrimRight(rest, " \t\r")
		typ, ok := metricTypes[string(rest)]
		if !ok {
			return false, fmt.Errorf("unknown metric type %s in %s: want counter, gauge, histogram, summary, untyped (or an OpenMetrics type)", excerpt.Quote(rest), excerpt.Quote(s))
		}
		md.Type = typ
		p.family, p.familyTyp = name, typ
	case "UNIT":
		md.Unit = bytesToString(bytes.TrimRight(rest, " \t\r"))
	}
	return false, nil
}

// metadata returns the entry of dst.Metadata for family name, adding it the
// first time the family is seen in this Parse call.
func (p *Parser) metadata(name string, dst *samples.Batch) *samples.Metadata {
	if p.meta == nil {
		p.meta = make(map[string]int)
	}
	i, ok := p.meta[name]
	if !ok {
		i = len(dst.Metadata)
		dst.Metadata = append(dst.Metadata, samples.Metadata{Name: name})
		p.meta[name] = i
	}
	return &dst.Metadata[i]
}

// unescapeHelp unescapes \\ and \n (and \" for OpenMetrics) in help text.
func unescapeHelp(b []byte, openMetrics bool, dst *samples.Batch) string {
	b = bytes.TrimRight(b, "\r")
	if bytes.IndexByte(b, '\\') < 0 {
		return bytesToString(b)
	}
	n := len(dst.KeyBuf)
	buf := dst.KeyBuf
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			switch {
			case b[i+1] == '\\':
				buf = append(buf, '\\')
				i++
				continue
			case b[i+1] == 'n':
				buf = append(buf, '\n')
				i++
				continue
			case b[i+1] == '"' && openMetrics:
				buf = append(buf, '"')
				i++
				continue
			}
		}
		buf = append(buf, b[i])
	}
	dst.KeyBuf = buf
	return bytesToString(buf[n:len(buf):len(buf)])
}

func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
