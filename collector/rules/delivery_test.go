package rules

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/collector/ingest"
)

// The Alertmanager send retries a 5xx and a 429 with backoff until it gets
// through, gives up on a 4xx at once, and sends one attempt only once the
// collector shuts down.
func TestRetryingDo(t *testing.T) {
	var calls atomic.Int32
	var status []int // answers in order, then 200
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1)) - 1
		body, _ := io.ReadAll(r.Body)
		if string(body) != `[{"labels":{}}]` {
			t.Errorf("attempt %d got body %q; want the same body every attempt", n, body)
		}
		if n < len(status) {
			w.WriteHeader(status[n])
			return
		}
	}))
	defer srv.Close()
	send := func(stopping chan struct{}) (int, error) {
		calls.Store(0)
		do := retryingDo(time.Second, time.Millisecond, 4*time.Millisecond, stopping, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte(`[{"labels":{}}]`)))
		resp, err := do(ctx, srv.Client(), req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		return 0, err
	}
	status = []int{503, 429, 502}
	if code, err := send(make(chan struct{})); code != 200 || err != nil || calls.Load() != 4 {
		t.Errorf("503, 429, 502, 200: got %d %v after %d calls; want 200 after 4", code, err, calls.Load())
	}
	status = []int{400}
	if code, err := send(make(chan struct{})); code != 400 || err != nil || calls.Load() != 1 {
		t.Errorf("400: got %d %v after %d calls; want the 400 after 1 call (the notifier counts it failed)", code, err, calls.Load())
	}
	stopping := make(chan struct{})
	close(stopping)
	status = []int{503, 503}
	if _, err := send(stopping); err == nil || !strings.Contains(err.Error(), "not retried: shutting down") || calls.Load() != 1 {
		t.Errorf("503 while shutting down: got %v after %d calls; want one attempt and the reason", err, calls.Load())
	}
}

// The appender writes a rule's samples through the write path in one
// batch; when the batch is refused for one bad series the others still get
// written, and a refused staleness marker is dropped quietly.
func TestAppenderWritesAroundABadSeries(t *testing.T) {
	h := newHarness(t, t.TempDir(), "groups: []\n", nil)
	ts := time.Now().Add(-time.Hour).Truncate(time.Second)
	h.write("taken", map[string]string{"k": "v"}, ts, 1)
	h.write("taken_stale", map[string]string{"k": "v"}, ts, 1)
	app := h.m.promOpts.AppendableV2.AppenderV2(t.Context())
	add := func(name string, v float64) {
		if _, err := app.Append(0, labels.FromStrings("__name__", name, "k", "v"), 0, ts.UnixMilli(), v, nil, nil, storage.AOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	add("fresh", 5)
	add("taken", 2)                                          // a different value at a taken timestamp: refused
	add("taken_stale", math.Float64frombits(value.StaleNaN)) // a staleness marker there: dropped quietly
	err := app.Commit()
	if err == nil || !errors.Is(err, ingest.ErrInvalid) || !strings.Contains(err.Error(), "taken{") || strings.Contains(err.Error(), "taken_stale") {
		t.Fatalf("commit: got %v; want the refused series named, and only it", err)
	}
	if got := h.query("fresh", ts); len(got) != 1 || got[0].F != 5 {
		t.Errorf("fresh: got %v; want 5 written despite the refused series", got)
	}
	if got := h.seen.count("fresh"); got != 1 {
		t.Errorf("write path saw %d samples of fresh; want 1", got)
	}
	if _, err := app.Append(0, labels.FromStrings("__name__", "late"), 0, ts.UnixMilli(), 1, nil, nil, storage.AOptions{}); err == nil {
		t.Errorf("Append after Commit: got nil; want an error")
	}
}

// FuzzDecodeLedger: any state file is refused with an error or decodes to
// a ledger whose episodes are complete; never a panic.
func FuzzDecodeLedger(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "ledger", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeLedger(data)
		if err != nil {
			return
		}
		for _, e := range st.Episodes {
			if e == nil || e.Fingerprint == "" || e.Labels == nil {
				t.Fatalf("decoded an incomplete episode %+v", e)
			}
			for _, d := range e.Deliveries {
				_ = e.next(d) // must not panic
			}
		}
	})
}

// A damaged state file stops the start with what to do, rather than
// announcing every firing alert again silently.
func TestDamagedLedger(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "notifications.json")
	os.WriteFile(p, []byte(`{"version":1,"episodes":[{"fingerprint":""}]}`), 0o600)
	_, err := openLedger(p, nil, time.Now)
	if err == nil || !strings.Contains(err.Error(), "is damaged (episode 0 is incomplete): move it away") {
		t.Fatalf("got %v; want the damage and the way out", err)
	}
}
