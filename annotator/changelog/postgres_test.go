package changelog

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/collector/enginetest"
)

func TestRebind(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := rebind(postgres, in); got != want {
			t.Errorf("rebind(%q) = %q; want %q", in, got, want)
		}
		if got := rebind(sqlite, in); got != in {
			t.Errorf("rebind for SQLite changed %q to %q", in, got)
		}
	}
	f(`SELECT 1`, `SELECT 1`)
	f(`a = ? AND b IN (?, ?)`, `a = $1 AND b IN ($2, $3)`)
	f(`x = '?' AND y = ?`, `x = '?' AND y = $1`)
	f(`to_tsquery('simple', ?)`, `to_tsquery('simple', $1)`)
}

func TestPGTSQuery(t *testing.T) {
	if got, want := pgTSQuery([][]string{{"checkout", "timeout"}, {"o'brien"}}), `('checkout' <-> 'timeout':*) & ('o''brien':*)`; got != want {
		t.Errorf("pgTSQuery = %s; want %s", got, want)
	}
}

func TestRedactPassword(t *testing.T) {
	if got := redactPassword("postgres://telltale:s3cret@db:5432/changes"); got != "postgres://telltale:***@db:5432/changes" {
		t.Errorf("redactPassword = %s", got)
	}
}

// TestPostgresLog runs the change log on a real PostgreSQL: the same
// migrations (applied once when two replicas open it together), insert,
// list and full-text search, and the outbox claimed by one replica at a
// time and taken over when its claim expires.
func TestPostgresLog(t *testing.T) {
	pg := enginetest.StartPostgres(t)
	url := pg.Database(t, "changes")

	// Two replicas start together.
	var wg sync.WaitGroup
	logs := make([]*Log, 2)
	errs := make([]error, 2)
	for i := range logs {
		wg.Go(func() { logs[i], errs[i] = OpenLog(t.Context(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: OpenLog: %v", i, err)
		}
		t.Cleanup(func() { logs[i].Close() })
	}
	a, b := logs[0], logs[1]
	if v, err := a.SchemaVersion(t.Context()); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}

	d1 := insert(t, a, changes.Change{ID: "d1", Kind: changes.KindDeploy, Service: "checkout", Env: "prod", Version: "v1",
		Message: "raise the checkout timeout", Time: t0, Status: "success"}, "grafana")
	d2 := insert(t, b, changes.Change{ID: "d2", Kind: changes.KindDeploy, Service: "search", Env: "prod", Version: "v2",
		Message: "new ranking", Time: t0.Add(time.Minute), Status: "success"}, "grafana")
	if d1.Seq == 0 || d2.Seq <= d1.Seq {
		t.Errorf("seqs %d, %d; want increasing from 1", d1.Seq, d2.Seq)
	}
	got, err := b.Get(t.Context(), "d1")
	if err != nil || got.Message != d1.Message || !got.Time.Equal(t0) {
		t.Errorf("replica b reads d1 as %+v, %v", got, err)
	}
	for text, want := range map[string][]string{"checkout timeout": {"d1"}, "rank": {"d2"}, "prod": {"d2", "d1"}, "nothing": nil} {
		found, err := a.List(t.Context(), changes.Filter{Text: text, Limit: 10})
		if err != nil {
			t.Fatalf("search %q: %v", text, err)
		}
		var ids []string
		for _, c := range found {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("search %q = %q; want %q", text, ids, want)
		}
	}

	// The outbox: what replica a claims, replica b does not get until the
	// claim expires.
	a.ClaimFor, b.ClaimFor = time.Minute, time.Minute
	now := t0.Add(time.Hour)
	ea, err := a.Due(t.Context(), "grafana", now, 10)
	if err != nil || len(ea) != 2 {
		t.Fatalf("replica a: Due = %d entries, %v; want 2", len(ea), err)
	}
	eb, err := b.Due(t.Context(), "grafana", now, 10)
	if err != nil || len(eb) != 0 {
		t.Fatalf("replica b: Due while a holds the claim = %d entries, %v; want none", len(eb), err)
	}
	if held, err := b.StartAttempt(t.Context(), ea[0].Seq, now, now.Add(time.Minute)); err != nil || held {
		t.Fatalf("replica b: StartAttempt of a's entry = %v, %v; want not held", held, err)
	}
	if held, err := a.StartAttempt(t.Context(), ea[0].Seq, now, now.Add(time.Minute)); err != nil || !held {
		t.Fatalf("replica a: StartAttempt = %v, %v; want held", held, err)
	}
	if err := a.MarkDelivered(t.Context(), ea[0].Seq, now); err != nil {
		t.Fatal(err)
	}
	// Replica a dies with the second entry claimed and attempted.
	if held, err := a.StartAttempt(t.Context(), ea[1].Seq, now, now.Add(time.Minute)); err != nil || !held {
		t.Fatalf("replica a: StartAttempt = %v, %v; want held", held, err)
	}
	eb, err = b.Due(t.Context(), "grafana", now.Add(2*time.Minute), 10)
	if err != nil || len(eb) != 1 || eb[0].ChangeID != "d2" || eb[0].TargetAttempts != 1 {
		t.Fatalf("replica b after the claim expired: Due = %+v, %v; want d2 with 1 earlier attempt", eb, err)
	}
	// a's claim on d2 has passed to b: a may not attempt it any more.
	if held, err := a.StartAttempt(t.Context(), ea[1].Seq, now.Add(2*time.Minute), now.Add(3*time.Minute)); err != nil || held {
		t.Fatalf("replica a: StartAttempt after b took the entry = %v, %v; want not held", held, err)
	}
}

// TestPostgresSameIDAtOnce: two replicas recording the same deploy id at
// once (a CI that retries on the other replica while its first request
// still runs) all get the one stored deploy: no error (it used to be a 503
// from the unique id), one change in the log.
func TestPostgresSameIDAtOnce(t *testing.T) {
	pg := enginetest.StartPostgres(t)
	url := pg.Database(t, "changes")
	var replicas []*Service
	for range 2 {
		s, err := Open(t.Context(), Options{DBPath: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		replicas = append(replicas, s)
	}
	const rounds, callers = 20, 4
	for i := range rounds {
		id := fmt.Sprintf("dep-%d", i)
		var wg sync.WaitGroup
		got := make([]changes.Change, callers)
		errs := make([]error, callers)
		for k := range callers {
			wg.Go(func() {
				got[k], errs[k] = replicas[k%2].Record(t.Context(), changes.Change{ID: id, Kind: changes.KindDeploy, Service: "api", Env: "prod", Version: "v1"})
			})
		}
		wg.Wait()
		for k := range callers {
			if errs[k] != nil {
				t.Errorf("%s: caller %d (replica %d): %v; want the stored deploy", id, k, k%2+1, errs[k])
			} else if got[k].Seq != got[0].Seq {
				t.Errorf("%s: caller %d got seq %d; want %d, the one stored deploy", id, k, got[k].Seq, got[0].Seq)
			}
		}
	}
	list, err := replicas[1].List(t.Context(), changes.Filter{Service: "api", Limit: 100})
	if err != nil || len(list) != rounds {
		t.Errorf("the log lists %d deploys, %v; want %d, each once", len(list), err, rounds)
	}
}

// TestCopyLogToPostgres: a SQLite change log copied into PostgreSQL keeps
// its changes, seqs and delivery states, and new changes go on after them.
func TestCopyLogToPostgres(t *testing.T) {
	src := openLog(t, filepath.Join(t.TempDir(), "deploys.db"))
	for i, id := range []string{"a", "b", "c"} {
		insert(t, src, changes.Change{ID: id, Kind: changes.KindDeploy, Service: "api", Time: t0.Add(time.Duration(i) * time.Minute), Status: "success",
			Fields: map[string]string{"k": id}}, "grafana")
	}
	e, _ := src.Due(t.Context(), "grafana", t0.Add(time.Hour), 1)
	if err := src.MarkDelivered(t.Context(), e[0].Seq, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	pg := enginetest.StartPostgres(t)
	dst, err := OpenLog(t.Context(), pg.Database(t, "changes"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	counts, err := CopyLog(t.Context(), dst, src)
	if err != nil || counts["changes"] != 3 || counts["outbox"] != 3 {
		t.Fatalf("CopyLog = %v, %v; want 3 changes and 3 outbox entries", counts, err)
	}
	for _, id := range []string{"a", "b", "c"} {
		s, _ := src.Get(t.Context(), id)
		d, err := dst.Get(t.Context(), id)
		if err != nil || d.Seq != s.Seq || d.Fields["k"] != id || !d.Time.Equal(s.Time) {
			t.Errorf("copied %s = %+v, %v; want %+v", id, d, err, s)
		}
	}
	due, err := dst.Due(t.Context(), "grafana", t0.Add(time.Hour), 10)
	if err != nil || len(due) != 2 {
		t.Errorf("pending after the copy: %d, %v; want 2 (one was delivered)", len(due), err)
	}
	n := insert(t, dst, changes.Change{ID: "d", Kind: changes.KindDeploy, Service: "api", Time: t0.Add(time.Hour), Status: "success"})
	if n.Seq != 4 {
		t.Errorf("the next change after the copy has seq %d; want 4", n.Seq)
	}
	if _, err := CopyLog(t.Context(), dst, src); err == nil {
		t.Error("a second copy into a log that holds changes was accepted")
	}
}
