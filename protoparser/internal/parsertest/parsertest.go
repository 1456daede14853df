// Package parsertest holds what the tests of Telltale's parsers and
// decoders share: reading the example bodies and fuzz seeds under testdata/,
// rendering a samples.Batch as text to compare, and checking the series-key
// contract of samples.Series (equal keys mean equal label sets). It is
// imported by tests only.
package parsertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/samples"
)

// Files returns the contents of the files matching pattern (a
// filepath.Glob pattern such as "testdata/*.txt"), failing tb when there
// are none: a missing seed corpus would let a fuzz target pass on nothing.
// howToMake, when not "", tells how to create them and ends the message.
func Files(tb testing.TB, pattern, howToMake string) [][]byte {
	tb.Helper()
	names, err := filepath.Glob(pattern)
	if err != nil || len(names) == 0 {
		msg := fmt.Sprintf("no files match %s (%v)", pattern, err)
		if howToMake != "" {
			msg += ": " + howToMake
		}
		tb.Fatal(msg)
	}
	var out [][]byte
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// CheckKeys fails tb when two series of b have equal keys but different
// labels, which would make a writer's series-ref cache mix them up. Empty
// keys are not compared: they turn the cache off for their series.
func CheckKeys(tb testing.TB, b *samples.Batch) {
	tb.Helper()
	seen := map[string]string{}
	for i := range b.Series {
		s := &b.Series[i]
		if len(s.Key) == 0 {
			continue
		}
		lbls := fmt.Sprintf("%q", b.SeriesLabels(s))
		if prev, ok := seen[string(s.Key)]; ok && prev != lbls {
			tb.Fatalf("key %q used for %s and %s", s.Key, prev, lbls)
		}
		seen[string(s.Key)] = lbls
	}
}

// Render prints b one series per line as name="value",... then " t v" for
// each sample, the value as formatValue writes it, and after the series
// one line per metadata entry (meta "name" "type" "help" "unit"), so tests
// compare readable text.
func Render(b *samples.Batch, formatValue func(float64) string) string {
	var sb strings.Builder
	for i := range b.Series {
		s := &b.Series[i]
		for j, l := range b.SeriesLabels(s) {
			if j > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "%s=%q", l.Name, l.Value)
		}
		for _, x := range b.SeriesSamples(s) {
			fmt.Fprintf(&sb, " %d %s", x.T, formatValue(x.V))
		}
		sb.WriteByte('\n')
	}
	for _, md := range b.Metadata {
		fmt.Fprintf(&sb, "meta %q %q %q %q\n", md.Name, md.Type, md.Help, md.Unit)
	}
	return sb.String()
}
