package changelog

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
)

func openLog(t *testing.T, path string) *Log {
	t.Helper()
	l, err := OpenLog(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func insert(t *testing.T, l *Log, d changes.Change, targets ...string) changes.Change {
	t.Helper()
	err := l.Update(t.Context(), t0, func(tx *Tx) error {
		if err := tx.Insert(t.Context(), &d); err != nil {
			return err
		}
		for _, target := range targets {
			if err := tx.Enqueue(t.Context(), d.ID, target, "recorded"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("insert %s: %v", d.ID, err)
	}
	return d
}

func TestOpenSettings(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "deploys.db"))
	var mode string
	var sync int
	if err := l.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := l.db.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 {
		t.Fatalf("got journal_mode=%s synchronous=%d; want wal and 2 (FULL)", mode, sync)
	}
	v, err := l.SchemaVersion(t.Context())
	if err != nil || v != len(migrations) {
		t.Fatalf("got schema version %d, %v; want %d", v, err, len(migrations))
	}
}

func TestOpenBadPath(t *testing.T) {
	f := func(path, want string) {
		t.Helper()
		_, err := OpenLog(t.Context(), path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Open(%q): got %v; want error containing %q", path, err, want)
		}
	}
	f("", "path is empty")
	f(filepath.Join(t.TempDir(), "a?b.db"), "'?'")
	f(filepath.Join(t.TempDir(), "missing-dir", "x", "deploys.db"), "cannot open change log")
}

func TestListOrderAndFilters(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "deploys.db"))
	insert(t, l, changes.Change{ID: "a", Kind: "deploy", Service: "api", Env: "prod", Time: t0, Status: "success"})
	insert(t, l, changes.Change{ID: "b", Kind: "deploy", Service: "api", Env: "staging", Time: t0.Add(time.Minute), Status: "success"})
	insert(t, l, changes.Change{ID: "c", Kind: "deploy", Service: "web", Env: "prod", Time: t0.Add(2 * time.Minute), Status: "success"})
	insert(t, l, changes.Change{ID: "d", Kind: "deploy", Service: "api", Env: "prod", Time: t0, Status: "success"}) // same time as a, later seq

	f := func(filter changes.Filter, want string) {
		t.Helper()
		if filter.Limit == 0 {
			filter.Limit = 100
		}
		list, err := l.List(t.Context(), filter)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range list {
			ids = append(ids, d.ID)
		}
		if got := strings.Join(ids, ","); got != want {
			t.Fatalf("List(%+v): got %q; want %q", filter, got, want)
		}
	}
	f(changes.Filter{}, "c,b,d,a")
	f(changes.Filter{Limit: 2}, "c,b")
	f(changes.Filter{Service: "api"}, "b,d,a")
	f(changes.Filter{Service: "api", Env: "prod"}, "d,a")
	f(changes.Filter{From: t0.Add(time.Minute)}, "c,b")
	f(changes.Filter{To: t0.Add(time.Minute)}, "b,d,a")
	f(changes.Filter{From: t0.Add(time.Minute), To: t0.Add(time.Minute)}, "b")
	f(changes.Filter{Service: "nope"}, "")

	n, err := l.CountThrough(t.Context(), mustGet(t, l, "d"))
	if err != nil || n != 2 {
		t.Fatalf("CountThrough(d): got %d, %v; want 2", n, err)
	}
	n, err = l.CountThrough(t.Context(), mustGet(t, l, "a"))
	if err != nil || n != 1 {
		t.Fatalf("CountThrough(a): got %d, %v; want 1", n, err)
	}
}

func mustGet(t *testing.T, l *Log, id string) changes.Change {
	t.Helper()
	d, err := l.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return d
}

func TestLogGetNotFound(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "deploys.db"))
	_, err := l.Get(t.Context(), "nope")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("got %v; want ErrNotFound", err)
	}
}

func TestRollbackDropsOutbox(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "deploys.db"))
	boom := errors.New("boom")
	err := l.Update(t.Context(), t0, func(tx *Tx) error {
		d := changes.Change{ID: "x", Kind: "deploy", Service: "api", Time: t0, Status: "success"}
		if err := tx.Insert(t.Context(), &d); err != nil {
			return err
		}
		if err := tx.Enqueue(t.Context(), "x", "grafana", "recorded"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v; want boom", err)
	}
	if _, err := l.Get(t.Context(), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deploy after rollback: got %v; want ErrNotFound", err)
	}
	due, err := l.Due(t.Context(), "grafana", t0.Add(time.Hour), 10)
	if err != nil || len(due) != 0 {
		t.Fatalf("outbox after rollback: got %d entries, %v; want none", len(due), err)
	}
}

// TestReopen: what was committed is there after close and reopen, with
// pending outbox entries still due.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	l, err := OpenLog(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	end := t0.Add(90 * time.Second)
	insert(t, l, changes.Change{ID: "a", Kind: "deploy", Service: "api", Env: "prod", Version: "1.2.3", Commit: "abc", Who: "alice",
		Message: "fix\nlogin", Link: "https://ci/1", Time: t0.Add(123 * time.Millisecond), EndTime: &end, Status: "failed"}, "grafana", "series")
	due, _ := l.Due(t.Context(), "series", t0, 10)
	if err := l.MarkDelivered(t.Context(), due[0].Seq, t0); err != nil {
		t.Fatal(err)
	}
	if err := l.SetGrafanaAnnotationID(t.Context(), "a", 42); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, path)
	d := mustGet(t, l, "a")
	want := changes.Change{ID: "a", Kind: "deploy", Service: "api", Env: "prod", Version: "1.2.3", Commit: "abc", Who: "alice",
		Message: "fix\nlogin", Link: "https://ci/1", Time: t0.Add(123 * time.Millisecond), Status: "failed", GrafanaAnnotationID: 42}
	if d.EndTime == nil || !d.EndTime.Equal(end) {
		t.Fatalf("end time: got %v; want %v", d.EndTime, end)
	}
	d.EndTime, d.Seq, d.CreatedAt, d.UpdatedAt = nil, 0, time.Time{}, time.Time{}
	if d.Time.Equal(want.Time) {
		d.Time = want.Time
	}
	if d.ID != want.ID || d.Service != want.Service || d.Env != want.Env || d.Version != want.Version || d.Commit != want.Commit ||
		d.Who != want.Who || d.Message != want.Message || d.Link != want.Link || !d.Time.Equal(want.Time) || d.Status != want.Status ||
		d.GrafanaAnnotationID != want.GrafanaAnnotationID {
		t.Fatalf("after reopen got %+v; want %+v", d, want)
	}
	due, err = l.Due(t.Context(), "grafana", t0, 10)
	if err != nil || len(due) != 1 || due[0].ChangeID != "a" {
		t.Fatalf("pending grafana entry after reopen: got %+v, %v; want one for deploy a", due, err)
	}
	due, _ = l.Due(t.Context(), "series", t0, 10)
	if len(due) != 0 {
		t.Fatalf("delivered series entry came back after reopen: %+v", due)
	}
}

func TestOutboxOrderingAndStates(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "deploys.db"))
	ctx := t.Context()
	insert(t, l, changes.Change{ID: "a", Kind: "deploy", Service: "api", Time: t0, Status: "running"}, "grafana")
	insert(t, l, changes.Change{ID: "b", Kind: "deploy", Service: "api", Time: t0, Status: "success"}, "grafana")
	if err := l.Update(ctx, t0, func(tx *Tx) error {
		if err := tx.SetEnd(ctx, "a", &t0, "success"); err != nil {
			return err
		}
		return tx.Enqueue(ctx, "a", "grafana", "finished")
	}); err != nil {
		t.Fatal(err)
	}
	seqs := func(now time.Time) string {
		t.Helper()
		due, err := l.Due(ctx, "grafana", now, 10)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range due {
			s = append(s, e.ChangeID+"/"+e.Event)
		}
		return strings.Join(s, ",")
	}
	if got, want := seqs(t0), "a/recorded,b/recorded"; got != want {
		t.Fatalf("due: got %q; want %q (a/finished waits for a/recorded)", got, want)
	}
	due, _ := l.Due(ctx, "grafana", t0, 1)
	first := due[0]
	if held, err := l.StartAttempt(ctx, first.Seq, t0, t0.Add(time.Minute)); err != nil || !held {
		t.Fatalf("StartAttempt on SQLite = %v, %v; want held (no claims)", held, err)
	}
	if err := l.MarkRetry(ctx, first.Seq, strings.Repeat("x", 2000), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(t0), "b/recorded"; got != want {
		t.Fatalf("due after retry: got %q; want %q", got, want)
	}
	next, ok, err := l.NextDue(ctx, "grafana")
	if err != nil || !ok || !next.Equal(t0) {
		t.Fatalf("NextDue: got %v %v %v; want %v", next, ok, err, t0)
	}
	states, err := l.DeliveryStates(ctx, []string{"a", "b", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	sa := states["a"]
	if len(sa) != 1 || sa[0].Status != changes.DeliveryPending || sa[0].Attempts != 1 || len(sa[0].LastError) > maxErrorLen+4 || !sa[0].NextAttempt.Equal(t0) {
		t.Fatalf("state of a: got %+v; want pending, 1 attempt, bounded error, next %v", sa, t0)
	}
	if len(states["missing"]) != 0 {
		t.Fatalf("state of missing deploy: got %+v; want none", states["missing"])
	}
	if err := l.MarkDelivered(ctx, first.Seq, t0); err != nil {
		t.Fatal(err)
	}
	if got, want := seqs(t0.Add(time.Minute)), "b/recorded,a/finished"; got != want {
		t.Fatalf("due after delivery: got %q; want %q (outbox order)", got, want)
	}
	due, _ = l.Due(ctx, "grafana", t0, 10)
	due = due[1:]
	if due[0].TargetAttempts != 1 {
		t.Fatalf("TargetAttempts of a/finished: got %d; want 1 (the attempt of a/recorded)", due[0].TargetAttempts)
	}
	if err := l.MarkFailed(ctx, due[0].Seq, "nope", t0); err != nil {
		t.Fatal(err)
	}
	states, _ = l.DeliveryStates(ctx, []string{"a"})
	if s := states["a"][0]; s.Status != changes.DeliveryFailed || s.LastError != "nope" {
		t.Fatalf("state of a after failure: got %+v; want failed with error nope", s)
	}
	counts, err := l.PendingCounts(ctx)
	if err != nil || counts["grafana"] != 1 {
		t.Fatalf("PendingCounts: got %v, %v; want grafana=1", counts, err)
	}
	_, ok, _ = l.NextDue(ctx, "series")
	if ok {
		t.Fatalf("NextDue(series): got ok; want nothing pending")
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	l := openLog(t, path)
	if _, err := l.db.Exec(`INSERT INTO schema_migrations (version, name, applied_ms) VALUES (99, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	l.Close()
	_, err := OpenLog(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), "newer telltale") {
		t.Fatalf("got %v; want a refusal naming version 99 and the fix", err)
	}
}

func TestMigrateAppliesNewOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	openLog(t, path).Close()
	l := openLog(t, path)
	extra := append(append([]Migration{}, migrations...), Migration{Version: len(migrations) + 1, Name: "notes",
		SQL: []string{`ALTER TABLE changes ADD COLUMN notes TEXT`}})
	for range 2 { // the second run must be a no-op
		if err := migrate(context.Background(), l.db, extra); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	v, _ := l.SchemaVersion(t.Context())
	if v != len(extra) {
		t.Fatalf("got version %d; want %d", v, len(extra))
	}
	if _, err := l.db.Exec(`UPDATE changes SET notes = 'x'`); err != nil {
		t.Fatalf("new column missing: %v", err)
	}
}
