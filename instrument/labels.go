package instrument

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
)

// OtherValue is the label value recorded instead of a value that would
// exceed the distinct-value limit of its label.
const OtherValue = "other"

// maxLabelValueBytes is the longest label value the helpers keep; longer
// values are cut at a UTF-8 boundary.
const maxLabelValueBytes = 256

// isStandardLabel reports the labels the Registry adds to every series;
// the helpers refuse them as ordinary labels.
func isStandardLabel(name string) bool {
	return name == "service" || name == "env"
}

func validMetricName[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func validLabelName[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// sanitizeLabelValue makes v valid UTF-8 and at most maxLabelValueBytes long.
func sanitizeLabelValue(v string) string {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	if len(v) > maxLabelValueBytes {
		n := maxLabelValueBytes
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		v = v[:n]
	}
	return v
}

// appendLabelValue appends v escaped for the text exposition format.
func appendLabelValue(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			dst = append(dst, `\\`...)
		case '"':
			dst = append(dst, `\"`...)
		case '\n':
			dst = append(dst, `\n`...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// appendLabelPair appends name="value" with value escaped.
func appendLabelPair(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	dst = appendLabelValue(dst, value)
	return append(dst, '"')
}

// checkLabelArgs panics unless labels is a list of name, value pairs with
// valid, unreserved, distinct names.
func checkLabelArgs(fn, metric string, labels []string, extraReserved string) {
	if !validMetricName(metric) {
		panic(fmt.Sprintf("instrument.%s: invalid metric name %q: use [a-zA-Z_:][a-zA-Z0-9_:]*", fn, metric))
	}
	if len(labels)%2 != 0 {
		panic(fmt.Sprintf("instrument.%s(%q): odd number of label arguments (%d): pass name, value pairs", fn, metric, len(labels)))
	}
	for i := 0; i < len(labels); i += 2 {
		name := labels[i]
		if !validLabelName(name) {
			panic(fmt.Sprintf("instrument.%s(%q): invalid label name %q: use [a-zA-Z_][a-zA-Z0-9_]*", fn, metric, name))
		}
		if isStandardLabel(name) {
			panic(fmt.Sprintf("instrument.%s(%q): label %q is added to every series from Options.Service/Options.Env: drop it", fn, metric, name))
		}
		if name == extraReserved {
			panic(fmt.Sprintf("instrument.%s(%q): label %q is reserved for this metric type: rename it", fn, metric, name))
		}
		for j := 0; j < i; j += 2 {
			if labels[j] == name {
				panic(fmt.Sprintf("instrument.%s(%q): label %q given twice", fn, metric, name))
			}
		}
	}
}

// guardKey names the label whose values a guard bounds.
type guardKey struct {
	metric, label string
}

// guard admits at most max distinct values of one label; later values
// become OtherValue and are counted. Safe for concurrent use.
type guard struct {
	mu       sync.RWMutex
	values   map[string]struct{}
	max      int
	overflow *metrics.Counter
}

func newGuard(set *metrics.Set, k guardKey, limit int) *guard {
	b := append([]byte(nil), "telltale_instrument_label_overflow_total{"...)
	b = appendLabelPair(b, "metric", k.metric)
	b = append(b, ',')
	b = appendLabelPair(b, "label", k.label)
	b = append(b, '}')
	return &guard{
		values:   make(map[string]struct{}),
		max:      limit,
		overflow: set.GetOrCreateCounter(string(b)),
	}
}

// admit returns v if it is known or there is room for it, else OtherValue.
func (g *guard) admit(v string) string {
	g.mu.RLock()
	_, ok := g.values[v]
	g.mu.RUnlock()
	if ok {
		return v
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.values[v]; ok {
		return v
	}
	if len(g.values) >= g.max {
		g.overflow.Inc()
		return OtherValue
	}
	g.values[strings.Clone(v)] = struct{}{}
	return v
}
