package instrument

import (
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// sample is one parsed line of a text exposition.
type sample struct {
	name   string
	labels map[string]string // without __name__
	value  float64
	ts     int64 // 0 if the line had none
	hasTS  bool
}

// parseText parses a Prometheus text exposition (0.0.4) with the parser
// Prometheus scrapes with, in input order. A series with a label twice is
// an error.
func parseText(b []byte) ([]sample, error) {
	p := textparse.NewPromParser(b, labels.NewSymbolTable(), false)
	var out []sample
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, tsp, v := p.Series()
		var ls labels.Labels
		p.Labels(&ls)
		if name, dup := ls.HasDuplicateLabelNames(); dup {
			return nil, fmt.Errorf("series %s has label %q twice", ls, name)
		}
		s := sample{name: ls.Get(labels.MetricName), labels: ls.Map(), value: v}
		delete(s.labels, labels.MetricName)
		if tsp != nil {
			s.ts, s.hasTS = *tsp, true
		}
		out = append(out, s)
	}
}

// quotedName matches the UTF-8 quoted metric and label names of newer
// Prometheus formats, which the rewriter does not support (VictoriaMetrics
// never writes them).
var quotedName = regexp.MustCompile(`(^|\n)[ \t]*\{|[{,][ \t]*"|(^|\n)[ \t]*#[^\n]*"`)
