package forward

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/telltale-dev/telltale/agent/push"
)

// TestRecordGolden keeps the queue's record format stable: a collector
// must read what an older one queued. Run with -update to rewrite.
func TestRecordGolden(t *testing.T) {
	h := recordHeader{version: push.V2, samples: 300, queuedAt: 1_700_000_000_123, minT: 1_699_999_000_000}
	rec := appendRecord(nil, h, []byte("snappy body"))
	path := filepath.Join("testdata", "record.bin")
	if *update {
		if err := os.WriteFile(path, rec, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec, golden) {
		t.Errorf("record = %x; want %x (testdata/record.bin): the format changed", rec, golden)
	}
	got, body, err := parseRecord(golden)
	if err != nil || got != h || string(body) != "snappy body" {
		t.Errorf("parseRecord(golden) = %+v, %q, %v; want %+v, \"snappy body\"", got, body, err, h)
	}
}

func TestParseRecordErrors(t *testing.T) {
	f := func(rec []byte) {
		t.Helper()
		if _, _, err := parseRecord(rec); err == nil {
			t.Errorf("parseRecord(%x) succeeded; want an error", rec)
		}
	}
	f(nil)
	f([]byte{recordFormat})
	f([]byte{9, 1, 0, 0, 0})            // unknown format
	f([]byte{recordFormat, 3, 0, 0, 0}) // unknown version
	f([]byte{recordFormat, 1, 0x80})    // truncated varint
	f([]byte{recordFormat, 1, 1, 2})    // no sample time
}

// FuzzParseRecord: no panic on any record, and what parses re-encodes to
// a record that parses the same.
func FuzzParseRecord(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "record.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte{recordFormat, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, rec []byte) {
		h, body, err := parseRecord(rec)
		if err != nil {
			return
		}
		h2, body2, err := parseRecord(appendRecord(nil, h, body))
		if err != nil || h2 != h || !bytes.Equal(body, body2) {
			t.Fatalf("round trip of %+v: %+v, %v", h, h2, err)
		}
	})
}
