package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver: the test reads the outbox

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/collector/enginetest"
	tailclient "github.com/telltale-dev/telltale/collector/tail/client"
	"github.com/telltale-dev/telltale/grafana/grafanatest"
	"github.com/telltale-dev/telltale/samples"
)

// sender is an rwload-like remote write sender: it writes nSeries series,
// one sample each per request, to the collector replicas through the
// agent's client (failover between replicas), and remembers which
// timestamps were acknowledged.
type sender struct {
	name    string
	client  *push.Client
	nSeries int

	mu    sync.Mutex
	acked []int64 // timestamps of acknowledged requests
	sent  int
}

func newSender(t *testing.T, name string, nSeries int, urls ...string) *sender {
	t.Helper()
	c, err := push.New(push.Options{URL: urls[0] + "/api/v1/write", URLs: suffix(urls[1:], "/api/v1/write"),
		Timeout: 5 * time.Second, MaxBackoff: 200 * time.Millisecond, MaxAttempts: 50})
	if err != nil {
		t.Fatal(err)
	}
	return &sender{name: name, client: c, nSeries: nSeries}
}

func suffix(us []string, s string) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u + s
	}
	return out
}

// run sends a request every 20ms until ctx is done.
func (s *sender) run(ctx context.Context) {
	enc := push.Encoder{Version: push.V1, MaxSamples: 10000}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		ts := time.Now().UnixMilli()
		var b samples.Batch
		for i := range s.nSeries {
			b.StartSeries(nil)
			b.AddLabel("__name__", "scaleout_load")
			b.AddLabel("sender", s.name)
			b.AddLabel("series", strconv.Itoa(i))
			b.AddSample(ts, float64(ts%100000))
		}
		var err error
		_ = enc.Encode(&b, func(body []byte, _ int) error { err = s.client.Send(context.WithoutCancel(ctx), body); return nil })
		s.mu.Lock()
		s.sent++
		if err == nil {
			s.acked = append(s.acked, ts)
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// rawSamples returns the sample timestamps of every series matching sel
// in the last window, by series label value of label.
func rawSamples(t *testing.T, base, sel, label string, window time.Duration) map[string]map[int64]bool {
	t.Helper()
	q := fmt.Sprintf("%s[%dms]", sel, window.Milliseconds())
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []collectortest.Result `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" {
		t.Fatalf("%s: %v %s", q, err, env.Error)
	}
	out := map[string]map[int64]bool{}
	for _, r := range env.Data.Result {
		m := map[int64]bool{}
		for _, v := range r.Values {
			f, _ := v[0].(float64)
			m[int64(f*1000+0.5)] = true
		}
		out[r.Metric[label]] = m
	}
	return out
}

// backlog is the records a forward-mode collector still has queued.
func backlog(t *testing.T, in *collectortest.Instance, target string) float64 {
	return in.Metric(t.Context(), `telltale_forward_spool_records{target="`+target+`"}`)
}

// TestScaleOutCortex is the scale-out must-show: two collector replicas in
// forward mode on a three-node Cortex (replication factor 3), sharing one
// change log in PostgreSQL and connected over NATS (each replica embeds a
// NATS server, routed to the other's), with a fake Grafana as annotation
// target. Under load from the real agent and remote write senders that
// fail over between the replicas, deploys are recorded alternately through
// both replicas, the way a CI would: a deploy whose request fails (its
// replica died) is sent again, same id, to the other replica.
//
// While the engine and Grafana are unreachable, the replicas keep
// acknowledging writes and deploys (samples wait in the queues, annotations
// in the outbox); replica 1 is killed with -9 with acknowledged samples in
// its queue and deploys in flight, and restarted; one Cortex node is killed
// with -9 and restarted. Afterwards:
//   - every acknowledged sample is queryable through either replica,
//     counted back one by one, and the agent's collection counter has no gap;
//   - every acknowledged deploy is in the log exactly once, listed through
//     either replica, and the log holds nothing else;
//   - once the outbox has drained (nothing pending, nothing failed), Grafana
//     holds exactly one annotation per deploy, created once;
//   - a live-tail client of replica 2 saw the deploys recorded on replica 1
//     over NATS before the kill, and again once the restarted replica 1's
//     route was back (core NATS is at most once: what replica 1 had not
//     published when it died is not expected).
func TestScaleOutCortex(t *testing.T) {
	cx := enginetest.StartCortex(t, 3, 3)
	pg := enginetest.StartPostgres(t)
	changesURL := pg.Database(t, "changes")
	db, err := sql.Open("pgx", changesURL) // the test reads the shared log and outbox
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	g := grafanatest.New(t, "grafana-token")
	tokenFile := filepath.Join(t.TempDir(), "grafana-token")
	if err := os.WriteFile(tokenFile, []byte("grafana-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := strings.NewReplacer(".", "_", ":", "_").Replace(strings.TrimPrefix(cx.Balancer.URL, "http://"))
	// -changes.claim-timeout: what replica 1 held when killed passes to
	// replica 2 after it, 10 s later (each attempt renews the claim of
	// the delivery it starts, so a slow batch is not taken over midway).
	args := append(forwardArgs(cx.Write, cx.API), "-forward.shutdown-drain=0s",
		"-changes.postgres-url="+changesURL, "-changes.claim-timeout=10s",
		"-grafana.url="+g.URL, "-grafana.token-file="+tokenFile, "-impact.enabled=false")
	addr1, addr2 := collectortest.FreeAddr(t), collectortest.FreeAddr(t)
	nats1, nats2 := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	route1, route2 := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t)), fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	args1 := append(slices.Clip(args), "-nats.listen="+nats1, "-nats.cluster-listen="+route1, "-nats.routes=nats-route://"+route2)
	args2 := append(slices.Clip(args), "-nats.listen="+nats2, "-nats.cluster-listen="+route2, "-nats.routes=nats-route://"+route1)
	dir1, dir2 := t.TempDir(), t.TempDir()
	c1 := collectortest.StartOn(t, addr1, dir1, args1...)
	c2 := collectortest.StartOn(t, addr2, dir2, args2...)

	// A live-tail client of replica 2, connected for the whole run: the
	// deploys recorded on replica 1 reach it over the NATS route.
	tail := startDeployTail(t, c2.URL)
	// The route is up once each replica has heard the other's interest
	// announcement (they are sent on start, on request and every 10s).
	deadline := time.Now().Add(time.Minute)
	for !hasInterest(t, c1) || !hasInterest(t, c2) {
		if time.Now().After(deadline) {
			t.Fatal("the replicas' embedded NATS servers did not route to each other in 1m")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The real agent, failing over between the replicas.
	agentBin := collectortest.Build(t, "github.com/telltale-dev/telltale/agent")
	agentAddr := collectortest.FreeAddr(t)
	agent := enginetest.Start(t, "agent", t.TempDir(), agentBin, "-collector", c1.URL+","+c2.URL, "-listen", agentAddr,
		"-interval", "500ms", "-instance", "scaleout-agent", "-spool-dir", t.TempDir(), "-retry-max-backoff", "200ms")
	agent.WaitHTTP("http://"+agentAddr+"/healthz", time.Minute)

	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	senders := []*sender{newSender(t, "a", 20, c1.URL, c2.URL), newSender(t, "b", 20, c2.URL, c1.URL)}
	for _, s := range senders {
		wg.Go(func() { s.run(ctx) })
	}
	deployCtx, stopDeploys := context.WithCancel(context.Background())
	dep := newDeployer(t, c1.URL, c2.URL)
	var deployWG sync.WaitGroup
	deployWG.Go(func() { dep.run(deployCtx) })
	t.Cleanup(func() { stopDeploys(); deployWG.Wait() }) // before t ends, also on t.Fatal
	acked := func() int {
		n := 0
		for _, s := range senders {
			s.mu.Lock()
			n += len(s.acked)
			s.mu.Unlock()
		}
		return n
	}
	waitAcked := func(n int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for acked() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d requests acknowledged; want %d", acked(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAcked(50)

	// The engine and Grafana cannot be reached: the replicas keep
	// acknowledging writes, which wait in their queues, and deploys, whose
	// annotations wait in the outbox. Replica 1 is killed with -9 then,
	// with acknowledged samples that exist only in its queue, deliveries
	// it may hold claims on (they pass to replica 2 after
	// -changes.claim-timeout) and deploy requests in flight.
	cx.Balancer.SetUnavailable(true)
	g.SetFailure(http.StatusServiceUnavailable)
	waitAcked(acked() + 50)
	if n := backlog(t, c1, target); n <= 0 {
		t.Fatalf("replica 1 queues %v records while the engine is unreachable; want some", n)
	}
	deadline = time.Now().Add(time.Minute)
	for g.Requests() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no replica tried Grafana in 1m")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What replica 1 recorded so far has reached replica 2's tail.
	settled := dep.count()
	tail.waitFor(t, dep, dep.createdOn(0, 0, settled), "recorded on replica 1 before its kill")
	// Two deploys are surely in flight when replica 1 dies (more may be:
	// the deployer goes on): one not recorded yet, one recorded but not
	// answered, its answer held back by a catalog lookup on the engine's
	// query API, which hangs meanwhile.
	cx.Balancer.Hold("/prometheus/")
	dep.killWithDeploysInFlight(0, c1.Kill, func(id string) bool {
		var n int
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM changes WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatalf("reading the change log in PostgreSQL: %v", err)
		}
		return n > 0
	})
	cx.Balancer.Release()
	// Deploys from this index on were sent after replica 1 died.
	afterKill := dep.count()
	waitAcked(acked() + 50) // the senders and the agent fail over to replica 2
	cx.Balancer.SetUnavailable(false)
	g.SetFailure(0)
	c1 = collectortest.StartOn(t, addr1, dir1, args1...)
	waitAcked(acked() + 50)
	// A Cortex node dies and comes back: with RF 3 writes and reads go on.
	cx.Kill(1)
	waitAcked(acked() + 100)
	cx.Restart(1)
	waitAcked(acked() + 50)
	stopLoad()
	wg.Wait()
	stopDeploys()
	deployWG.Wait()
	// The agent delivers what it spooled during the failovers, then stops.
	deadline = time.Now().Add(time.Minute)
	for agentMetric(t, agentAddr, "telltale_agent_spool_records") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent's spool did not drain in 1m")
		}
		time.Sleep(50 * time.Millisecond)
	}
	agent.Stop()

	// Both queues drain.
	deadline = time.Now().Add(2 * time.Minute)
	for backlog(t, c1, target) != 0 || backlog(t, c2, target) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queues not drained after 2m: replica 1 %v, replica 2 %v records", backlog(t, c1, target), backlog(t, c2, target))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every acknowledged sample, through either replica.
	for _, in := range []*collectortest.Instance{c1, c2} {
		for _, s := range senders {
			got := rawSamples(t, in.URL, `scaleout_load{sender="`+s.name+`"}`, "series", time.Hour)
			missing := 0
			for i := range s.nSeries {
				for _, ts := range s.acked {
					if !got[strconv.Itoa(i)][ts] {
						missing++
					}
				}
			}
			if missing > 0 {
				t.Errorf("through %s: sender %s: %d of %d acknowledged samples missing", in.URL, s.name, missing, len(s.acked)*s.nSeries)
			}
			t.Logf("through %s: sender %s: %d requests sent, %d acknowledged, all %d samples counted back", in.URL, s.name, s.sent, len(s.acked), len(s.acked)*s.nSeries)
		}
		// The agent's collection counter counts 1, 2, 3 ... one sample per
		// cycle: every value up to the last stored one is there.
		vals := agentCounter(t, in.URL)
		last := 0
		for v := range vals {
			last = max(last, v)
		}
		for v := 1; v <= last; v++ {
			if !vals[v] {
				t.Errorf("through %s: the agent's cycle %d of %d is missing", in.URL, v, last)
			}
		}
		if last < 10 {
			t.Errorf("through %s: only %d agent cycles stored", in.URL, last)
		}
	}

	checkDeploysOnce(t, dep, db, g, c1, c2)

	// The live tail across replicas: deploys replica 1 recorded before the
	// kill were awaited above; those the restarted replica 1 recorded from
	// the first one that reached replica 2's tail on (its route was back
	// then) all reach it; replica 2's own all do.
	first := -1
	for _, i := range dep.createdOn(0, afterKill, dep.count()) {
		if tail.saw(dep.id(i)) {
			first = i
			break
		}
	}
	if first < 0 {
		t.Errorf("replica 2's tail saw none of the %d deploys the restarted replica 1 recorded: the NATS route did not come back", len(dep.createdOn(0, afterKill, dep.count())))
	} else {
		tail.waitFor(t, dep, dep.createdOn(0, first, dep.count()), "recorded on replica 1 after its route was back")
	}
	tail.waitFor(t, dep, dep.createdOn(1, 0, dep.count()), "recorded on replica 2")
	for id, n := range tail.seen() {
		if n != 1 {
			t.Errorf("replica 2's tail saw deploy %s %d times; want once", id, n)
		}
	}
	t.Logf("replica 2's tail: %d deploys of replica 1 before its kill, %d of the restarted replica 1 (from %s on, of %d), %d of its own",
		len(dep.createdOn(0, 0, settled)), len(dep.createdOn(0, max(first, afterKill), dep.count())), dep.id(first),
		len(dep.createdOn(0, afterKill, dep.count())), len(dep.createdOn(1, 0, dep.count())))
}

// checkDeploysOnce checks the change log and Grafana after the run:
// every deploy dep got acknowledged is listed once through each replica
// and nothing else is listed; once nothing is pending in the shared outbox
// (read in PostgreSQL itself) and nothing failed, Grafana holds exactly
// one annotation per deploy, created once.
func checkDeploysOnce(t *testing.T, dep *deployer, db *sql.DB, g *grafanatest.Server, replicas ...*collectortest.Instance) {
	t.Helper()
	attempted, ackedIDs := map[string]bool{}, map[string]bool{}
	for i := range dep.count() {
		attempted[dep.id(i)] = true
		if dep.ackedBy(i) >= 0 { // every deploy is done: the deployer stopped
			ackedIDs[dep.id(i)] = true
		}
	}
	if len(ackedIDs) < 20 {
		t.Fatalf("only %d of %d deploys acknowledged; want at least 20", len(ackedIDs), len(attempted))
	}
	inLog := map[string]bool{}
	for _, in := range replicas {
		ds := listDeploys(t, in, fmt.Sprintf("?service=scaleout&limit=%d", changes.MaxListLimit))
		if len(ds) == changes.MaxListLimit {
			t.Fatalf("%s lists %d deploys, the list limit: the test records too many to count them back", in.URL, len(ds))
		}
		seen := map[string]int{}
		for _, d := range ds {
			seen[d.ID]++
			if !attempted[d.ID] {
				t.Errorf("%s lists deploy %q that was never sent", in.URL, d.ID)
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s lists deploy %q %d times; want once", in.URL, id, n)
			}
			inLog[id] = true
		}
		for id := range ackedIDs {
			if seen[id] == 0 {
				t.Errorf("%s does not list acknowledged deploy %q", in.URL, id)
			}
		}
		t.Logf("%s lists %d deploys (%d acknowledged, %d sent)", in.URL, len(ds), len(ackedIDs), len(attempted))
	}

	outbox := func(status string) int {
		var n int
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM outbox WHERE status = $1`, status).Scan(&n); err != nil {
			t.Fatalf("reading the outbox in PostgreSQL: %v", err)
		}
		return n
	}
	annotated := func() map[string]int {
		tags := map[string]int{}
		for _, a := range g.Annotations() {
			for _, tag := range a.Tags {
				if id, ok := strings.CutPrefix(tag, "deploy-id:"); ok {
					tags[id]++
				}
			}
		}
		return tags
	}
	deadline := time.Now().Add(3 * time.Minute)
	for outbox("pending") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("outbox: %d deliveries still pending after 3m; Grafana has %d of %d annotations", outbox("pending"), len(annotated()), len(inLog))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := outbox("failed"); n != 0 {
		t.Errorf("outbox: %d deliveries failed for good; want none", n)
	}
	tags := annotated()
	for id := range inLog {
		if tags[id] != 1 {
			t.Errorf("deploy %q annotated %d times; want once", id, tags[id])
		}
	}
	for id := range tags {
		if !inLog[id] {
			t.Errorf("grafana holds an annotation of deploy %q, which is not in the log", id)
		}
	}
	if g.Creates() != len(inLog) {
		t.Errorf("grafana got %d annotation creates for %d deploys; want one each", g.Creates(), len(inLog))
	}
	retried, inFlight := dep.retries()
	t.Logf("grafana: %d annotations, one per deploy, after %d requests; %d deploys were sent again after their replica failed them (%d of those in flight when it was killed)",
		len(tags), g.Requests(), retried, inFlight)
}

// deployer records deploys alternately through the replicas, one every
// 100ms, as a CI would: when a replica fails a deploy (it is down, or dies
// with the request in flight) the same deploy, same id, goes to the other
// replica. A 4xx answer is a test error: the deploys are valid and a
// retry of one already recorded must answer 200.
type deployer struct {
	t      *testing.T
	urls   []string
	client *http.Client

	mu      sync.Mutex
	deploys []deployRecord // by index; a deploy is reserved before it is sent
}

type deployRecord struct {
	done    bool
	acked   int  // index of the replica that acknowledged it; -1: none did
	created bool // the acknowledging answer was 201 (recorded by that request)
	// errs are the failures of the attempts before (replica: error).
	errs []string
}

// maxDeploys keeps every deploy in one GET /api/v1/deploys answer.
const maxDeploys = changes.MaxListLimit - 10

func newDeployer(t *testing.T, urls ...string) *deployer {
	return &deployer{t: t, urls: urls, client: &http.Client{Timeout: 10 * time.Second}}
}

func (d *deployer) id(i int) string { return fmt.Sprintf("scaleout-%04d", i) }

func (d *deployer) body(i int) string {
	return fmt.Sprintf(`{"service":"scaleout","env":"prod","version":"v%d","id":"%s"}`, i, d.id(i))
}

// reserve takes the next deploy index.
func (d *deployer) reserve() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deploys = append(d.deploys, deployRecord{acked: -1})
	return len(d.deploys) - 1
}

func (d *deployer) finish(i int, rec deployRecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rec.done = true
	d.deploys[i] = rec
}

func (d *deployer) run(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil && d.count() < maxDeploys {
		i := d.reserve()
		rec := deployRecord{acked: -1}
		d.send(i, i%2, &rec)
		d.finish(i, rec)
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// send sends deploy i to replica first, then alternately to the replicas
// until one acknowledges it (at most 6 attempts).
func (d *deployer) send(i, first int, rec *deployRecord) {
	for attempt := 0; attempt < 6 && rec.acked < 0; attempt++ {
		r := (first + attempt) % 2
		resp, err := d.client.Post(d.urls[r]+"/api/v1/deploys", "application/json", strings.NewReader(d.body(i)))
		if err != nil {
			rec.errs = append(rec.errs, fmt.Sprintf("replica %d: %v", r+1, err))
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
			rec.acked, rec.created = r, resp.StatusCode == http.StatusCreated
		case resp.StatusCode >= 500:
			rec.errs = append(rec.errs, fmt.Sprintf("replica %d: %d %s", r+1, resp.StatusCode, b))
		default:
			d.t.Errorf("deploy %s (attempt %d) through replica %d: %d %s; want 201, or 200 for a retry", d.id(i), attempt+1, r+1, resp.StatusCode, b)
			return
		}
	}
}

// killWithDeploysInFlight calls kill (which kills replica r) with two
// deploys in flight to r, then sends both to the other replica, as run
// does with any deploy a replica failed:
//   - one whose request is not complete (headers and half its body sent,
//     on a plain connection): r has not recorded it; the other replica
//     must (201);
//   - one r has recorded (recorded(id) sees it in the shared log) but not
//     answered: the caller holds the engine's query API, so the catalog
//     lookup between the commit and the answer waits (up to 2s,
//     annotator/changelog's catalogTimeout). The other replica must answer
//     200, the retry of a recorded deploy, not record it again. Should the
//     machine be too busy for the test to see the record within that
//     window, the answer comes first; that is logged.
func (d *deployer) killWithDeploysInFlight(r int, kill func(), recorded func(id string) bool) {
	d.t.Helper()
	other := 1 - r
	// The incomplete one.
	half := d.reserve()
	body := d.body(half)
	u, err := url.Parse(d.urls[r])
	if err != nil {
		d.t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		d.t.Fatalf("deploy %s: replica %d: %v", d.id(half), r+1, err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/deploys HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		u.Host, len(body), body[:len(body)/2])
	// The recorded one.
	rec := d.reserve()
	type result struct {
		status int
		err    error
	}
	answer := make(chan result, 1)
	go func() {
		resp, err := d.client.Post(d.urls[r]+"/api/v1/deploys", "application/json", strings.NewReader(d.body(rec)))
		if err != nil {
			answer <- result{err: err}
			return
		}
		resp.Body.Close()
		answer <- result{status: resp.StatusCode}
	}()
	var early *result
	deadline := time.Now().Add(time.Minute)
	for early == nil && !recorded(d.id(rec)) {
		select {
		case res := <-answer:
			early = &res
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("deploy %s was not recorded through replica %d in 1m", d.id(rec), r+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	kill()

	// A dead process's connections are closed by the kernel; the deadline
	// only keeps a broken test from hanging.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
		resp.Body.Close()
		d.t.Fatalf("deploy %s through replica %d answered %d though the replica was killed before the request was complete", d.id(half), r+1, resp.StatusCode)
	} else {
		hr := deployRecord{acked: -1, errs: []string{fmt.Sprintf("replica %d: %v", r+1, err)}}
		d.send(half, other, &hr)
		d.finish(half, hr)
		if hr.acked != other || !hr.created {
			d.t.Fatalf("deploy %s, half sent when replica %d was killed, then sent to replica %d: acknowledged by %d, created %v (%v); want created by replica %d",
				d.id(half), r+1, other+1, hr.acked+1, hr.created, hr.errs, other+1)
		}
		d.t.Logf("deploy %s, half sent when replica %d was killed (%s): recorded by replica %d", d.id(half), r+1, hr.errs[0], other+1)
	}

	res := early
	if res == nil {
		r := <-answer
		res = &r
	}
	rr := deployRecord{acked: -1}
	switch {
	case res.err != nil:
		rr.errs = append(rr.errs, fmt.Sprintf("replica %d: %v", r+1, res.err))
		d.send(rec, other, &rr)
		d.finish(rec, rr)
		if rr.acked != other || rr.created {
			d.t.Errorf("deploy %s, recorded by replica %d that was killed before answering, then sent to replica %d: acknowledged by %d, created %v (%v); want 200 from replica %d, the retry of a recorded deploy",
				d.id(rec), r+1, other+1, rr.acked+1, rr.created, rr.errs, other+1)
		}
		d.t.Logf("deploy %s, recorded by replica %d that was killed before answering (%s): replica %d answered the retry with 200", d.id(rec), r+1, rr.errs[0], other+1)
	case res.status == http.StatusCreated:
		rr.acked, rr.created = r, true
		d.finish(rec, rr)
		d.t.Logf("deploy %s: replica %d answered 201 before it was killed (the machine was too slow for the 2s window); the recorded-but-unanswered retry is not shown this run", d.id(rec), r+1)
	default:
		d.t.Fatalf("deploy %s through replica %d: %d; want 201", d.id(rec), r+1, res.status)
	}
}

// count is how many deploys were reserved (being sent or done).
func (d *deployer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.deploys)
}

func (d *deployer) ackedBy(i int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.deploys[i].acked
}

// createdOn returns the deploys in [from, to) that replica r recorded
// (answered 201).
func (d *deployer) createdOn(r, from, to int) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int
	for i := from; i < to; i++ {
		if d.deploys[i].done && d.deploys[i].acked == r && d.deploys[i].created {
			out = append(out, i)
		}
	}
	return out
}

// retries counts the deploys a replica failed before the other
// acknowledged them, and of those the ones that failed otherwise than
// with a refused connection (in flight when their replica died).
func (d *deployer) retries() (retried, inFlight int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.deploys {
		if len(r.errs) == 0 || r.acked < 0 {
			continue
		}
		retried++
		if slices.ContainsFunc(r.errs, func(e string) bool { return !strings.Contains(e, "connection refused") }) {
			inFlight++
		}
	}
	return retried, inFlight
}

// deployTail is a live-tail client that remembers the deploy ids it saw.
type deployTail struct {
	conn *tailclient.Conn

	mu      sync.Mutex
	ids     map[string]int
	dropped int64
	err     error
}

// startDeployTail connects a live-tail client to base, with a selector no
// series matches: it gets deploy messages only.
func startDeployTail(t *testing.T, base string) *deployTail {
	t.Helper()
	conn, err := tailclient.Dial(t.Context(), tailclient.Options{URL: base, Selectors: []string{`scaleout_tail_deploys_only`}})
	if err != nil {
		t.Fatal(err)
	}
	dt := &deployTail{conn: conn, ids: map[string]int{}}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		for {
			m, _, err := conn.Next()
			dt.mu.Lock()
			if err != nil {
				dt.err = err
				dt.mu.Unlock()
				return
			}
			dt.dropped += m.DroppedMessages
			if m.Type == "deploy" {
				var c struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(m.Deploy, &c) == nil {
					dt.ids[c.ID]++
				}
			}
			dt.mu.Unlock()
		}
	}()
	return dt
}

func (dt *deployTail) saw(id string) bool {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	return dt.ids[id] > 0
}

// seen returns how many times the tail saw each deploy id.
func (dt *deployTail) seen() map[string]int {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	return maps.Clone(dt.ids)
}

// waitFor waits until the tail saw every deploy of idx (dep's indexes).
func (dt *deployTail) waitFor(t *testing.T, dep *deployer, idx []int, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		dt.mu.Lock()
		var missing []string
		for _, i := range idx {
			if id := dep.id(i); dt.ids[id] == 0 {
				missing = append(missing, id)
			}
		}
		err, dropped := dt.err, dt.dropped
		dt.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("replica 2's tail misses %d of the %d deploys %s (%v ...; tail error %v, %d messages dropped)", len(missing), len(idx), what, missing[:min(5, len(missing))], err, dropped)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agentCounter returns the values of the agent's collection counter.
func agentCounter(t *testing.T, base string) map[int]bool {
	t.Helper()
	q := `telltale_agent_collections_total{instance="scaleout-agent"}[1h]`
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			Result []collectortest.Result `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || len(env.Data.Result) != 1 {
		t.Fatalf("%s: %v, %d series; want one", q, err, len(env.Data.Result))
	}
	out := map[int]bool{}
	for _, v := range env.Data.Result[0].Values {
		n, _ := strconv.Atoi(v[1].(string))
		out[n] = true
	}
	return out
}

// agentMetric reads a metric of the agent's /metrics (-1 when absent).
func agentMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// TestReplicasOverNATS: two forward-mode replicas connected over NATS
// (replica 1 embeds the server). A live-tail client of replica 1 sees the
// samples written to replica 2 and the deploy recorded there; a late
// sample written through replica 2 drops what replica 1's result cache
// holds, so replica 1 answers what the engine answers.
func TestReplicasOverNATS(t *testing.T) {
	t.Parallel()
	prom := enginetest.StartPrometheus(t)
	natsAddr := fmt.Sprintf("127.0.0.1:%d", enginetest.FreePort(t))
	args := append(forwardArgs(prom.Write, prom.API), "-query.cache-freshness=1m")
	c1 := collectortest.Start(t, append(args, "-nats.listen="+natsAddr)...)
	c2 := collectortest.Start(t, append(args, "-nats.url=nats://"+natsAddr)...)

	conn, err := tailclient.Dial(t.Context(), tailclient.Options{URL: c1.URL, Selectors: []string{`fanout_e2e{job="api"}`}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Replica 2 learns of the subscription over NATS, then publishes.
	deadline := time.Now().Add(30 * time.Second)
	for c2.Metric(t.Context(), "telltale_fanout_remote_replicas") != 1 || !hasInterest(t, c2) {
		if time.Now().After(deadline) {
			t.Fatal("replica 2 never learned replica 1's tail selectors")
		}
		time.Sleep(20 * time.Millisecond)
	}
	now := time.Now().Truncate(time.Second)
	var b samples.Batch
	for _, job := range []string{"api", "db"} {
		b.StartSeries(nil)
		b.AddLabel("__name__", "fanout_e2e")
		b.AddLabel("job", job)
		b.AddSample(now.UnixMilli(), 42)
	}
	if status, body, _ := postRemoteWrite(t, c2, &b, 1); status != http.StatusNoContent {
		t.Fatalf("write to replica 2: %d %s", status, body)
	}
	status, body := c2.Post(t.Context(), "/api/v1/deploys", []byte(`{"service":"api","env":"prod","version":"v2","id":"api-v2"}`), map[string]string{"Content-Type": "application/json"})
	if status != http.StatusCreated {
		t.Fatalf("deploy on replica 2: %d %s", status, body)
	}
	var gotSample, gotDeploy bool
	for !gotSample || !gotDeploy {
		m, _, err := conn.Next()
		if err != nil {
			t.Fatalf("tail on replica 1: %v (sample %v, deploy %v)", err, gotSample, gotDeploy)
		}
		switch m.Type {
		case "samples":
			for _, s := range m.Samples {
				if s.Labels["job"] != "api" {
					t.Errorf("tail got %v; want only job=api", s.Labels)
				}
				gotSample = true
			}
		case "deploy":
			gotDeploy = strings.Contains(string(m.Deploy), `"api-v2"`)
		}
	}

	// The cache: replica 1 caches a range query; a late sample through
	// replica 2 must drop it once the engine has the sample.
	checkCacheSeesLateWrite(t, prom.API, c1, c2, "fanout_cache")
}

// hasInterest reports whether in publishes tail samples to others (some
// other replica announced selectors).
func hasInterest(t *testing.T, in *collectortest.Instance) bool {
	return in.Metric(t.Context(), `telltale_fanout_received_total{kind="interest"}`) > 0
}

// TestMigrateChangesToPostgres: the change log of a single collector,
// copied with `collector migrate-changes`, is what a collector on the
// PostgreSQL log lists.
func TestMigrateChangesToPostgres(t *testing.T) {
	t.Parallel()
	pg := enginetest.StartPostgres(t)
	url := pg.Database(t, "changes")
	dir := t.TempDir()
	in := collectortest.StartIn(t, dir, "-impact.enabled=false")
	for i := range 3 {
		body := fmt.Sprintf(`{"service":"api","env":"prod","version":"v%d","id":"mig-%d"}`, i, i)
		if status, resp := in.Post(t.Context(), "/api/v1/deploys", []byte(body), map[string]string{"Content-Type": "application/json"}); status != http.StatusCreated {
			t.Fatalf("deploy %d: %d %s", i, status, resp)
		}
	}
	in.Stop()
	out, err := exec.CommandContext(t.Context(), collectortest.Binary(t), "migrate-changes", "-data", dir, "-changes.postgres-url", url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "copied 3 changes") {
		t.Fatalf("migrate-changes: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(t.Context(), collectortest.Binary(t), "migrate-changes", "-data", dir, "-changes.postgres-url", url).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already holds 3 changes") {
		t.Errorf("a second migrate-changes: %v\n%s; want a refusal", err, out)
	}
	pgIn := collectortest.Start(t, "-changes.postgres-url="+url, "-impact.enabled=false")
	ds := listDeploys(t, pgIn, "?service=api")
	if len(ds) != 3 || ds[0].ID != "mig-2" || ds[2].ID != "mig-0" {
		t.Errorf("the collector on PostgreSQL lists %+v; want mig-2, mig-1, mig-0", ds)
	}
}

// TestForwardModeAgainstThanos: a forward-mode collector writes remote
// write 1.0 to Thanos receive; Thanos Query's own API has every sample
// (with the labels receive adds); the collector reads through Thanos
// Query's query API (it has no remote read: auto mode finds out) and,
// with -storage.query-drop-labels, serves the series as they were written.
func TestForwardModeAgainstThanos(t *testing.T) {
	t.Parallel()
	th := enginetest.StartThanos(t)
	in := collectortest.Start(t, "-storage.remote-write-url="+th.Write, "-storage.query-url="+th.API,
		"-storage.query-drop-labels=receive_cluster,tenant_id", "-impact.enabled=false")
	now := time.Now().Truncate(time.Second)
	b := testBatch("fwd_thanos", 5, 30, now)
	if status, body, _ := postRemoteWrite(t, in, b, 1); status != http.StatusNoContent {
		t.Fatalf("write: %d %s", status, body)
	}
	waitQuery(t, th.API, `sum(count_over_time(fwd_thanos{receive_cluster="eu1",tenant_id="default-tenant"}[1h]))`, 150)
	checkStored(t, in, b, now)
	res := in.Query(t.Context(), "fwd_thanos", time.Time{})
	for _, r := range res {
		if _, ok := r.Metric["receive_cluster"]; ok {
			t.Errorf("series %v carries receive_cluster; -storage.query-drop-labels should drop it", r.Metric)
		}
	}
	if !strings.Contains(in.Log(), "serves no remote read") {
		t.Error("the collector did not report falling back to the query API")
	}
}
