// Package influx parses the InfluxDB line protocol (what Telegraf and the
// Influx clients send) into a samples.Batch, mapping it as VictoriaMetrics
// does: each numeric field of a line becomes a series named
// measurement_field (just measurement when the field is named "value"), the
// tags become labels, and integers, unsigned integers, floats and booleans
// (1 for true, 0 for false) become float samples. String fields have no
// float value: they are skipped and counted.
//
// Parse does not allocate once the Batch has grown: tags alias the input,
// and names built from the measurement and field, or unescaped, go into
// Batch.KeyBuf. Labels are in the order of the line (__name__ first, then
// the tags, then Parser.ExtraLabels); the parser does not sort them or
// reject duplicates: that is the ingest path's job.
//
// Series keys (samples.Series) are 0x04, the extra labels, the raw
// measurement-and-tags text of the line and the raw field key, each part
// varint length-prefixed, in Batch.KeyBuf; no other Telltale format's keys
// begin with 0x04.
//
// Errors name the 1-based line number and the offending text.
package influx

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

// ErrLineTooLong is wrapped by Parse's error for a line over MaxLineLen.
var ErrLineTooLong = errors.New("line too long")

// Stats counts what Parse read besides what it put into the Batch.
type Stats struct {
	// SkippedStrings is the number of string field values skipped.
	SkippedStrings int
}

// Parser parses line protocol bodies. The zero value is ready for use. A
// Parser is not safe for concurrent use; keep one per goroutine (or in a
// sync.Pool) and reuse it.
type Parser struct {
	// ExtraLabels are added to every series, after the tags. An extra label
	// replaces a tag of the same name (e.g. a db label from the query).
	ExtraLabels []samples.Label
	// MaxLineLen is the longest line accepted, in bytes; 0 means no limit.
	MaxLineLen int

	tags      []samples.Label
	fields    []field
	keyPrefix []byte
	extra     []byte
}

type field struct {
	key   []byte // raw, escaped
	value float64
}

// Parse appends the samples of data to dst. precision is the unit of the
// timestamps in data: ns (the default when empty), us, µs, ms, s, m or h,
// or the 1.x names n, u, ms, s, m, h. Lines without a timestamp get now
// (milliseconds since the Unix epoch). On error dst may hold part of the
// body; the caller should Reset it.
func (p *Parser) Parse(data []byte, precision string, now int64, dst *samples.Batch) (Stats, error) {
	var st Stats
	div, mul := int64(1), int64(1)
	switch precision {
	case "", "ns", "n":
		div = 1e6
	case "us", "u", "µs":
		div = 1e3
	case "ms":
	case "s":
		mul = 1e3
	case "m":
		mul = 60e3
	case "h":
		mul = 3600e3
	default:
		return st, fmt.Errorf("unknown precision %q: want ns, us, ms, s, m or h", precision)
	}
	p.extra = p.extra[:0]
	for _, l := range p.ExtraLabels {
		p.extra = appendString(p.extra, l.Name)
		p.extra = appendString(p.extra, l.Value)
	}
	p.keyPrefix = binary.AppendUvarint(append(p.keyPrefix[:0], 4), uint64(len(p.extra)))
	p.keyPrefix = append(p.keyPrefix, p.extra...)

	lineNo := 1
	for i := 0; i < len(data); {
		// Skip blank lines, leading space and comments.
		c := data[i]
		if c == '\n' {
			lineNo++
			i++
			continue
		}
		if c == ' ' || c == '\t' || c == '\r' {
			i++
			continue
		}
		if c == '#' {
			n := bytes.IndexByte(data[i:], '\n')
			if n < 0 {
				break
			}
			i += n
			continue
		}
		if p.MaxLineLen > 0 {
			n := bytes.IndexByte(data[i:], '\n')
			if n < 0 {
				n = len(data) - i
			}
			if n > p.MaxLineLen {
				return st, fmt.Errorf("line %d: %w: %d bytes, over the limit of %d bytes: send shorter lines (fewer fields or tags per line) or raise the limit", lineNo, ErrLineTooLong, n, p.MaxLineLen)
			}
		}
		next, lines, err := p.parseLine(data, i, div, mul, now, dst, &st)
		if err != nil {
			return st, fmt.Errorf("line %d: %w", lineNo, err)
		}
		if p.MaxLineLen > 0 && next-i > p.MaxLineLen {
			// A string field value spanned several physical lines.
			return st, fmt.Errorf("line %d: %w: %d bytes, over the limit of %d bytes: send shorter lines (fewer fields or tags per line) or raise the limit", lineNo, ErrLineTooLong, next-i, p.MaxLineLen)
		}
		lineNo += lines
		i = next
	}
	return st, nil
}

// scanName returns the index of the first unescaped byte of stop1/stop2/' '
// or '\n' in data[i:], or len(data). A backslash escapes the next byte.
func scanName(data []byte, i int, stop1, stop2 byte) int {
	for i < len(data) {
		c := data[i]
		if c == '\\' && i+1 < len(data) && data[i+1] != '\n' {
			i += 2
			continue
		}
		if c == stop1 || c == stop2 || c == ' ' || c == '\n' {
			return i
		}
		i++
	}
	return len(data)
}

// parseLine parses the line at data[start:] and returns the index of its
// end (its '\n' or len(data)) and the number of newlines inside string
// fields.
func (p *Parser) parseLine(data []byte, start int, div, mul, now int64, dst *samples.Batch, st *Stats) (int, int, error) {
	lineEnd := bytes.IndexByte(data[start:], '\n')
	if lineEnd < 0 {
		lineEnd = len(data)
	} else {
		lineEnd += start
	}
	line := data[start:lineEnd] // for messages; a string field may extend it

	// Measurement and tags.
	i := scanName(data, start, ',', ',')
	if i == start {
		return 0, 0, fmt.Errorf("missing measurement in %s", excerpt.Quote(line))
	}
	measurement := data[start:i]
	p.tags = p.tags[:0]
	for i < len(data) && data[i] == ',' {
		ks := i + 1
		i = scanName(data, ks, '=', ',')
		if i == len(data) || data[i] != '=' {
			return 0, 0, fmt.Errorf("tag %s has no '=' in %s: want tag=value", excerpt.Quote(data[ks:i]), excerpt.Quote(line))
		}
		key := data[ks:i]
		vs := i + 1
		i = scanName(data, vs, ',', ',')
		if len(key) == 0 {
			return 0, 0, fmt.Errorf("empty tag key in %s", excerpt.Quote(line))
		}
		if i == vs {
			return 0, 0, fmt.Errorf("tag %s has no value in %s: drop the tag or give it a value", excerpt.Quote(key), excerpt.Quote(line))
		}
		p.tags = append(p.tags, samples.Label{Name: unescape(key, dst), Value: unescape(data[vs:i], dst)})
	}
	series := data[start:i]
	if i == len(data) || data[i] != ' ' {
		return 0, 0, fmt.Errorf("missing fields in %s: want measurement[,tag=value...] field=value[,field=value...] [timestamp]", excerpt.Quote(line))
	}
	for i < len(data) && data[i] == ' ' {
		i++
	}

	// Fields.
	p.fields = p.fields[:0]
	newlines := 0
	for {
		ks := i
		i = scanName(data, ks, '=', ',')
		key := data[ks:i]
		if i == len(data) || data[i] != '=' {
			if len(key) == 0 {
				return 0, 0, fmt.Errorf("missing fields in %s: want measurement[,tag=value...] field=value[,field=value...] [timestamp]", excerpt.Quote(line))
			}
			return 0, 0, fmt.Errorf("field %s has no '=' in %s: want field=value", excerpt.Quote(key), excerpt.Quote(line))
		}
		if len(key) == 0 {
			return 0, 0, fmt.Errorf("empty field key in %s", excerpt.Quote(line))
		}
		i++
		if i < len(data) && data[i] == '"' {
			// String field: skipped, but it may hold escaped quotes,
			// commas, spaces and newlines.
			j := i + 1
			for j < len(data) && data[j] != '"' {
				if data[j] == '\\' && j+1 < len(data) {
					j++ // the escaped byte, maybe a newline
				}
				if data[j] == '\n' {
					newlines++
				}
				j++
			}
			if j >= len(data) {
				return 0, 0, fmt.Errorf("string value of field %s has no closing '\"' in %s", excerpt.Quote(key), excerpt.Quote(line))
			}
			i = j + 1
			st.SkippedStrings++
		} else {
			vs := i
			for i < len(data) && data[i] != ',' && data[i] != ' ' && data[i] != '\n' && data[i] != '\r' {
				i++
			}
			v, err := parseValue(data[vs:i])
			if err != nil {
				return 0, 0, fmt.Errorf("cannot parse value %s of field %s in %s: %w", excerpt.Quote(data[vs:i]), excerpt.Quote(key), excerpt.Quote(line), err)
			}
			p.fields = append(p.fields, field{key: key, value: v})
		}
		if i < len(data) && data[i] == ',' {
			i++
			continue
		}
		break
	}

	// Timestamp.
	t := now
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r') {
		i++
	}
	if i < len(data) && data[i] != '\n' {
		ts := i
		for i < len(data) && data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n' {
			i++
		}
		n, err := numparse.ParseInt(data[ts:i])
		if err != nil {
			return 0, 0, fmt.Errorf("cannot parse timestamp %s in %s: want an integer in the request's precision", excerpt.Quote(data[ts:i]), excerpt.Quote(line))
		}
		if mul > 1 && (n > math.MaxInt64/mul || n < math.MinInt64/mul) {
			return 0, 0, fmt.Errorf("timestamp %s in %s is out of range", excerpt.Quote(data[ts:i]), excerpt.Quote(line))
		}
		t = n / div * mul
		for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r') {
			i++
		}
		if i < len(data) && data[i] != '\n' {
			return 0, 0, fmt.Errorf("unexpected text %s after the timestamp in %s", excerpt.Quote(data[i:]), excerpt.Quote(line))
		}
	}

	p.emit(measurement, series, t, dst)
	return i, newlines, nil
}

// emit appends one series per field of the line.
func (p *Parser) emit(measurement, series []byte, t int64, dst *samples.Batch) {
	if len(p.fields) == 0 {
		return
	}
	meas := unescape(measurement, dst)
	for _, f := range p.fields {
		// Key.
		n := len(dst.KeyBuf)
		kb := append(dst.KeyBuf, p.keyPrefix...)
		kb = binary.AppendUvarint(kb, uint64(len(series)))
		kb = append(kb, series...)
		kb = append(kb, f.key...)
		dst.KeyBuf = kb
		key := kb[n:len(kb):len(kb)]

		// Name: measurement_field, or measurement for a field named value.
		var name string
		if string(f.key) == "value" {
			name = meas
		} else {
			n := len(dst.KeyBuf)
			kb := append(dst.KeyBuf, meas...)
			kb = append(kb, '_')
			kb = appendUnescaped(kb, f.key)
			dst.KeyBuf = kb
			name = unsafe.String(&kb[n], len(kb)-n)
		}

		dst.StartSeries(key)
		s := &dst.Series[len(dst.Series)-1]
		if !p.overridden("__name__") {
			dst.Labels = append(dst.Labels, samples.Label{Name: "__name__", Value: name})
		}
		for _, l := range p.tags {
			if !p.overridden(l.Name) {
				dst.Labels = append(dst.Labels, l)
			}
		}
		dst.Labels = append(dst.Labels, p.ExtraLabels...)
		s.LabelsEnd = int32(len(dst.Labels))
		dst.Samples = append(dst.Samples, samples.Sample{T: t, V: f.value})
		s.SamplesEnd = int32(len(dst.Samples))
	}
}

// overridden reports whether an extra label named name replaces a tag.
func (p *Parser) overridden(name string) bool {
	for i := range p.ExtraLabels {
		if p.ExtraLabels[i].Name == name {
			return true
		}
	}
	return false
}

var errValue = errors.New(`want a float (1.5), an integer (12i), an unsigned integer (12u), a boolean (t, f, true, false) or a string ("s")`)

// parseValue parses a non-string field value.
func parseValue(b []byte) (float64, error) {
	if len(b) == 0 {
		return 0, errValue
	}
	switch last := b[len(b)-1]; {
	case last == 'i':
		n, err := numparse.ParseInt(b[:len(b)-1])
		if err != nil {
			if errors.Is(err, numparse.ErrRange) {
				return 0, errors.New("integer out of the int64 range")
			}
			return 0, errValue
		}
		return float64(n), nil
	case last == 'u':
		n, err := numparse.ParseUint(b[:len(b)-1])
		if err != nil {
			if errors.Is(err, numparse.ErrRange) {
				return 0, errors.New("integer out of the uint64 range")
			}
			return 0, errValue
		}
		return float64(n), nil
	case last >= '0' && last <= '9' || last == '.':
		if !numparse.IsDecimal(b) {
			return 0, errValue
		}
		v, err := numparse.ParseFloat(b)
		if err != nil {
			if errors.Is(err, numparse.ErrRange) {
				return 0, errors.New("float out of the float64 range")
			}
			return 0, errValue
		}
		return v, nil
	}
	switch string(b) {
	case "t", "T", "true", "True", "TRUE":
		return 1, nil
	case "f", "F", "false", "False", "FALSE":
		return 0, nil
	}
	return 0, errValue
}

// unescape returns b with \, \space \= and \\ unescaped, aliasing b when it
// has no backslash, else in dst.KeyBuf.
func unescape(b []byte, dst *samples.Batch) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return unsafe.String(unsafe.SliceData(b), len(b))
	}
	n := len(dst.KeyBuf)
	dst.KeyBuf = appendUnescaped(dst.KeyBuf, b)
	if len(dst.KeyBuf) == n {
		return ""
	}
	return unsafe.String(&dst.KeyBuf[n], len(dst.KeyBuf)-n)
}

func appendUnescaped(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\\' && i+1 < len(b) {
			switch b[i+1] {
			case ',', ' ', '=', '\\':
				i++
				c = b[i]
			}
		}
		dst = append(dst, c)
	}
	return dst
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
