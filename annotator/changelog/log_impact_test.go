package changelog

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// TestUpgradeFromV1: a deploy log written before the impact migration opens,
// migrates to the current version and keeps its deploys, without impact.
func TestUpgradeFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	sdb, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	db := sdb
	if err := migrate(t.Context(), &changelogDB{DB: sdb, d: sqlite}, migrations[:1]); err != nil {
		t.Fatalf("migrate to v1: %v", err)
	}
	if _, err := db.Exec(`INSERT INTO deploys (id, service, time_ms, status, created_ms, updated_ms) VALUES ('old', 'api', 1, 'success', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	l := openLog(t, path)
	if v, err := l.SchemaVersion(t.Context()); err != nil || v != len(migrations) {
		t.Fatalf("schema version after upgrade: got %d, %v; want %d", v, err, len(migrations))
	}
	d := mustGet(t, l, "old")
	if d.Impact != nil || d.Service != "api" {
		t.Fatalf("old deploy after upgrade: got %+v (impact %+v); want service api without impact", d, d.Impact)
	}
	if _, ok, err := l.ImpactReport(t.Context(), "old"); ok || err != nil {
		t.Fatalf("ImpactReport(old): got ok=%v, %v; want none", ok, err)
	}
}

func TestSetImpact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	l := openLog(t, path)
	insert(t, l, changes.Change{ID: "a", Kind: "deploy", Service: "api", Time: t0, Status: "success"})
	insert(t, l, changes.Change{ID: "b", Kind: "deploy", Service: "api", Time: t0.Add(time.Minute), Status: "success"})
	at := t0.Add(20 * time.Minute)
	rec := ImpactRecord{Verdict: "regressed", Summary: "error ratio 0.4% → 2.1% ▲ regressed", Regressions: 1,
		ComputedAt: at, Report: []byte(`{"verdict":"regressed"}`)}
	err := l.Update(t.Context(), at, func(tx *Tx) error { return tx.SetImpact(t.Context(), "a", rec) })
	if err != nil {
		t.Fatal(err)
	}
	err = l.Update(t.Context(), at, func(tx *Tx) error { return tx.SetImpact(t.Context(), "nope", rec) })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetImpact(unknown): got %v; want ErrNotFound", err)
	}
	l.Close()

	l = openLog(t, path)
	d := mustGet(t, l, "a")
	want := changes.Impact{Status: changes.ImpactDone, Verdict: rec.Verdict, Summary: rec.Summary, Regressions: 1}
	if d.Impact == nil || d.Impact.ComputedAt == nil || !d.Impact.ComputedAt.Equal(at) {
		t.Fatalf("impact after reopen: got %+v; want computed at %v", d.Impact, at)
	}
	got := *d.Impact
	got.ComputedAt = nil
	if got != want {
		t.Fatalf("impact after reopen: got %+v; want %+v", got, want)
	}
	list, err := l.List(t.Context(), changes.Filter{Limit: 10})
	if err != nil || len(list) != 2 || list[0].Impact != nil || list[1].Impact == nil || list[1].Impact.Verdict != "regressed" {
		t.Fatalf("List: got %+v, %v; want b without impact, a regressed", list, err)
	}
	report, ok, err := l.ImpactReport(t.Context(), "a")
	if err != nil || !ok || string(report) != `{"verdict":"regressed"}` {
		t.Fatalf("ImpactReport(a): got %s, %v, %v; want the stored JSON", report, ok, err)
	}
	if _, ok, err := l.ImpactReport(t.Context(), "b"); ok || err != nil {
		t.Fatalf("ImpactReport(b): got ok=%v, %v; want none yet", ok, err)
	}
	if _, _, err := l.ImpactReport(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ImpactReport(unknown): got %v; want ErrNotFound", err)
	}
	err = l.Update(t.Context(), at, func(tx *Tx) error { return tx.SetImpact(t.Context(), "b", ImpactRecord{}) })
	if err == nil {
		t.Fatal("SetImpact without verdict: got nil error; want a BUG error")
	}
}

// TestEnqueueAt: an entry scheduled for later is not due before its time,
// across a reopen.
func TestEnqueueAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	l := openLog(t, path)
	due := t0.Add(15*time.Minute + 30*time.Second)
	err := l.Update(t.Context(), t0, func(tx *Tx) error {
		d := changes.Change{ID: "a", Kind: "deploy", Service: "api", Time: t0, Status: "success"}
		if err := tx.Insert(t.Context(), &d); err != nil {
			return err
		}
		return tx.EnqueueAt(t.Context(), "a", "impact", "analyse", due)
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openLog(t, path)
	if es, err := l.Due(t.Context(), "impact", due.Add(-time.Millisecond), 10); err != nil || len(es) != 0 {
		t.Fatalf("Due before the time: got %+v, %v; want none", es, err)
	}
	next, ok, err := l.NextDue(t.Context(), "impact")
	if err != nil || !ok || !next.Equal(due) {
		t.Fatalf("NextDue: got %v %v %v; want %v", next, ok, err, due)
	}
	es, err := l.Due(t.Context(), "impact", due, 10)
	if err != nil || len(es) != 1 || es[0].Event != "analyse" || !es[0].CreatedAt.Equal(t0) {
		t.Fatalf("Due at the time: got %+v, %v; want the analyse entry created at t0", es, err)
	}
}
