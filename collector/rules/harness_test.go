package rules

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	promrules "github.com/prometheus/prometheus/rules"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/collector/ingest"
	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/samples"
)

// harness is a manager over a real TSDB behind the real write path, with
// evaluation driven by hand at chosen timestamps: the engine's group loop
// runs on the wall clock, so tests call the same per-group step (iterate)
// and the same `for` state restore the loop calls, in the same order.
type harness struct {
	t      *testing.T
	dir    string // data dir: storage and ledger survive a restart
	store  *storage.Storage
	writer *ingest.Writer
	engine *promql.Engine
	m      *Manager
	evals  int
	seen   *observed
}

// observed records the metric names the write path committed.
type observed struct {
	mu    sync.Mutex
	names map[string]int
}

func (o *observed) Active() bool { return true }
func (o *observed) Observe(b *samples.Batch, _ []promstorage.SeriesRef) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range b.Series {
		o.names[b.Name(&b.Series[i])] += len(b.SeriesSamples(&b.Series[i]))
	}
}

func (o *observed) count(name string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.names[name]
}

// newHarness opens (or reopens) the storage in dir, writes ruleFile there
// when it is not "" and loads the rules by hand. mutate may change the
// options before New.
func newHarness(t *testing.T, dir, ruleFile string, mutate func(*Options)) *harness {
	t.Helper()
	store, err := storage.Open(storage.Options{Dir: filepath.Join(dir, "tsdb"), OutOfOrderWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, store: store, seen: &observed{names: map[string]int{}}}
	h.writer = ingest.NewWriter(store, ingest.Options{Observer: h.seen})
	h.engine = promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
		EnableDelayedNameRemoval: true, EnableAtModifier: true})
	path := filepath.Join(dir, "rules.yml")
	if ruleFile != "" {
		if err := os.WriteFile(path, []byte(ruleFile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{
		Files: []string{path}, Interval: 15 * time.Second,
		Writer: h.writer, Queryable: store, Engine: h.engine,
		ExternalURL:    "http://collector.test:9470",
		StateFile:      filepath.Join(dir, "alerts", "notifications.json"),
		ForGracePeriod: time.Second, OutageTolerance: time.Hour, ResendDelay: time.Minute,
	}
	if mutate != nil {
		mutate(&opts)
	}
	if h.m, err = New(opts); err != nil {
		t.Fatal(err)
	}
	h.load()
	t.Cleanup(h.close)
	return h
}

// load loads the rule files as the engine's Update does, into groups that
// are evaluated by hand.
func (h *harness) load() {
	h.t.Helper()
	files, err := h.m.files()
	if err != nil {
		h.t.Fatal(err)
	}
	groups, errs := h.m.prom.LoadGroups(h.m.opts.Interval, labels.EmptyLabels(), h.m.opts.ExternalURL, h.m.iterate, false, files...)
	if len(errs) > 0 {
		h.t.Fatalf("load rules: %v", errs)
	}
	h.m.manual = make([]*promrules.Group, 0, len(groups))
	for _, g := range groups {
		h.m.manual = append(h.m.manual, g)
	}
	slices.SortFunc(h.m.manual, func(a, b *promrules.Group) int { return strings.Compare(a.Name(), b.Name()) })
	h.evals = 0
}

// evalAt runs one evaluation of every group at ts, as the group loop does;
// after the second one it restores the `for` state, as the loop does.
func (h *harness) evalAt(ts time.Time) {
	h.t.Helper()
	for _, g := range h.m.manual {
		h.m.iterate(h.t.Context(), g, ts)
	}
	h.evals++
	if h.evals == 2 {
		for _, g := range h.m.manual {
			g.RestoreForState(ts)
		}
	}
}

// close closes the storage: what a stopped collector leaves behind.
func (h *harness) close() {
	if h.store != nil {
		h.store.Close()
		h.store = nil
	}
}

// write stores one sample of name{lbls} at ts through the write path.
func (h *harness) write(name string, lbls map[string]string, ts time.Time, v float64) {
	h.t.Helper()
	var b samples.Batch
	b.StartSeries(nil)
	b.AddLabel("__name__", name)
	for k, val := range lbls {
		b.AddLabel(k, val)
	}
	b.AddSample(ts.UnixMilli(), v)
	if _, err := h.writer.Write(h.t.Context(), &b); err != nil {
		h.t.Fatalf("write %s: %v", name, err)
	}
}

// query runs an instant query at ts.
func (h *harness) query(expr string, ts time.Time) promql.Vector {
	h.t.Helper()
	q, err := h.engine.NewInstantQuery(context.Background(), h.store, nil, expr, ts)
	if err != nil {
		h.t.Fatalf("query %s: %v", expr, err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		h.t.Fatalf("query %s: %v", expr, res.Err)
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v
	case promql.Scalar:
		return promql.Vector{{T: v.T, F: v.V, Metric: labels.EmptyLabels()}}
	}
	h.t.Fatalf("query %s: result %T is not a vector", expr, res.Value)
	return nil
}

// alerts returns the active alerts of every alerting rule.
func (h *harness) alerts() []*promrules.Alert {
	var out []*promrules.Alert
	for _, r := range h.m.AlertingRules() {
		out = append(out, r.ActiveAlerts()...)
	}
	return out
}

// deliverWebhooks runs one delivery round of every webhook.
func (h *harness) deliverWebhooks() {
	for _, w := range h.m.hooks {
		w.round(h.t.Context())
	}
}
