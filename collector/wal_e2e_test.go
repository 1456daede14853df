package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// TestTornWALTail: a crash that leaves half a record at the end of the WAL
// must not stop the collector from starting; everything before the torn
// record is kept and the repair is counted.
func TestTornWALTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := collectortest.StartIn(t, dir)
	now := time.Now().Truncate(time.Second)
	for i := 0; i < 5; i++ {
		b := testBatch("e2e_torn_"+strconv.Itoa(i), 10, 10, now)
		if status, body, _ := postRemoteWrite(t, in, b, 1); status != http.StatusNoContent {
			t.Fatalf("write %d: %d %s", i, status, body)
		}
	}
	in.Kill()

	// Tear the last record: cut the newest segment in the middle of it, then
	// add garbage as a half-written page would leave.
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "0*"))
	slices.Sort(segs)
	if len(segs) == 0 {
		t.Fatal("no WAL segment found")
	}
	last := segs[len(segs)-1]
	data, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	cut := len(data) - 200
	if cut <= 0 {
		t.Fatalf("segment %s has only %d bytes", last, len(data))
	}
	torn := append(data[:cut:cut], bytes.Repeat([]byte{0xde, 0xad}, 50)...)
	if err := os.WriteFile(last, torn, 0o644); err != nil {
		t.Fatal(err)
	}

	in2 := collectortest.StartIn(t, dir)
	// The first four writes are intact.
	for i := 0; i < 4; i++ {
		checkStored(t, in2, testBatch("e2e_torn_"+strconv.Itoa(i), 10, 10, now), now)
	}
	resp, err := http.Get(in2.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	_, _ = mb.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(mb.String(), "prometheus_tsdb_wal_corruptions_total 1") {
		t.Fatalf("/metrics does not count the WAL repair; want prometheus_tsdb_wal_corruptions_total 1")
	}
	// And it keeps taking writes.
	b := testBatch("e2e_torn_after", 2, 2, time.Now().Truncate(time.Second))
	if status, body, _ := postRemoteWrite(t, in2, b, 1); status != http.StatusNoContent {
		t.Fatalf("write after repair: %d %s", status, body)
	}
}
