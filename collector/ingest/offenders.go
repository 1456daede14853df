package ingest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// offenders counts the samples rejected by the series limits per metric
// name, for the top-N metric /metrics exposes
// (telltale_ingest_series_limit_rejected_samples{metric=...}): which
// metric's labels explode. It keeps at most max names; a new name when
// full replaces the one with the smallest count (which then starts from
// that count, so a steady offender still rises to the top). Safe for
// concurrent use.
type offenders struct {
	mu     sync.Mutex
	max    int
	counts map[string]int64
}

func newOffenders(max int) *offenders {
	return &offenders{max: max, counts: map[string]int64{}}
}

func (o *offenders) add(name string, n int) {
	if name == "" {
		name = "(no name)"
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.counts[name]; !ok && len(o.counts) >= o.max {
		minName, minN := "", int64(-1)
		for k, v := range o.counts {
			if minN < 0 || v < minN {
				minName, minN = k, v
			}
		}
		delete(o.counts, minName)
		o.counts[strings.Clone(name)] = minN
	} else if !ok {
		name = strings.Clone(name) // it may alias a request buffer
	}
	o.counts[name] += int64(n)
}

type offender struct {
	name string
	n    int64
}

// top returns the n names with the most rejected samples, most first.
func (o *offenders) top(n int) []offender {
	o.mu.Lock()
	out := make([]offender, 0, len(o.counts))
	for k, v := range o.counts {
		out = append(out, offender{k, v})
	}
	o.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].name < out[j].name
	})
	return out[:min(n, len(out))]
}

// write writes the top n as telltale_ingest_series_limit_rejected_samples
// lines of the Prometheus text format.
func (o *offenders) write(w io.Writer, n int) {
	top := o.top(n)
	if len(top) == 0 {
		return
	}
	fmt.Fprintf(w, "# HELP telltale_ingest_series_limit_rejected_samples Samples rejected by -storage.max-series or -storage.max-hourly-series, for the %d metric names with the most\n", n)
	fmt.Fprintf(w, "# TYPE telltale_ingest_series_limit_rejected_samples gauge\n")
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	for _, t := range top {
		fmt.Fprintf(w, "telltale_ingest_series_limit_rejected_samples{metric=\"%s\"} %d\n", esc.Replace(t.name), t.n)
	}
}
