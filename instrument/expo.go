package instrument

import (
	"strconv"
)

// constLabel is a label added to every sample line of an exposition.
type constLabel struct {
	name string
	pair string // name="escaped value"
}

func newConstLabel(name, value string) constLabel {
	return constLabel{name: name, pair: string(appendLabelPair(nil, name, value))}
}

// maxConstLabels bounds the labels appendExposition adds (it tracks them in
// a bit mask).
const maxConstLabels = 32

// appendExposition appends the Prometheus text exposition (format 0.0.4) in
// src to dst, rewriting every sample line:
//
//   - the labels in add are inserted first in the label set, except those the
//     line already has (the line's own value wins, so the result never has a
//     duplicate label);
//   - if ts >= 0, " ts" (ms since the epoch) is appended to lines without a
//     timestamp.
//
// Comment lines are copied, blank lines are dropped, and malformed sample
// lines (no value, unterminated label set, trailing garbage, metric or
// label names outside the Prometheus legacy charset, which a collector
// would reject the whole body for) are dropped and counted in dropped. Values are not checked. len(add) must not exceed
// maxConstLabels.
func appendExposition(dst, src []byte, add []constLabel, ts int64) (out []byte, samples, dropped int) {
	if len(add) > maxConstLabels {
		panic("BUG: appendExposition: too many constant labels")
	}
	for len(src) > 0 {
		var line []byte
		if n := indexByte(src, '\n'); n >= 0 {
			line, src = src[:n], src[n+1:]
		} else {
			line, src = src, nil
		}
		var ok bool
		dst, ok = appendLine(dst, line, add, ts)
		switch {
		case ok:
			samples++
		case !isBlankOrComment(line):
			dropped++
		}
	}
	return dst, samples, dropped
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func skipBlanks(b []byte, i int) int {
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	return i
}

func trimLine(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line[skipBlanks(line, 0):]
}

// nextField skips the blanks at b[i:] and returns the run of non-blank bytes
// after them (empty at the end of b) and the index after it.
func nextField(b []byte, i int) ([]byte, int) {
	i = skipBlanks(b, i)
	start := i
	for i < len(b) && !isBlank(b[i]) {
		i++
	}
	return b[start:i], i
}

func isBlankOrComment(line []byte) bool {
	line = trimLine(line)
	return len(line) == 0 || line[0] == '#'
}

// appendLine rewrites one line; ok reports whether it was a sample line.
// Comment lines are appended as they are; blank and malformed lines are
// not appended.
func appendLine(dst, line []byte, add []constLabel, ts int64) (_ []byte, ok bool) {
	line = trimLine(line)
	if len(line) == 0 {
		return dst, false
	}
	if line[0] == '#' {
		dst = append(dst, line...)
		return append(dst, '\n'), false
	}
	i := 0
	for i < len(line) && line[i] != '{' && !isBlank(line[i]) {
		i++
	}
	name := line[:i]
	if !validMetricName(name) {
		return dst, false
	}
	i = skipBlanks(line, i)
	var own []byte // the line's label pairs, without braces
	var present uint32
	if i < len(line) && line[i] == '{' {
		end, mask, ok := scanLabelSet(line, i+1, add)
		if !ok {
			return dst, false
		}
		own, present = trimLabelBody(line[i+1:end]), mask
		i = end + 1
	}
	// value and optional timestamp
	value, i := nextField(line, i)
	stamp, i := nextField(line, i)
	if len(value) == 0 || skipBlanks(line, i) != len(line) {
		return dst, false
	}

	dst = append(dst, name...)
	open := false
	for j, l := range add {
		if present&(1<<j) != 0 {
			continue
		}
		if open {
			dst = append(dst, ',')
		} else {
			dst = append(dst, '{')
			open = true
		}
		dst = append(dst, l.pair...)
	}
	if len(own) > 0 {
		if open {
			dst = append(dst, ',')
		} else {
			dst = append(dst, '{')
			open = true
		}
		dst = append(dst, own...)
	}
	if open {
		dst = append(dst, '}')
	}
	dst = append(dst, ' ')
	dst = append(dst, value...)
	switch {
	case len(stamp) > 0:
		dst = append(dst, ' ')
		dst = append(dst, stamp...)
	case ts >= 0:
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, ts, 10)
	}
	return append(dst, '\n'), true
}

// trimLabelBody drops the blanks around a label set's body and its
// trailing comma.
func trimLabelBody(b []byte) []byte {
	b = b[skipBlanks(b, 0):]
	n := len(b)
	for n > 0 && isBlank(b[n-1]) {
		n--
	}
	if n > 0 && b[n-1] == ',' {
		n--
	}
	for n > 0 && isBlank(b[n-1]) {
		n--
	}
	return b[:n]
}

// scanLabelSet scans the label pairs of line starting at i (just after
// '{') and returns the index of the closing '}' and which of add's names
// the set already has.
func scanLabelSet(line []byte, i int, add []constLabel) (end int, present uint32, ok bool) {
	for {
		i = skipBlanks(line, i)
		if i >= len(line) {
			return 0, 0, false
		}
		if line[i] == '}' {
			return i, present, true
		}
		nStart := i
		for i < len(line) && line[i] != '=' && line[i] != '}' && line[i] != ',' && line[i] != '"' && !isBlank(line[i]) {
			i++
		}
		name := line[nStart:i]
		if !validLabelName(name) {
			return 0, 0, false
		}
		for j, l := range add {
			if l.name == string(name) {
				present |= 1 << j
			}
		}
		i = skipBlanks(line, i)
		if i >= len(line) || line[i] != '=' {
			return 0, 0, false
		}
		i = skipBlanks(line, i+1)
		if i >= len(line) || line[i] != '"' {
			return 0, 0, false
		}
		i++
		for {
			if i >= len(line) {
				return 0, 0, false
			}
			c := line[i]
			if c == '\\' {
				i += 2
				continue
			}
			i++
			if c == '"' {
				break
			}
		}
		i = skipBlanks(line, i)
		if i >= len(line) {
			return 0, 0, false
		}
		if line[i] == ',' {
			i++
		}
		// Like Prometheus' parser, accept a missing comma between pairs.
	}
}
