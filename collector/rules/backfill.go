package rules

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
)

// Backfill evaluates the recording rules of the rule files (and built-in
// files) at each of their groups' evaluation times from `from` through
// `to`, oldest first, and writes the results through the Writer, as if
// the groups had run then: what promtool's create-blocks-from rules does,
// through the collector's write path. Alerting rules are not evaluated.
// Times are aligned to the group's interval; groups are interleaved by
// time, so a rule reading another group's records sees them. The writer
// must accept the timestamps: within -storage.out-of-order-window of the
// newest sample.
func (m *Manager) Backfill(ctx context.Context, from, to time.Time) error {
	files, err := m.files()
	if err != nil {
		return err
	}
	loaded, errs := m.prom.LoadGroups(m.opts.Interval, labels.EmptyLabels(), m.opts.ExternalURL, nil, false, files...)
	if len(errs) > 0 {
		return fmt.Errorf("%w: %v", ErrInvalidRules, errs)
	}
	type step struct {
		ts time.Time
		g  *promrules.Group
	}
	var steps []step
	for _, g := range loaded {
		var rec []promrules.Rule
		for _, r := range g.Rules() {
			if _, ok := r.(*promrules.RecordingRule); ok {
				rec = append(rec, r)
			}
		}
		if len(rec) == 0 {
			continue
		}
		bg := promrules.NewGroup(promrules.GroupOptions{Name: g.Name(), File: g.File(), Interval: g.Interval(),
			Limit: g.Limit(), Rules: rec, Opts: m.promOpts})
		for ts := from.Truncate(g.Interval()); !ts.After(to); ts = ts.Add(g.Interval()) {
			if !ts.Before(from) {
				steps = append(steps, step{ts, bg})
			}
		}
	}
	slices.SortStableFunc(steps, func(a, b step) int {
		if c := a.ts.Compare(b.ts); c != 0 {
			return c
		}
		return cmp.Compare(promrules.GroupKey(a.g.File(), a.g.Name()), promrules.GroupKey(b.g.File(), b.g.Name()))
	})
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.g.Eval(ctx, s.ts)
		for _, r := range s.g.Rules() {
			if err := r.LastError(); err != nil {
				return fmt.Errorf("backfill %s at %s: rule %s: %w", promrules.GroupKey(s.g.File(), s.g.Name()), s.ts.UTC().Format(time.RFC3339), r.Name(), err)
			}
		}
	}
	return nil
}
