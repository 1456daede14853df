package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/telltale-dev/telltale/bench/peer"
)

// Runner runs scenarios in rounds, alternating the systems: in every round
// each scenario runs against Telltale, then each peer (A B A B ...), each
// run in a fresh process with a fresh data directory.
type Runner struct {
	Env       *Env
	Scenarios []Scenario
	// Peers are the selected peers whose binaries are present.
	Peers  []peer.Kind
	Rounds int
}

// Run runs every round and returns the results in the order they ran.
// It stops early only when ctx is done.
func (rn *Runner) Run(ctx context.Context) []Result {
	var out []Result
	total := 0
	for _, s := range rn.Scenarios {
		total += len(s.Systems(rn.Peers)) * rn.Rounds
	}
	n := 0
	for round := range rn.Rounds {
		for i := range rn.Scenarios {
			s := &rn.Scenarios[i]
			for _, k := range s.Systems(rn.Peers) {
				if ctx.Err() != nil {
					return out
				}
				n++
				r := s.Run(ctx, rn.Env, k, round)
				out = append(out, r)
				rn.Env.logf("[%d/%d] round %d %-11s %-16s %s", n, total, round+1, s.Name, k.Title(), Summary(s, r))
			}
		}
	}
	return out
}

// Summary is a one-line account of a result for progress output.
func Summary(s *Scenario, r Result) string {
	var b strings.Builder
	for _, m := range s.Metrics {
		if v, ok := r.Values[m.Key]; ok {
			fmt.Fprintf(&b, "%s %s; ", m.Label, FormatValue(v))
		}
	}
	if r.Stored >= 0 && r.Sent > 0 {
		fmt.Fprintf(&b, "stored %d/%d %s; ", r.Stored, r.Sent, r.VerifyUnit)
	}
	fmt.Fprintf(&b, "%.1fs", r.Seconds)
	if r.Err != "" {
		fmt.Fprintf(&b, "; FAILED: %s", firstLine(r.Err))
	}
	return b.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// FormatValue prints v with three significant digits and thousands
// separators for large numbers.
func FormatValue(v float64) string {
	switch {
	case v >= 10_000:
		return groupThousands(fmt.Sprintf("%.0f", v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	case v == 0:
		return "0"
	}
	return fmt.Sprintf("%.3g", v)
}

func groupThousands(s string) string {
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// FormatCount prints a count with thousands separators.
func FormatCount(n int64) string {
	if n < 0 {
		return "-" + groupThousands(fmt.Sprint(-n))
	}
	return groupThousands(fmt.Sprint(n))
}

// ParsePeers parses -peers, e.g. "vm,prometheus,node_exporter".
func ParsePeers(s string) ([]peer.Kind, error) {
	var out []peer.Kind
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k := peer.Kind(f)
		if !slices.Contains([]peer.Kind{peer.VictoriaMetrics, peer.Prometheus, peer.NodeExporter, peer.VMAgent, peer.Cortex}, k) {
			return nil, fmt.Errorf("unknown peer %q in -peers: want some of vm,prometheus,node_exporter,vmagent,cortex", f)
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}
