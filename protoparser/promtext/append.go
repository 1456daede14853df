package promtext

import (
	"math"
	"strconv"

	"github.com/telltale-dev/telltale/samples"
)

// Append appends b in the text exposition format to dst and returns the
// extended buffer: first # HELP, # TYPE and # UNIT lines for b.Metadata
// (except entries without a Name), then one line per sample, with its
// timestamp in milliseconds when withTimestamps is set. Names that are not legacy Prometheus names are
// quoted ({"my.metric", "my.label"="v"}). A series without a __name__ label
// is written as {labels}, which Parse rejects. The metadata type "unknown"
// is written as "untyped", the 0.0.4 word.
func Append(dst []byte, b *samples.Batch, withTimestamps bool) []byte {
	for _, md := range b.Metadata {
		if md.Name == "" {
			continue // the format has no way to say it
		}
		if md.Help != "" || md.Type == "" && md.Unit == "" {
			dst = append(dst, "# HELP "...)
			dst = appendMetaName(dst, md.Name)
			dst = append(dst, ' ')
			dst = appendHelp(dst, md.Help)
			dst = append(dst, '\n')
		}
		if md.Type != "" {
			dst = append(dst, "# TYPE "...)
			dst = appendMetaName(dst, md.Name)
			dst = append(dst, ' ')
			if md.Type == "unknown" {
				dst = append(dst, "untyped"...)
			} else {
				dst = append(dst, md.Type...)
			}
			dst = append(dst, '\n')
		}
		if md.Unit != "" {
			dst = append(dst, "# UNIT "...)
			dst = appendMetaName(dst, md.Name)
			dst = append(dst, ' ')
			dst = appendHelp(dst, md.Unit)
			dst = append(dst, '\n')
		}
	}
	for si := range b.Series {
		s := &b.Series[si]
		lineStart := len(dst)
		dst = appendSeries(dst, b.SeriesLabels(s))
		series := dst[lineStart:]
		for j, x := range b.SeriesSamples(s) {
			if j > 0 {
				dst = append(dst, series...)
			}
			dst = append(dst, ' ')
			dst = AppendFloat(dst, x.V)
			if withTimestamps {
				dst = append(dst, ' ')
				dst = strconv.AppendInt(dst, x.T, 10)
			}
			dst = append(dst, '\n')
		}
	}
	return dst
}

// appendSeries appends name{labels} for labels.
func appendSeries(dst []byte, labels []samples.Label) []byte {
	nameIdx := -1
	for i, l := range labels {
		if l.Name == "__name__" {
			nameIdx = i
			break
		}
	}
	quotedName := nameIdx >= 0 && !isMetricName(labels[nameIdx].Value)
	if nameIdx >= 0 && !quotedName {
		dst = append(dst, labels[nameIdx].Value...)
	}
	if len(labels) == 0 || len(labels) == 1 && nameIdx == 0 && !quotedName {
		return dst
	}
	dst = append(dst, '{')
	first := true
	if quotedName {
		dst = appendQuoted(dst, labels[nameIdx].Value)
		first = false
	}
	for i, l := range labels {
		if i == nameIdx {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if isLabelName(l.Name) {
			dst = append(dst, l.Name...)
		} else {
			dst = appendQuoted(dst, l.Name)
		}
		dst = append(dst, '=')
		dst = appendQuoted(dst, l.Value)
	}
	return append(dst, '}')
}

func appendMetaName(dst []byte, name string) []byte {
	if isMetricName(name) {
		return append(dst, name...)
	}
	return appendQuoted(dst, name)
}

// appendQuoted appends s in double quotes, escaping \, " and newline.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '"':
			dst = append(dst, '\\', '"')
		case '\n':
			dst = append(dst, '\\', 'n')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// appendHelp appends help text, escaping \ and newline.
func appendHelp(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// AppendFloat appends v as the text format writes sample values: integers
// without exponent up to 1e15, NaN, +Inf, -Inf, and the shortest
// representation that reads back exactly otherwise.
func AppendFloat(dst []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15 && !(v == 0 && math.Signbit(v)):
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

func isMetricName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if nameChar[s[i]] == 0 {
			return false
		}
	}
	return true
}

func isLabelName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if nameChar[s[i]]&2 == 0 {
			return false
		}
	}
	return true
}
