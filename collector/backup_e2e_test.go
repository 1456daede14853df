package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestChangeLogBackupRestore follows the README's "Backups" with the real
// collector binary: `collector backup` while writers keep recording
// changes, stop, copy the file into a fresh data directory, start; every
// change acknowledged before the backup began is there, searchable.
func TestChangeLogBackupRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := collectortest.StartIn(t, dir)
	var mu sync.Mutex
	var acked []string
	record := func(i int) {
		id := fmt.Sprintf("bk-%05d", i)
		code, body := in.Post(t.Context(), "/api/v1/changes", []byte(fmt.Sprintf(`{"id":%q,"kind":"note","service":"demo","message":"backup test note %d"}`, id, i)),
			map[string]string{"Content-Type": "application/json"})
		if code != http.StatusCreated {
			t.Errorf("POST change %s: got %d %s", id, code, body)
			return
		}
		mu.Lock()
		acked = append(acked, id)
		mu.Unlock()
	}
	for i := range 100 {
		record(i)
	}
	// Writers keep going while the backup runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 1000 * (w + 1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				record(i)
			}
		})
	}
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	backups := filepath.Join(t.TempDir(), "backups")
	out, err := exec.CommandContext(t.Context(), collectortest.Binary(t), "backup", "-data", dir, backups).CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("collector backup: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`backed up (\d+) changes \(schema \d+\) from \S+ to (\S+)\n`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("collector backup printed %q; want the count and the file", out)
	}
	in.Stop()

	// Restore into a fresh data directory, as the README says.
	fresh := t.TempDir()
	raw, err := os.ReadFile(m[2])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fresh, "deploys.db"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(fresh, "deploys.db-wal"))
	os.Remove(filepath.Join(fresh, "deploys.db-shm"))
	restored := collectortest.StartIn(t, fresh)
	have := map[string]bool{}
	for to, page := "", 0; page < 50; page++ {
		resp, err := http.Get(restored.URL + "/api/v1/changes?kind=note&limit=1000" + to)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var env changes.Response[[]changes.Change]
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("list restored changes: %v: %s", err, body)
		}
		for _, c := range env.Data {
			have[c.ID] = true
		}
		if len(env.Data) < 1000 {
			break
		}
		to = "&to=" + env.Data[len(env.Data)-1].Time.Format("2006-01-02T15:04:05.000Z07:00")
	}
	for _, id := range before {
		if !have[id] {
			t.Fatalf("change %s, acknowledged before the backup began, is not in the restored log (%d changes there)", id, len(have))
		}
	}
	if fmt.Sprint(len(have)) != m[1] {
		t.Errorf("restored log has %d notes; the backup said %s changes", len(have), m[1])
	}
	resp, err := http.Get(restored.URL + "/api/v1/changes?q=backup+test+note+42")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"id":"bk-00042"`) {
		t.Errorf("search in the restored log: got %s; want bk-00042", body)
	}
	t.Logf("backup held %s changes, %d acknowledged before it began, %d in all", m[1], len(before), len(acked))
}
