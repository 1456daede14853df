package changelog

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/impact"
)

// TestChangeKinds: every kind is recorded and read back whole; deploys
// recorded through /api/v1/changes are deploys on /api/v1/deploys; other
// kinds are not.
func TestChangeKinds(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	note, _ := e.postChange(`{"kind":"note","service":"shop","env":"prod","who":"alice","message":"Raised the checkout timeout to 5s",
		"link":"https://wiki.example.com/n/1","fields":{"ticket":"OPS-42"},"time":"2024-05-01T11:00:00Z"}`, 201)
	if note.Kind != "note" || note.Fields["ticket"] != "OPS-42" || note.Status != changes.StatusSuccess || !note.Time.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("note: got %+v; want kind note with its field, success, at 11:00", note)
	}
	if got := e.getChange(note.ID); got.Message != note.Message || got.Fields["ticket"] != "OPS-42" || got.Who != "alice" {
		t.Fatalf("GET note: got %+v; want %+v", got, note)
	}
	custom, _ := e.postChange(`{"kind":"feature_flag","service":"shop"}`, 201)
	if custom.Kind != "feature_flag" {
		t.Fatalf("own kind: got %q", custom.Kind)
	}
	dep, _ := e.postChange(`{"id":"d1","kind":"deploy","service":"shop","version":"v2"}`, 201)
	if got := e.get(dep.ID); got.Kind != changes.KindDeploy || got.Version != "v2" {
		t.Fatalf("deploy through /changes on /deploys: got %+v", got)
	}
	if ids := ids(e.list("")); ids != "d1" {
		t.Fatalf("/api/v1/deploys lists %q; want only the deploy d1", ids)
	}
	r := e.do("GET", "/api/v1/deploys/"+note.ID, "")
	if r.Code != 404 || !strings.Contains(r.Error, "deploy") {
		t.Fatalf("a note on /api/v1/deploys/{id}: got %d %q; want 404", r.Code, r.Error)
	}
	// A deploy id taken by another kind cannot be reused by the deploy API.
	r = e.do("POST", "/api/v1/deploys", `{"id":"`+note.ID+`","service":"shop"}`)
	if r.Code != 409 || !strings.Contains(r.Error, "taken by a note change") {
		t.Fatalf("deploy with a note's id: got %d %q; want 409", r.Code, r.Error)
	}
}

// TestChangeFilters: kind, service, env (changes without env match every
// env), subject, open, time overlap and full-text search.
func TestChangeFilters(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	e.postChange(`{"id":"dep","kind":"deploy","service":"shop","env":"prod","version":"v1.2.3","message":"faster checkout","time":"`+at(-50*time.Minute)+`"}`, 201)
	e.postChange(`{"id":"sw","kind":"switch","service":"shop","env":"prod","subject":"slow_checkout","status":"running","fields":{"state":"on"},"message":"checkout timeout at the payment provider","time":"`+at(-40*time.Minute)+`"}`, 201)
	e.postChange(`{"id":"inc","kind":"incident","service":"shop","status":"running","message":"Zahlungsausfall: Grüße an die Bank","time":"`+at(-30*time.Minute)+`"}`, 201)
	e.postChange(`{"id":"cfg","kind":"config","service":"web","env":"staging","subject":"nginx.conf","message":"worker_connections 4096","time":"`+at(-20*time.Minute)+`"}`, 201)
	e.postChange(`{"id":"old","kind":"incident","service":"shop","env":"prod","message":"old outage","time":"`+at(-200*time.Minute)+`","end_time":"`+at(-100*time.Minute)+`"}`, 201)

	f := func(query, want string) {
		t.Helper()
		if got := ids(e.listChanges(query)); got != want {
			t.Errorf("GET /api/v1/changes%s: got %q; want %q", query, got, want)
		}
	}
	f("", "cfg,inc,sw,dep,old")
	f("?kind=incident", "inc,old")
	f("?kind=deploy,switch", "sw,dep")
	f("?kind=deploy&kind=config", "cfg,dep")
	f("?service=shop&env=prod", "inc,sw,dep,old") // inc has no env: every env
	f("?env=staging", "cfg,inc")
	f("?subject=slow_checkout", "sw")
	f("?open=true", "inc,sw")
	f("?from="+at(-35*time.Minute), "cfg,inc,sw")                       // sw started before from, still open
	f("?from="+at(-150*time.Minute)+"&to="+at(-120*time.Minute), "old") // a region overlapping the range
	f("?q=checkout", "sw,dep")
	f("?q=checkout+timeout", "sw")
	f("?q=CHECK", "sw,dep")   // prefix, any case
	f("?q=grusse", "")        // ß is no "ss"
	f("?q=Gruße", "inc")      // diacritics folded
	f("?q=v1.2.3", "dep")     // the words of a version, as a phrase
	f("?q=nginx.conf", "cfg") // the subject is searched
	f("?q=timeout&kind=deploy", "")
	f("?q=4096&service=web", "cfg")
	f("?limit=2", "cfg,inc")
}

// TestSupersede: a switch flipped back ends the region of its flip in the
// same transaction, at the new flip's time; the two flips are two changes,
// and the ended one is delivered as finished.
func TestSupersede(t *testing.T) {
	w := &fakeWriter{}
	var mu sync.Mutex
	var seen []string
	e := newEnv(t, Options{Writer: w, OnRecorded: func(c changes.Change) {
		mu.Lock()
		seen = append(seen, c.ID+"/"+c.Status)
		mu.Unlock()
	}}, true)
	now := time.Now().UTC().Truncate(time.Second)
	at := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	on, _ := e.postChange(`{"id":"on","kind":"switch","service":"demo","env":"dev","subject":"slow_checkout","status":"running",
		"who":"alice","message":"simulate a bad deploy","fields":{"state":"on"},"time":"`+at(-10*time.Minute)+`"}`, 201)
	if !on.Open() {
		t.Fatalf("flip on: got %+v; want an open change", on)
	}
	// Another service's and another switch's open changes stay open.
	e.postChange(`{"id":"other","kind":"switch","service":"demo","env":"dev","subject":"search","status":"running","time":"`+at(-9*time.Minute)+`"}`, 201)
	e.postChange(`{"id":"elsewhere","kind":"switch","service":"web","env":"dev","subject":"slow_checkout","status":"running","time":"`+at(-9*time.Minute)+`"}`, 201)
	off, _ := e.postChange(`{"id":"off","kind":"switch","service":"demo","env":"dev","subject":"slow_checkout","who":"bob",
		"message":"back to normal","fields":{"state":"off"},"time":"`+at(-2*time.Minute)+`"}`, 201)
	if off.Open() || off.Who != "bob" {
		t.Fatalf("flip off: got %+v; want a point change by bob", off)
	}
	ended := e.getChange("on")
	if ended.EndTime == nil || !ended.EndTime.Equal(now.Add(-2*time.Minute)) || ended.Status != changes.StatusSuccess || ended.Who != "alice" {
		t.Fatalf("superseded flip: got end %v status %s who %s; want ended at the off flip's time, success, still alice's", ended.EndTime, ended.Status, ended.Who)
	}
	for _, id := range []string{"other", "elsewhere"} {
		if c := e.getChange(id); !c.Open() {
			t.Fatalf("%s: got %+v; want still open", id, c)
		}
	}
	mu.Lock()
	got := strings.Join(seen, ",")
	mu.Unlock()
	if got != "on/running,other/running,elsewhere/running,on/success,off/success" {
		t.Fatalf("OnRecorded: got %s; want the superseded flip before the new one", got)
	}
	eventually(t, "end series of the band", func() bool {
		for _, s := range w.written() {
			if strings.HasPrefix(s.Labels, `telltale_change_end_time_seconds{env="dev",kind="switch",service="demo",status="success",subject="slow_checkout",who="alice"}`) &&
				s.T == now.Add(-2*time.Minute).UnixMilli() {
				return true
			}
		}
		return false
	})
}

// TestGrafanaKinds: a switch flip becomes an annotation tagged switch,
// service, env and subject; flipped back, it becomes a region.
func TestGrafanaKinds(t *testing.T) {
	gsrv, gc := newGrafana(t, "tok")
	e := newEnv(t, Options{Grafana: gc}, true)
	start := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)
	e.postChange(`{"id":"on","kind":"switch","service":"demo","env":"dev","subject":"slow_checkout","status":"running","who":"alice",
		"message":"why: <test>","fields":{"state":"on"},"time":"`+start.Format(time.RFC3339)+`"}`, 201)
	eventually(t, "annotation", func() bool { return e.delivered("on") })
	a := gsrv.Annotations()[0]
	if got, want := strings.Join(a.Tags, ","), "switch,service:demo,env:dev,subject:slow_checkout,change-id:on"; got != want {
		t.Fatalf("tags: got %q; want %q", got, want)
	}
	for _, want := range []string{"<b>Switch slow_checkout on (demo)</b>", "by alice", "(running)", "why: &lt;test&gt;"} {
		if !strings.Contains(a.Text, want) {
			t.Fatalf("text %q: want %q", a.Text, want)
		}
	}
	end := start.Add(7 * time.Minute)
	e.postChange(`{"id":"off","kind":"switch","service":"demo","env":"dev","subject":"slow_checkout","fields":{"state":"off"},"time":"`+end.Format(time.RFC3339)+`"}`, 201)
	eventually(t, "region", func() bool {
		for _, a := range gsrv.Annotations() {
			if slices.Contains(a.Tags, "change-id:on") {
				return a.Time == start.UnixMilli() && a.TimeEnd == end.UnixMilli()
			}
		}
		return false
	})
	eventually(t, "the second flip's annotation", func() bool { return e.delivered("off") })
	if gsrv.Creates() != 2 {
		t.Fatalf("creates: got %d; want 2 (one per flip)", gsrv.Creates())
	}
}

// fakeCatalog answers LabelValues from a fixed set of series.
type fakeCatalog struct {
	series []map[string]string
	err    error
}

func (c *fakeCatalog) LabelValues(_ context.Context, label, selector string, _, _ time.Time) ([]string, error) {
	if c.err != nil {
		return nil, c.err
	}
	set := map[string]bool{}
	for _, s := range c.series {
		if strings.HasPrefix(s["__name__"], "telltale_deploy") || strings.HasPrefix(s["__name__"], "telltale_change") {
			continue // what the selector's __name__!~ drops
		}
		if i := strings.Index(selector, `service="`); i >= 0 {
			want := selector[i+len(`service="`):]
			want = want[:strings.IndexByte(want, '"')]
			if s["service"] != want {
				continue
			}
		}
		if v := s[label]; v != "" {
			set[v] = true
		}
	}
	return slices.Sorted(func(yield func(string) bool) {
		for v := range set {
			if !yield(v) {
				return
			}
		}
	}), nil
}

// TestMarkWarnings: a change whose service has no data, or whose env is
// not one the service reports, is recorded with a warning saying it marks
// no graph; a change without env marks every env and gets none.
func TestMarkWarnings(t *testing.T) {
	cat := &fakeCatalog{series: []map[string]string{
		{"__name__": "http_requests_total", "service": "demo", "env": "dev"},
		{"__name__": "telltale_deploy_info", "service": "web"}, // our own series are no data
	}}
	set := metrics.NewSet()
	e := newEnv(t, Options{Now: fixedClock(t0), Catalog: cat, Metrics: set}, false)
	f := func(body, want string) {
		t.Helper()
		r := e.do("POST", "/api/v1/deploys", body)
		if r.Code != 201 {
			t.Fatalf("POST %s: got %d %s; want 201 (warnings never refuse)", body, r.Code, r.Error)
		}
		got := strings.Join(r.Warnings, " | ")
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Fatalf("POST %s: got warnings %q; want %q", body, got, want)
		}
	}
	f(`{"service":"demo"}`, "")
	f(`{"service":"demo","env":"dev"}`, "")
	f(`{"service":"web","version":"v1.2.3"}`, `no series has service="web" in the last 1h0m0s, so this deploy marks no graph of the Service dashboard yet (it still shows on dashboards without a service filter); services with data: demo`)
	f(`{"service":"demo","env":"prod"}`, `service "demo" has data in env dev, not "prod"`)
	if v := metricValue(set, `telltale_changes_warnings_total{reason="unknown_service"}`); v != "1" {
		t.Fatalf("warnings counted: got %q; want 1", v)
	}
	cat.err = fmt.Errorf("storage down")
	f(`{"service":"nothing"}`, "") // a lookup failure only skips the warning
}

// TestMigrateDeployLog opens a deploy log written by the previous
// collector (testdata/deploys-v2.db: three deploys, a finished one, one
// without env, an impact report, a Grafana annotation id, pending series
// deliveries) and finds every deploy as a change of kind deploy, searchable,
// with its impact, its annotation id and its pending deliveries delivered.
func TestMigrateDeployLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deploys.db")
	raw, err := os.ReadFile("testdata/deploys-v2.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	w := &fakeWriter{}
	e := newEnv(t, Options{DBPath: path, Writer: w}, true)
	if v, err := e.s.log.SchemaVersion(t.Context()); err != nil || v != len(migrations) {
		t.Fatalf("schema version: got %d, %v; want %d", v, err, len(migrations))
	}
	list := e.list("")
	if got := ids(list); got != "noenv-1,api-run-1,gh-1-1-web-prod" {
		t.Fatalf("deploys after migration: got %s", got)
	}
	web := e.get("gh-1-1-web-prod")
	if web.Kind != changes.KindDeploy || web.Service != "web" || web.Env != "prod" || web.Version != "v1.2.3" || web.Commit != "abc123" ||
		web.Who != "alice" || web.Link != "https://git.example.com/pr/7" || !web.Time.Equal(time.Date(2024, 5, 1, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("web deploy: got %+v", web)
	}
	stored, err := e.s.Get(t.Context(), "gh-1-1-web-prod")
	if err != nil || web.Impact == nil || web.Impact.Verdict != "regressed" || stored.GrafanaAnnotationID != 42 {
		t.Fatalf("web deploy impact/annotation: got %+v / %d, %v; want regressed and annotation 42", web.Impact, stored.GrafanaAnnotationID, err)
	}
	api := e.get("api-run-1")
	if api.Status != changes.StatusFailed || api.EndTime == nil || !api.EndTime.Equal(time.Date(2024, 5, 1, 11, 35, 0, 0, time.UTC)) {
		t.Fatalf("finished deploy: got %s %v", api.Status, api.EndTime)
	}
	if d := e.get("noenv-1"); d.Env != "" || d.Message != "Grüße — ünïcode ✓" {
		t.Fatalf("deploy without env: got %+v", d)
	}
	if got := ids(e.listChanges("?q=checkout+timeout")); got != "gh-1-1-web-prod" {
		t.Fatalf("search in migrated deploys: got %q", got)
	}
	if code, ans, _ := e.impactOf("gh-1-1-web-prod"); code != 200 || ans.Verdict != "regressed" || !strings.Contains(string(ans.Report), `"verdict":"regressed"`) {
		t.Fatalf("impact report after migration: got %d %+v", code, ans)
	}
	// The two series deliveries pending in the old log go out now.
	eventually(t, "pending deliveries of the old log", func() bool { return e.delivered("api-run-1") && e.delivered("noenv-1") })
	// New changes go on after the old ones.
	e.post(`{"id":"new","service":"web","env":"prod"}`, 201)
	if got := ids(e.list("?service=web")); !strings.HasSuffix(got, "gh-1-1-web-prod") {
		t.Fatalf("deploys of web after a new one: %s", got)
	}
}

// TestBackupWhileWriting copies the log while writers keep recording; the
// copy opens (migrated nothing: same schema) with every change committed
// before the backup began.
func TestBackupWhileWriting(t *testing.T) {
	e := newEnv(t, Options{}, false)
	for i := range 50 {
		e.postChange(fmt.Sprintf(`{"id":"before-%d","kind":"note","service":"demo","message":"note %d"}`, i, i), 201)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			e.s.Record(context.Background(), changes.Change{ID: fmt.Sprintf("during-%d", i), Kind: "note", Service: "demo", Message: "x"})
		}
	})
	dir := t.TempDir()
	res, err := Backup(t.Context(), e.opts.DBPath, dir, time.Now())
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if res.Changes < 50 || res.SchemaVersion != len(migrations) || filepath.Dir(res.Path) != dir {
		t.Fatalf("Backup: got %+v; want >= 50 changes, schema %d, in %s", res, len(migrations), dir)
	}
	// Restore: the copy is a change log.
	l, err := OpenLog(t.Context(), res.Path)
	if err != nil {
		t.Fatalf("open the backup: %v", err)
	}
	defer l.Close()
	for i := range 50 {
		if _, err := l.Get(t.Context(), fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatalf("backup lacks a change committed before it: %v", err)
		}
	}
	list, err := l.List(t.Context(), changes.Filter{Text: "note", Limit: 10})
	if err != nil || len(list) == 0 {
		t.Fatalf("search in the backup: got %d, %v", len(list), err)
	}
	if _, err := Backup(t.Context(), filepath.Join(t.TempDir(), "missing.db"), dir, time.Now()); err == nil || !strings.Contains(err.Error(), "-deploy.db") {
		t.Fatalf("backup of a missing log: got %v; want an error naming -deploy.db", err)
	}
}

// TestRecordGoAPI: Record and List for code inside the collector (the
// rules engine): an alert that fired and resolved, found by service and
// time window with overlap.
func TestRecordGoAPI(t *testing.T) {
	e := newEnv(t, Options{Now: fixedClock(t0)}, false)
	ctx := t.Context()
	fired, err := e.s.Record(ctx, changes.Change{Kind: changes.KindAlert, Service: "shop", Env: "prod", Subject: "HighErrorRatio",
		Message: "error ratio 5% > 1%", Status: changes.StatusRunning, Time: t0.Add(-30 * time.Minute)})
	if err != nil || fired.ID == "" || !fired.Open() {
		t.Fatalf("Record alert: got %+v, %v", fired, err)
	}
	again, err := e.s.Record(ctx, changes.Change{ID: fired.ID, Kind: changes.KindAlert, Service: "shop", Env: "prod", Subject: "HighErrorRatio",
		Message: "error ratio 5% > 1%", Status: changes.StatusRunning, Time: t0.Add(-30 * time.Minute)})
	if err != nil || again.ID != fired.ID {
		t.Fatalf("Record retry: got %+v, %v; want the stored change", again, err)
	}
	if _, err := e.s.Record(ctx, changes.Change{Kind: "Alert!", Service: "shop"}); err == nil || !strings.Contains(err.Error(), `"kind" "Alert!"`) {
		t.Fatalf("Record bad kind: got %v; want a RequestError naming kind", err)
	}
	list, err := e.s.List(ctx, changes.Filter{Service: "shop", From: t0.Add(-10 * time.Minute), To: t0, Overlap: true})
	if err != nil || len(list) != 1 || list[0].ID != fired.ID {
		t.Fatalf("List with overlap: got %v, %v; want the firing alert", list, err)
	}
	resolved, err := e.s.Update(ctx, fired.ID, changes.Patch{Status: changes.StatusResolved})
	if err != nil || resolved.EndTime == nil || !resolved.EndTime.Equal(t0) {
		t.Fatalf("Update resolved: got %+v, %v; want ended now", resolved, err)
	}
}

// TestImpactOfEveryKind: a switch flip is analysed like a deploy; its
// report names the other changes of its service inside its windows, of
// any kind; a note is not analysed; a change of a service without data
// gets a report that says why it saw no requests.
func TestImpactOfEveryKind(t *testing.T) {
	clk := newClock(t0.Add(time.Minute))
	q := &fakeQuerier{jumps: map[string]time.Time{"web": t0}}
	cat := &fakeCatalog{series: []map[string]string{{"__name__": "http_requests_total", "service": "web", "env": "prod"}}}
	e := newEnv(t, Options{Now: clk.now, Catalog: cat, Impact: &ImpactOptions{Querier: q}}, true)
	e.postChange(`{"id":"flip","kind":"switch","service":"web","env":"prod","subject":"slow_checkout","status":"running","fields":{"state":"on"},"time":"2024-05-01T12:00:00Z"}`, 201)
	e.postChange(`{"id":"dep","kind":"deploy","service":"web","version":"v9","time":"2024-05-01T11:55:00Z"}`, 201) // no env: every env
	e.postChange(`{"id":"nt","kind":"note","service":"web","env":"prod","message":"looking into it","time":"2024-05-01T12:05:00Z"}`, 201)
	e.postChange(`{"id":"gh","kind":"config","service":"ghost","env":"prod","subject":"app.yaml","time":"2024-05-01T12:00:00Z"}`, 201)
	if r := e.do("GET", "/api/v1/changes/nt/impact", ""); r.Code != 404 || !strings.Contains(r.Error, "changes of kind note are not analysed (the analysed kinds are deploy, switch, config)") {
		t.Fatalf("note impact: got %d %q; want 404 saying notes are not analysed", r.Code, r.Error)
	}
	clk.set(t0.Add(16 * time.Minute))
	e.s.kick()
	var ans changes.ImpactAnswer
	eventually(t, "switch impact", func() bool {
		r := e.do("GET", "/api/v1/changes/flip/impact", "")
		json.Unmarshal(r.Data, &ans)
		return ans.Status == changes.ImpactDone
	})
	rep := report(t, ans)
	if rep.Kind != changes.KindSwitch || ans.Kind != changes.KindSwitch || verdictsOf(rep)[impact.SignalErrorRatio] != impact.Regressed {
		t.Fatalf("switch impact: got kind %q, %v; want the error ratio regressed", rep.Kind, verdictsOf(rep))
	}
	if len(rep.Overlaps) != 2 || rep.Overlaps[0].ID != "dep" || rep.Overlaps[1].Title != "note web" ||
		!strings.Contains(ans.Summary, "low confidence: overlaps deploy dep, note web, changes may be theirs") {
		t.Fatalf("overlaps: got %+v, summary %q; want the env-less deploy and the note named", rep.Overlaps, ans.Summary)
	}
	eventually(t, "ghost impact", func() bool {
		r := e.do("GET", "/api/v1/changes/gh/impact", "")
		json.Unmarshal(r.Data, &ans)
		return ans.Status == changes.ImpactDone
	})
	rep = report(t, ans)
	if rep.Hint != `no series has service="ghost" around the change; services with data: web: the change's service must be the app's service label` ||
		!strings.HasSuffix(ans.Summary, rep.Hint) {
		t.Fatalf("ghost: got hint %q, summary %q; want the hint naming the services with data", rep.Hint, ans.Summary)
	}
}

// TestSearchDense: a search matching more than sparseMatches changes walks
// the time index; it returns the same newest-first page as sorting every
// match would, also when seq and time disagree (changes recorded late).
func TestSearchDense(t *testing.T) {
	l := openLog(t, filepath.Join(t.TempDir(), "changes.db"))
	n := sparseMatches + 500
	type rec struct {
		id      string
		t       time.Time
		service string
		common  bool
	}
	var all []rec
	err := l.Update(t.Context(), t0, func(tx *Tx) error {
		for i := range n {
			// Every 7th change is recorded late: an old time, a high seq.
			at := t0.Add(time.Duration(i) * time.Second)
			if i%7 == 0 {
				at = t0.Add(-time.Duration(i) * time.Second)
			}
			r := rec{id: fmt.Sprintf("c%05d", i), t: at, service: []string{"a", "b", "c"}[i%3], common: i%10 != 3}
			msg := "rare thing"
			if r.common {
				msg = "common words here"
			}
			c := changes.Change{ID: r.id, Kind: changes.KindNote, Service: r.service, Message: msg, Time: at, Status: changes.StatusSuccess}
			if err := tx.Insert(t.Context(), &c); err != nil {
				return err
			}
			all = append(all, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(all, func(a, b rec) int { return -a.t.Compare(b.t) })
	f := func(filter changes.Filter, keep func(rec) bool) {
		t.Helper()
		var want []string
		for _, r := range all {
			if keep(r) && len(want) < filter.Limit {
				want = append(want, r.id)
			}
		}
		list, err := l.List(t.Context(), filter)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range list {
			got = append(got, c.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List(%+v):\ngot  %v\nwant %v", filter, got, want)
		}
	}
	f(changes.Filter{Text: "common", Limit: 100}, func(r rec) bool { return r.common })
	f(changes.Filter{Text: "common words", Service: "b", Limit: 1000}, func(r rec) bool { return r.common && r.service == "b" })
	f(changes.Filter{Text: "comm", To: t0.Add(10 * time.Minute), Limit: 50}, func(r rec) bool { return r.common && !r.t.After(t0.Add(10*time.Minute)) })
	f(changes.Filter{Text: "rare", Limit: 100}, func(r rec) bool { return !r.common }) // sparse: the other path
}
