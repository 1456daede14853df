package changelog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/collector/enginetest"
)

// testClock is a clock the test moves; safe for concurrent use.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// countingTarget counts its calls per change id. The first call for the
// change block names signals entered and waits for release; a call for
// a change in fail answers a retriable error.
type countingTarget struct {
	block   string
	entered chan struct{}
	release chan struct{}
	fail    map[string]bool

	mu    sync.Mutex
	calls map[string]int
}

func (c *countingTarget) Name() string { return "counting" }

func (c *countingTarget) Deliver(ctx context.Context, e Entry, ch changes.Change) error {
	c.mu.Lock()
	c.calls[ch.ID]++
	n := c.calls[ch.ID]
	fail := c.fail[ch.ID]
	c.mu.Unlock()
	if ch.ID == c.block && n == 1 {
		close(c.entered)
		<-c.release
	}
	if fail {
		return errors.New("target down")
	}
	return nil
}

func (c *countingTarget) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

// claimReplicas opens two Services (replicas) on one fresh PostgreSQL
// log with the clock and target given, without their delivery loops, and
// records n deploys (d0, d1 ...) through the first. It returns the
// replicas' workers of target.
func claimReplicas(t *testing.T, clock *testClock, target *countingTarget, opts Options, n int) (a, b *worker) {
	t.Helper()
	pg := enginetest.StartPostgres(t)
	url := pg.Database(t, "changes")
	opts.DBPath, opts.Now, opts.Targets = url, clock.Now, []Target{target}
	ra := newEnv(t, opts, false).s
	rb := newEnv(t, opts, false).s
	for i := range n {
		if _, err := ra.Record(t.Context(), changes.Change{ID: fmt.Sprintf("d%d", i), Kind: changes.KindDeploy, Service: "api", Env: "prod",
			Version: "v1", Time: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	find := func(s *Service) *worker {
		for _, w := range s.workers {
			if w.target == target.Name() {
				return w
			}
		}
		t.Fatalf("no worker for target %s", target.Name())
		return nil
	}
	return find(ra), find(rb)
}

// TestClaimTakenOverMidBatch: replica a claims a batch, its first
// delivery outlasts the batch's claim, replica b takes the rest over and
// delivers it; when a's delivery returns, a does not deliver what b took.
// Every entry reaches the target exactly once.
func TestClaimTakenOverMidBatch(t *testing.T) {
	clock := &testClock{now: t0}
	target := &countingTarget{block: "d0", entered: make(chan struct{}), release: make(chan struct{}), calls: map[string]int{}}
	// The batch is claimed for 1m; an attempt may take 5m, so the claim of
	// the entry being delivered outlasts the batch's.
	a, b := claimReplicas(t, clock, target, Options{ClaimFor: time.Minute, DeliveryTimeout: 5 * time.Minute}, 3)

	done := make(chan struct{})
	go func() {
		defer close(done)
		a.round(t.Context())
	}()
	<-target.entered // a is delivering d0, holding d1 and d2
	clock.Add(2 * time.Minute)
	b.round(t.Context()) // a's claim on d1 and d2 has expired: b takes them
	if got := target.count("d0"); got != 1 {
		t.Errorf("d0 delivered %d times while a delivers it; want 1 (b may not take an entry whose attempt runs)", got)
	}
	close(target.release)
	<-done
	for _, id := range []string{"d0", "d1", "d2"} {
		if got := target.count(id); got != 1 {
			t.Errorf("%s reached the target %d times; want 1", id, got)
		}
	}
	for _, id := range []string{"d0", "d1", "d2"} {
		es, err := a.s.log.Entries(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Target == target.Name() && (e.Status != changes.DeliveryDelivered || e.Attempts != 1) {
				t.Errorf("%s: entry %s with %d attempts; want delivered with 1", id, e.Status, e.Attempts)
			}
		}
	}
}

// TestClaimReleasedWhenBatchStops: replica a's batch stops at its first
// failure; the entries it claimed and did not attempt are released at
// once, so replica b delivers them at the same instant instead of after
// the claim expires.
func TestClaimReleasedWhenBatchStops(t *testing.T) {
	clock := &testClock{now: t0}
	target := &countingTarget{fail: map[string]bool{"d0": true}, calls: map[string]int{}}
	a, b := claimReplicas(t, clock, target, Options{ClaimFor: time.Hour, MinBackoff: time.Minute, MaxBackoff: time.Minute}, 3)

	if wait := a.round(t.Context()); wait != time.Minute {
		t.Fatalf("a's round after d0 failed waits %s; want the 1m backoff", wait)
	}
	if got := target.count("d1") + target.count("d2"); got != 0 {
		t.Fatalf("a went on to d1, d2 after the target failed (%d calls); want it to stop", got)
	}
	b.round(t.Context()) // the clock has not moved: a's claim (1h) is still running
	for id, want := range map[string]int{"d0": 1, "d1": 1, "d2": 1} {
		if got := target.count(id); got != want {
			t.Errorf("%s reached the target %d times; want %d", id, got, want)
		}
	}
	// d0 waits for its backoff, then a's next round delivers it.
	target.mu.Lock()
	target.fail = nil
	target.mu.Unlock()
	clock.Add(time.Minute)
	a.round(t.Context())
	if got := target.count("d0"); got != 2 {
		t.Errorf("d0 reached the target %d times after its backoff; want 2 (the failed call and the delivery)", got)
	}
}
