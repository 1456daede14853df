package changelog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// gatedBatch is a BatchTarget whose Wait blocks until the test opens the
// gate, recording each batch as "id/event" strings.
type gatedBatch struct {
	gate chan struct{} // one receive per Wait
	mu   sync.Mutex
	got  [][]string
	// fail, if set, answers the error for an item (nil: delivered).
	fail func(it Item) error
}

func (g *gatedBatch) Name() string { return "chat:test" }

func (g *gatedBatch) Deliver(ctx context.Context, e Entry, c changes.Change) error {
	return g.DeliverBatch(ctx, []Item{{e, c}})[0]
}

func (g *gatedBatch) Wait(ctx context.Context) error {
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedBatch) DeliverBatch(ctx context.Context, items []Item) []error {
	var b []string
	errs := make([]error, len(items))
	for i, it := range items {
		b = append(b, it.Change.ID+"/"+it.Entry.Event)
		if g.fail != nil {
			errs[i] = g.fail(it)
		}
	}
	g.mu.Lock()
	g.got = append(g.got, b)
	g.mu.Unlock()
	return errs
}

func (g *gatedBatch) batches() [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.got)
}

// TestBatchTarget: the entries that fall due while the target waits go
// out together; a change's finished entry waits for its recorded one;
// a failed item is retried alone, the delivered ones are not repeated.
func TestBatchTarget(t *testing.T) {
	g := &gatedBatch{gate: make(chan struct{})}
	var mu sync.Mutex
	failed := map[string]bool{}
	g.fail = func(it Item) error {
		mu.Lock()
		defer mu.Unlock()
		if it.Change.ID == "c3" && !failed["c3"] {
			failed["c3"] = true
			return errors.New("network hiccup")
		}
		return nil
	}
	e := newEnv(t, Options{Targets: []Target{g}}, true)
	for i := range 5 {
		e.postChange(fmt.Sprintf(`{"id":"c%d","kind":"note","service":"web","status":"running"}`, i), 201)
	}
	e.do("PATCH", "/api/v1/changes/c1", `{"status":"success"}`)
	g.gate <- struct{}{} // the worker waited while all of that was recorded
	eventually(t, "first batch", func() bool { return len(g.batches()) == 1 })
	first := g.batches()[0]
	if want := "c0/recorded c1/recorded c2/recorded c3/recorded c4/recorded"; strings.Join(first, " ") != want {
		t.Fatalf("first batch: got %v; want %s (the finished entry of c1 waits for its recorded one)", first, want)
	}
	close(g.gate) // from now on Wait passes
	eventually(t, "retry and finished", func() bool {
		return e.getChange("c3").Delivery.Others[0].Status == changes.DeliveryDelivered &&
			e.getChange("c1").Delivery.Others[0].Status == changes.DeliveryDelivered
	})
	var rest []string
	for _, b := range g.batches()[1:] {
		rest = append(rest, b...)
	}
	slices.Sort(rest)
	if want := "c1/finished c3/recorded"; strings.Join(rest, " ") != want {
		t.Fatalf("later batches: got %v; want %s (only the failed item again, and the finished one)", rest, want)
	}
	if d := e.getChange("c3").Delivery.Others[0]; d.Attempts != 2 || d.Name != "chat:test" {
		t.Fatalf("c3 delivery: got %+v; want 2 attempts to chat:test", d)
	}
}

// TestBatchTargetShutdown: a batch cut by shutdown stays pending with its
// attempt counted, and a new Service delivers it.
func TestBatchTargetShutdown(t *testing.T) {
	block := &blockingBatch{started: make(chan struct{})}
	e := newEnv(t, Options{Targets: []Target{block}}, true)
	e.postChange(`{"id":"a","kind":"deploy","service":"web"}`, 201)
	<-block.started
	e.stop()
	g := &gatedBatch{gate: make(chan struct{}, 1)}
	g.gate <- struct{}{}
	e2 := newEnv(t, Options{DBPath: e.opts.DBPath, Targets: []Target{g}}, true)
	eventually(t, "delivered after restart", func() bool { return len(g.batches()) == 1 })
	d := e2.getChange("a").Delivery.Others[0]
	eventually(t, "marked", func() bool { d = e2.getChange("a").Delivery.Others[0]; return d.Status == changes.DeliveryDelivered })
	if d.Attempts != 2 {
		t.Fatalf("attempts: got %d; want 2 (the one cut by shutdown counts)", d.Attempts)
	}
}

type blockingBatch struct {
	started chan struct{}
	once    sync.Once
}

func (b *blockingBatch) Name() string { return "chat:test" }
func (b *blockingBatch) Deliver(ctx context.Context, e Entry, c changes.Change) error {
	return b.DeliverBatch(ctx, []Item{{e, c}})[0]
}
func (b *blockingBatch) Wait(context.Context) error { return nil }
func (b *blockingBatch) DeliverBatch(ctx context.Context, items []Item) []error {
	b.once.Do(func() { close(b.started) })
	<-ctx.Done()
	errs := make([]error, len(items))
	for i := range errs {
		errs[i] = ctx.Err()
	}
	return errs
}
