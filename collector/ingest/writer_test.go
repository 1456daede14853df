package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/collector/storage"
	"github.com/telltale-dev/telltale/samples"
)

func openTestStorage(t *testing.T) *storage.Storage {
	t.Helper()
	st, err := storage.Open(storage.Options{Dir: t.TempDir(), OutOfOrderWindow: time.Hour, MaxExemplars: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// count returns the number of samples stored for series matching name.
func count(t *testing.T, st *storage.Storage, name string) int {
	t.Helper()
	q, err := st.Querier(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	n := 0
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
	}
	return n
}

func batchOf(key string, t0 int64, lbls ...string) *samples.Batch {
	b := &samples.Batch{}
	var k []byte
	if key != "" {
		k = []byte(key)
	}
	b.StartSeries(k)
	for i := 0; i+1 < len(lbls); i += 2 {
		b.AddLabel(lbls[i], lbls[i+1])
	}
	b.AddSample(t0, 1)
	b.AddSample(t0+1000, 2)
	return b
}

// TestWriterPartial: a series over a limit is rejected by name, the valid
// series of the same batch are committed (issue 15: all-or-nothing lost
// the good series along with the bad).
func TestWriterPartial(t *testing.T) {
	st := openTestStorage(t)
	w := NewWriter(st, Options{Limits: Limits{MaxLabelsPerSeries: 3}})
	now := time.Now().UnixMilli()
	b := batchOf("", now, "__name__", "good", "a", "1")
	b.StartSeries(nil)
	b.AddLabel("__name__", "good2")
	b.AddLabel("a", "1")
	b.AddLabel("b", "1")
	b.AddLabel("c", "1") // 4 labels: over the limit
	b.AddSample(now, 1)
	written, err := w.Write(t.Context(), b)
	var perr *PartialError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &perr) || !strings.Contains(err.Error(), "-ingest.max-labels-per-series=3") || !strings.Contains(err.Error(), "good2{") {
		t.Fatalf("got %v; want a PartialError naming good2 and the flag", err)
	}
	if written != (Written{Samples: 2}) || perr.Rejected != 1 || perr.RejectedSeries != 1 {
		t.Fatalf("got written %+v, rejected %d of %d series; want 2 samples written, 1 rejected of 1 series", written, perr.Rejected, perr.RejectedSeries)
	}
	if n := count(t, st, "good"); n != 2 {
		t.Fatalf("got %d samples of the valid series stored; want 2", n)
	}
	if n := count(t, st, "good2"); n != 0 {
		t.Fatalf("got %d samples of the rejected series stored; want 0", n)
	}
	if _, err := w.Write(t.Context(), batchOf("", now, "__name__", "good", "a", "1")); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, "good"); n != 2 {
		t.Fatalf("got %d samples; want 2", n)
	}
}

func TestWriterCacheAndStaleRef(t *testing.T) {
	st := openTestStorage(t)
	w := NewWriter(st, Options{})
	now := time.Now().UnixMilli()
	for i := 0; i < 3; i++ {
		if _, err := w.Write(t.Context(), batchOf("k1", now+int64(i)*10_000, "__name__", "cached", "x", "y")); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.cacheMis.Get(); got != 1 {
		t.Fatalf("got %d cache misses; want 1 (the first write)", got)
	}
	// A stale reference (e.g. after head GC) falls back to the labels.
	e, _ := w.cache.get([]byte("k1"))
	e.ref = promstorage.SeriesRef(1 << 40)
	w.cache.put([]byte("k1"), e)
	if _, err := w.Write(t.Context(), batchOf("k1", now+100_000, "__name__", "cached", "x", "y")); err != nil {
		t.Fatal(err)
	}
	if n := count(t, st, "cached"); n != 8 {
		t.Fatalf("got %d samples; want 8", n)
	}
	e2, _ := w.cache.get([]byte("k1"))
	if e2.ref == e.ref {
		t.Fatalf("stale reference was not replaced in the cache")
	}
	if got := w.staleRefs.Get(); got != 1 {
		t.Fatalf("got %d stale references counted; want 1", got)
	}
}

func TestWriterErrors(t *testing.T) {
	st := openTestStorage(t)
	now := time.Unix(1_700_000_000, 0)
	w := NewWriter(st, Options{
		Limits: Limits{MaxLabelNameLen: 8, MaxLabelValueLen: 8, MaxFutureDrift: time.Minute},
		Now:    func() time.Time { return now },
	})
	f := func(name string, b *samples.Batch, want string) {
		t.Helper()
		_, err := w.Write(t.Context(), b)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v; want ErrInvalid containing %q", name, err, want)
		}
	}
	ms := now.UnixMilli()
	f("no name", batchOf("", ms, "job", "x"), "no metric name")
	f("long name", batchOf("", ms, "__name__", "m", "verylonglabel", "x"), "-ingest.max-label-name-len=8")
	f("long value", batchOf("", ms, "__name__", "m", "a", "verylongvalue"), "-ingest.max-label-value-len=8")
	f("future", batchOf("", ms+2*60_000, "__name__", "m"), "-ingest.max-future-drift")
	f("dup", batchOf("", ms, "__name__", "m", "a", "1", "a", "2"), "twice")
	f("utf8", batchOf("", ms, "__name__", "m\xff"), "UTF-8")
	if _, err := w.Write(t.Context(), batchOf("", ms, "__name__", "m")); err != nil {
		t.Fatal(err)
	}
	// A different value at the same timestamp is refused; the same value is fine.
	b := &samples.Batch{}
	b.StartSeries(nil)
	b.AddLabel("__name__", "m")
	b.AddSample(ms+1000, 99) // the newest sample; older ones go to the out-of-order head
	f("duplicate timestamp", b, "different value")
	if _, err := w.Write(t.Context(), batchOf("", ms, "__name__", "m")); err != nil {
		t.Fatalf("re-sending identical samples: %v; want nil (idempotent retries)", err)
	}
	// Too old for the out-of-order window.
	f("too old", batchOf("", ms-3*3600_000, "__name__", "m"), "out-of-order window")
}

func TestAcquireOverloaded(t *testing.T) {
	st := openTestStorage(t)
	w := NewWriter(st, Options{Limits: Limits{MaxConcurrentInserts: 1, MaxQueueDuration: 50 * time.Millisecond}})
	release, err := w.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Acquire(t.Context())
	if !errors.Is(err, ErrOverloaded) || StatusOf(err) != 503 {
		t.Fatalf("got %v (status %d); want ErrOverloaded and 503", err, StatusOf(err))
	}
	release()
	release2, err := w.Acquire(t.Context())
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	release2()
}
