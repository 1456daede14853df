package refresh

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/bench/load"
	"github.com/telltale-dev/telltale/dashboards/board"
)

func TestStep(t *testing.T) {
	f := func(rng time.Duration, px int, scrape, want time.Duration) {
		t.Helper()
		if got := Step(rng, px, scrape); got != want {
			t.Fatalf("Step(%v, %d, %v): got %v; want %v", rng, px, scrape, got, want)
		}
	}
	f(30*time.Minute, 0, 0, 10*time.Second)                 // 1.5 s rounds to 1 s, below the 10 s scrape interval
	f(8*time.Hour, 1200, 10*time.Second, 20*time.Second)    // 24 s rounds to 20 s
	f(6*time.Hour, 1200, 15*time.Second, 20*time.Second)    // 18 s rounds to 20 s
	f(24*time.Hour, 1200, 10*time.Second, time.Minute)      // 72 s rounds to 1 m
	f(7*24*time.Hour, 1000, 10*time.Second, 10*time.Minute) // 604.8 s rounds to 10 m
	f(time.Hour, 1200, 30*time.Second, 30*time.Second)      // the scrape interval wins
	f(90*24*time.Hour, 100, 10*time.Second, 24*time.Hour)   // 21.6 h rounds to 1 d
	f(400*24*time.Hour, 10, 10*time.Second, 7*24*time.Hour) // beyond every bound: a week
}

func TestRoundInterval(t *testing.T) {
	f := func(d, want time.Duration) {
		t.Helper()
		if got := RoundInterval(d); got != want {
			t.Fatalf("RoundInterval(%v): got %v; want %v", d, got, want)
		}
	}
	f(0, 10*time.Millisecond)
	f(14*time.Millisecond, 10*time.Millisecond)
	f(15*time.Millisecond, 20*time.Millisecond)
	f(1499*time.Millisecond, time.Second)
	f(12499*time.Millisecond, 10*time.Second)
	f(12500*time.Millisecond, 15*time.Second)
	f(24*time.Second, 20*time.Second)
	f(25*time.Second, 30*time.Second)
	f(89*time.Second, time.Minute)
	f(5399*time.Second, time.Hour)
}

func TestAlignAndDuration(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 17, 500e6, time.UTC)
	if got, want := Align(at, 10*time.Second), time.Date(2026, 1, 2, 3, 4, 10, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Align 10s: got %v; want %v", got, want)
	}
	if got, want := Align(at, 24*time.Hour), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Align 1d: got %v; want %v", got, want)
	}
	f := func(d time.Duration, want string) {
		t.Helper()
		if got := Duration(d); got != want {
			t.Fatalf("Duration(%v): got %q; want %q", d, got, want)
		}
	}
	f(40*time.Second, "40s")
	f(90*time.Second, "90s")
	f(2*time.Minute, "2m")
	f(24*time.Hour, "1d")
	f(30*time.Hour, "30h")
	f(1500*time.Millisecond, "1500ms")
}

func TestParseInterval(t *testing.T) {
	f := func(in string, want time.Duration, wantErr bool) {
		t.Helper()
		got, err := parseInterval(in)
		if (err != nil) != wantErr || got != want {
			t.Fatalf("parseInterval(%q): got %v, %v; want %v, error %v", in, got, err, want, wantErr)
		}
	}
	f("1d", 24*time.Hour, false)
	f("30s", 30*time.Second, false)
	f(">5m", 5*time.Minute, false)
	f("250ms", 250*time.Millisecond, false)
	f("1w", 7*24*time.Hour, false)
	f("", 0, true)
	f("d", 0, true)
	f("5x", 0, true)
	f("-1m", 0, true)
}

// TestDashboardsHoldEveryQuery checks that a refresh asks exactly what the
// dashboards hold: every variable, annotation and panel target of
// board.Queries, and that the recorded ones are told apart.
func TestDashboardsHoldEveryQuery(t *testing.T) {
	for _, raw := range []bool{false, true} {
		boards, err := board.All(board.Options{RawQueries: raw})
		if err != nil {
			t.Fatal(err)
		}
		qs, err := board.Queries(boards)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{}
		for _, q := range qs {
			want[q.Dashboard]++
		}
		ds, err := Dashboards(Options{Raw: raw})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != len(boards) {
			t.Fatalf("raw %v: got %d dashboards; want %d", raw, len(ds), len(boards))
		}
		recorded := 0
		for _, d := range ds {
			n, rec := d.Queries()
			if n != want[d.UID] {
				t.Errorf("raw %v: %s: got %d requests; want %d (board.Queries)", raw, d.UID, n, want[d.UID])
			}
			recorded += rec
		}
		if raw && recorded != 0 || !raw && recorded == 0 {
			t.Errorf("raw %v: %d queries read recorded series", raw, recorded)
		}
	}
	if _, err := Dashboards(Options{}, board.UIDService, "nope"); err == nil || !strings.Contains(err.Error(), board.UIDHosts) {
		t.Fatalf("got %v; want an error listing the dashboards", err)
	}
}

// fakeAPI answers the Prometheus API as a refresh asks it and records the
// requests.
type fakeAPI struct {
	mu   sync.Mutex
	reqs []url.Values // with "path"
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	v := url.Values{}
	for k, vs := range r.Form {
		v[k] = vs
	}
	v.Set("path", r.URL.Path)
	f.mu.Lock()
	f.reqs = append(f.reqs, v)
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/v1/label/"):
		// Unsorted on purpose: Grafana sorts (the dashboards ask it to).
		fmt.Fprint(w, `{"status":"success","data":["zeta","prod","alpha"]}`)
	case r.URL.Path == "/api/v1/query":
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}`)
	case r.URL.Path == "/api/v1/query_range":
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"1"],[2,"2"],[3,"3"]]}]}}`)
	default:
		http.NotFound(w, r)
	}
}

func TestRunAsksWhatGrafanaAsks(t *testing.T) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	ds, err := Dashboards(Options{Range: time.Hour}, board.UIDService, board.UIDDeploys)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	c := &load.QueryClient{Base: srv.URL}
	var total Stats
	for _, d := range ds {
		st, err := d.Run(t.Context(), c, now)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := d.Queries()
		if st.Requests != n {
			t.Fatalf("%s: got %d requests; want %d", d.UID, st.Requests, n)
		}
		total.Add(st)
	}
	if got, want := ds[0].Values(), "service=alpha env=alpha route=.*"; got != want {
		t.Fatalf("service variables: got %q; want %q (first value sorted, All for multi-value)", got, want)
	}
	if got, want := ds[1].Values(), "service=.* env=.*"; got != want {
		t.Fatalf("deploys variables: got %q; want %q", got, want)
	}
	if len(api.reqs) != total.Requests {
		t.Fatalf("server saw %d requests; Stats say %d", len(api.reqs), total.Requests)
	}
	day := false
	for _, v := range api.reqs {
		if q := v.Get("query"); strings.Contains(q, "$") || strings.Contains(q, "[[") {
			t.Errorf("%s: variable left in %q", v.Get("path"), q)
		}
		switch v.Get("path") {
		case "/api/v1/query_range":
			step, _ := strconv.ParseFloat(v.Get("step"), 64)
			start, _ := strconv.ParseFloat(v.Get("start"), 64)
			end, _ := strconv.ParseFloat(v.Get("end"), 64)
			if step != 10 && step != 86400 {
				t.Errorf("query_range %q: step %v; want 10 (1 h on 1200 px, scrape interval 10 s) or 86400 (a panel's 1d)", v.Get("query"), step)
			}
			if s := int64(step); int64(start)%s != 0 || int64(end)%s != 0 || end > float64(now.Unix()) {
				t.Errorf("query_range %q: start %v, end %v not aligned to step %v at or before now", v.Get("query"), start, end, step)
			}
			if step == 10 && end-start != 3600 {
				t.Errorf("query_range %q: spans %v s; want 3600", v.Get("query"), end-start)
			}
			day = day || step == 86400
		case "/api/v1/query":
			if got, want := v.Get("time"), "1772600767.000"; got != want {
				t.Errorf("instant %q at %s; want %s (now)", v.Get("query"), got, want)
			}
		default:
			if !strings.HasSuffix(v.Get("path"), "/values") || len(v["match[]"]) != 1 {
				t.Errorf("unexpected request %v", v)
			}
		}
	}
	if !day {
		t.Errorf("no query at the Deploys per day panel's 1d interval")
	}
	if total.Points == 0 || total.Series == 0 {
		t.Errorf("stats count nothing: %+v", total)
	}
	// Rate intervals as Grafana computes them.
	if got := Vars(Options{}, 10*time.Second)["__rate_interval"]; got != "40s" {
		t.Errorf("$__rate_interval at 10 s: got %s; want 40s", got)
	}
	if got := Vars(Options{}, time.Minute)["__rate_interval"]; got != "70s" {
		t.Errorf("$__rate_interval at 1 m: got %s; want 70s", got)
	}
	if !slices.Contains([]string{"3600s"}, Vars(Options{Range: time.Hour}, time.Minute)["__range"]) {
		t.Errorf("$__range for 1 h: want 3600s")
	}
}

func TestRunFailsWithTheServersMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprint(w, `{"status":"error","errorType":"execution","error":"query processing would load too many samples"}`)
	}))
	defer srv.Close()
	ds, err := Dashboards(Options{}, board.UIDHosts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ds[0].Run(t.Context(), &load.QueryClient{Base: srv.URL}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "too many samples") || !strings.Contains(err.Error(), board.UIDHosts) {
		t.Fatalf("got %v; want the dashboard and the server's message", err)
	}
}
