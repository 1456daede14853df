package spool

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func open(t testing.TB, dir string, mod func(*Options)) (*Spool, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	o := Options{Dir: dir, Metrics: set, MaxBytes: 1 << 20, SegmentBytes: 4 << 10, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&o)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, set
}

func rec(i int) []byte {
	// Varying sizes so record boundaries fall everywhere.
	return []byte(fmt.Sprintf("record-%05d-%s", i, strings.Repeat("x", i%97)))
}

// drain peeks and acks everything and returns the records.
func drain(t testing.TB, s *Spool, max int) []string {
	t.Helper()
	var got []string
	for len(got) < max {
		r, ok, err := s.Peek()
		if err != nil {
			t.Fatalf("Peek: %v", err)
		}
		if !ok {
			break
		}
		got = append(got, string(r))
		if err := s.Ack(); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	return got
}

func want(from, to int) []string {
	var w []string
	for i := from; i < to; i++ {
		w = append(w, string(rec(i)))
	}
	return w
}

func TestOrderAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, nil)
	for i := range 200 {
		if err := s.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := drain(t, s, 70); !slices.Equal(got, want(0, 70)) {
		t.Fatalf("first 70 records out of order: %q", got[:3])
	}
	if _, n := s.Size(); n != 130 {
		t.Errorf("Size records = %d; want 130", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, _ = open(t, dir, nil)
	if _, n := s.Size(); n != 130 {
		t.Errorf("after reopen Size records = %d; want 130", n)
	}
	for i := 200; i < 250; i++ {
		if err := s.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := drain(t, s, 1000)
	if !slices.Equal(got, want(70, 250)) {
		t.Fatalf("after restart got %d records; want 70..249 in order", len(got))
	}
	b, n := s.Size()
	if n != 0 {
		t.Errorf("drained spool has %d records", n)
	}
	if b > 2*int64(len(segmentMagic)) {
		t.Errorf("drained spool holds %d bytes; consumed segments must be removed", b)
	}
	s.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Errorf("segment files after draining: %v; want only the current one", segs)
	}
}

func TestPeekWithoutAckIsReplayed(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, nil)
	s.Append(rec(1))
	s.Append(rec(2))
	r, ok, _ := s.Peek()
	if !ok || string(r) != string(rec(1)) {
		t.Fatalf("Peek = %q, %v; want record 1", r, ok)
	}
	s.Close() // the send did not finish: no Ack
	s, _ = open(t, dir, nil)
	defer s.Close()
	if got := drain(t, s, 10); !slices.Equal(got, want(1, 3)) {
		t.Errorf("after restart got %q; want records 1 and 2 again", got)
	}
}

func TestDropOldestWhenFull(t *testing.T) {
	dir := t.TempDir()
	const max = 16 << 10
	s, set := open(t, dir, func(o *Options) { o.MaxBytes = max; o.SegmentBytes = 2 << 10 })
	defer s.Close()
	payload := func(i int) []byte { return append([]byte(fmt.Sprintf("%05d|", i)), bytes.Repeat([]byte{'p'}, 494)...) }
	const n = 200 // 200 * 512 bytes = 100 KiB into a 16 KiB spool
	for i := range n {
		if err := s.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
		if b, _ := s.Size(); b > max {
			t.Fatalf("after %d appends the spool holds %d bytes; limit %d", i+1, b, max)
		}
	}
	var got []string
	for {
		r, ok, err := s.Peek()
		if err != nil || !ok {
			break
		}
		got = append(got, string(r[:5]))
		s.Ack()
	}
	dropped := set.GetOrCreateCounter(`telltale_agent_spool_dropped_total{reason="full"}`).Get()
	if int(dropped)+len(got) != n {
		t.Errorf("dropped %d + kept %d = %d; want %d: every record is delivered or counted", dropped, len(got), int(dropped)+len(got), n)
	}
	if len(got) == 0 || len(got) > max/512 {
		t.Fatalf("kept %d records; want between 1 and %d", len(got), max/512)
	}
	// What is left is the newest, in order.
	for i, g := range got {
		if w := fmt.Sprintf("%05d", n-len(got)+i); g != w {
			t.Fatalf("record %d = %s; want %s (the newest, in order)", i, g, w)
		}
	}
	if err := s.Append(make([]byte, max)); err == nil || !strings.Contains(err.Error(), "-spool-max-bytes") {
		t.Errorf("Append of a record larger than the spool: %v; want an error naming -spool-max-bytes", err)
	}
}

func TestAckAfterDropIsNoop(t *testing.T) {
	s, _ := open(t, t.TempDir(), func(o *Options) { o.MaxBytes = 4 << 10; o.SegmentBytes = 1 << 10 })
	defer s.Close()
	for i := range 3 {
		s.Append(bytes.Repeat([]byte{byte('a' + i)}, 900))
	}
	r, _, _ := s.Peek() // the replayer is sending this one...
	first := r[0]
	for range 10 { // ...while appends push it out
		s.Append(bytes.Repeat([]byte{'z'}, 900))
	}
	if err := s.Ack(); err != nil {
		t.Fatalf("Ack after the record was dropped: %v", err)
	}
	r, ok, _ := s.Peek()
	if !ok || r[0] != 'z' || first != 'a' {
		t.Errorf("after Ack of a dropped record Peek = %q...; want a 'z' record", r[:1])
	}
}

// segFiles lists the segment files in order.
func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(segs)
	return segs
}

// spoolWith returns a spool directory holding records 0 to n-1, closed.
func spoolWith(t testing.TB, n int) string {
	t.Helper()
	dir := t.TempDir()
	s, _ := open(t, dir, nil)
	for i := range n {
		if err := s.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return dir
}

// rewriteSegment replaces the first segment file of dir by what edit makes
// of it, as a crash or a bad disk would.
func rewriteSegment(t testing.TB, dir string, edit func(data []byte) []byte) {
	t.Helper()
	seg := segFiles(t, dir)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg, edit(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptRecordSkipped(t *testing.T) {
	dir := spoolWith(t, 5)
	rewriteSegment(t, dir, func(data []byte) []byte {
		// Flip a payload byte of record 2.
		data[bytes.Index(data, rec(2))+3] ^= 0xff
		return data
	})

	s, set := open(t, dir, nil)
	defer s.Close()
	got := drain(t, s, 10)
	if w := []string{string(rec(0)), string(rec(1)), string(rec(3)), string(rec(4))}; !slices.Equal(got, w) {
		t.Errorf("got %q; want records 0 1 3 4", got)
	}
	if c := set.GetOrCreateCounter(`telltale_agent_spool_dropped_total{reason="corrupt"}`).Get(); c != 1 {
		t.Errorf("corrupt counter = %d; want 1", c)
	}
}

func TestCorruptLengthResyncs(t *testing.T) {
	dir := spoolWith(t, 4)
	rewriteSegment(t, dir, func(data []byte) []byte {
		// Make record 1's length huge: the reader must find record 2 by
		// its magic, not by the length.
		i := bytes.Index(data, rec(1))
		data[i-headerLen+4] = 0xff
		data[i-headerLen+7] = 0x00
		return data
	})

	s, _ := open(t, dir, nil)
	defer s.Close()
	if got := drain(t, s, 10); !slices.Equal(got, []string{string(rec(0)), string(rec(2)), string(rec(3))}) {
		t.Errorf("got %q; want records 0 2 3", got)
	}
}

func TestTornTail(t *testing.T) {
	dir := spoolWith(t, 3)
	// A kill during write(2) of record 2: half of it on disk.
	rewriteSegment(t, dir, func(data []byte) []byte { return data[:len(data)-len(rec(2))/2] })

	s, _ := open(t, dir, nil)
	defer s.Close()
	s.Append(rec(3)) // goes into a new segment, after the torn one
	if got := drain(t, s, 10); !slices.Equal(got, []string{string(rec(0)), string(rec(1)), string(rec(3))}) {
		t.Errorf("got %q; want records 0 1 3", got)
	}
}

func TestCorruptReadPosition(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, nil)
	for i := range 3 {
		s.Append(rec(i))
	}
	drain(t, s, 1)
	s.Close()
	os.WriteFile(filepath.Join(dir, posFile), []byte("garbage garbage garbage"), 0o600)
	s, _ = open(t, dir, nil)
	defer s.Close()
	// Without a trustworthy position everything is replayed: duplicates,
	// never a loss.
	if got := drain(t, s, 10); !slices.Equal(got, want(0, 3)) {
		t.Errorf("got %q; want all 3 records", got)
	}
}

func TestGracefulCloseFlushes(t *testing.T) {
	dir := t.TempDir()
	// A lazy fsync policy: Close must still leave everything on disk.
	s, _ := open(t, dir, func(o *Options) { o.SyncInterval = time.Hour })
	for i := range 20 {
		s.Append(rec(i))
	}
	drain(t, s, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(rec(99)); err == nil {
		t.Error("Append after Close: got nil error")
	}
	s, _ = open(t, dir, nil)
	defer s.Close()
	if got := drain(t, s, 100); !slices.Equal(got, want(5, 20)) {
		t.Errorf("after Close and Open got %d records; want 5..19", len(got))
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, nil)
	defer s.Close()
	_, err := Open(Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "-spool-dir") {
		t.Errorf("second Open of %s: %v; want an error naming -spool-dir", dir, err)
	}
}

func TestNotify(t *testing.T) {
	s, _ := open(t, t.TempDir(), nil)
	defer s.Close()
	select {
	case <-s.Notify():
		t.Fatal("Notify fired before any Append")
	default:
	}
	s.Append(rec(1))
	select {
	case <-s.Notify():
	default:
		t.Fatal("Notify did not fire after Append")
	}
}

func TestGauges(t *testing.T) {
	s, set := open(t, t.TempDir(), nil)
	defer s.Close()
	s.Append(rec(1))
	s.Append(rec(2))
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	for _, w := range []string{"telltale_agent_spool_records 2\n", fmt.Sprintf("telltale_agent_spool_bytes %d\n", 8+2*headerLen+len(rec(1))+len(rec(2)))} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("metrics lack %q:\n%s", w, buf.String())
		}
	}
}

// FuzzSegment opens a spool whose segment file holds arbitrary bytes and
// reads it to the end, once with Peek and once with PeekBatch: no panic, no
// endless loop, every record returned is one that was validly framed, and
// both read the same records.
func FuzzSegment(f *testing.F) {
	dir := spoolWith(f, 3)
	for _, p := range segFiles(f, dir) {
		data, _ := os.ReadFile(p)
		f.Add(data, uint8(3), uint16(64))
	}
	f.Add([]byte(segmentMagic), uint8(1), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, maxRecords uint8, maxBytes uint16) {
		read := func(batch bool) []string {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "0000000000000001.seg"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(Options{Dir: dir, SyncInterval: -1, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var got []string
			for range len(data) + 2 {
				var recs [][]byte
				if batch {
					recs, err = s.PeekBatch(int(maxRecords)+1, int(maxBytes))
				} else {
					var r []byte
					var ok bool
					r, ok, err = s.Peek()
					if ok {
						recs = [][]byte{r}
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) == 0 {
					return got
				}
				for _, r := range recs {
					if !bytes.Contains(data, r) {
						t.Fatalf("record %q not in the segment", r)
					}
					got = append(got, string(r))
				}
				s.Ack()
			}
			t.Fatalf("more reads than bytes in a %d-byte segment", len(data))
			return nil
		}
		if one, batched := read(false), read(true); !slices.Equal(one, batched) {
			t.Fatalf("Peek read %d records, PeekBatch %d: %q vs %q", len(one), len(batched), one, batched)
		}
	})
}

func BenchmarkAppendPeekAck(b *testing.B) {
	body := bytes.Repeat([]byte("remote write body "), 1000) // ~18 KB, a host's interval
	for _, sync := range []time.Duration{-1, 0} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			s, _ := open(b, b.TempDir(), func(o *Options) { o.SyncInterval = sync; o.MaxBytes = 64 << 20 })
			defer s.Close()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Append(body); err != nil {
					b.Fatal(err)
				}
				if _, ok, err := s.Peek(); !ok || err != nil {
					b.Fatal(ok, err)
				}
				s.Ack()
			}
		})
	}
}

// drainBatches reads everything with PeekBatch(maxRecords, maxBytes) and
// Ack, checking every batch against the limits, and returns the records.
func drainBatches(t testing.TB, s *Spool, maxRecords, maxBytes int) []string {
	t.Helper()
	var got []string
	for range 10000 {
		recs, err := s.PeekBatch(maxRecords, maxBytes)
		if err != nil {
			t.Fatalf("PeekBatch: %v", err)
		}
		if len(recs) == 0 {
			return got
		}
		if len(recs) > maxRecords {
			t.Fatalf("PeekBatch(%d, %d) returned %d records", maxRecords, maxBytes, len(recs))
		}
		size := 0
		for _, r := range recs {
			size += len(r)
			got = append(got, string(r))
		}
		if len(recs) > 1 && size > maxBytes {
			t.Fatalf("PeekBatch(%d, %d) returned %d records of %d bytes", maxRecords, maxBytes, len(recs), size)
		}
		if err := s.Ack(); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	t.Fatal("spool never ran empty")
	return nil
}

func TestPeekBatch(t *testing.T) {
	f := func(maxRecords, maxBytes int) {
		t.Helper()
		dir := t.TempDir()
		s, _ := open(t, dir, nil)
		for i := range 300 {
			if err := s.Append(rec(i)); err != nil {
				t.Fatal(err)
			}
		}
		got := drainBatches(t, s, maxRecords, maxBytes)
		if !slices.Equal(got, want(0, 300)) {
			t.Errorf("PeekBatch(%d, %d): got %d records, not records 0..299 in order", maxRecords, maxBytes, len(got))
		}
		if _, n := s.Size(); n != 0 {
			t.Errorf("PeekBatch(%d, %d): %d records left after acknowledging all", maxRecords, maxBytes, n)
		}
		s.Close()
		s, _ = open(t, dir, nil)
		defer s.Close()
		if got := drain(t, s, 10); len(got) != 0 {
			t.Errorf("PeekBatch(%d, %d): %d acknowledged records replayed after a restart", maxRecords, maxBytes, len(got))
		}
	}
	f(1, 0)
	f(7, 1<<20)
	f(1000, 1<<20) // batches end at segment ends (4 KiB segments)
	f(1000, 200)   // by bytes: one or two records
	f(1000, 0)     // a record larger than maxBytes still comes alone
}

func TestPeekBatchWithoutAckIsReplayed(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, nil)
	for i := range 5 {
		s.Append(rec(i))
	}
	recs, err := s.PeekBatch(3, 1<<20)
	if err != nil || len(recs) != 3 {
		t.Fatalf("PeekBatch = %d records, %v; want 3", len(recs), err)
	}
	// Peeking again without Ack starts from the same record.
	recs, _ = s.PeekBatch(2, 1<<20)
	if len(recs) != 2 || string(recs[0]) != string(rec(0)) || string(recs[1]) != string(rec(1)) {
		t.Fatalf("second PeekBatch = %q; want records 0 and 1 again", recs)
	}
	s.Close()
	s, _ = open(t, dir, nil)
	defer s.Close()
	if got := drainBatches(t, s, 4, 1<<20); !slices.Equal(got, want(0, 5)) {
		t.Errorf("after restart got %q; want records 0 to 4 again", got)
	}
}

func TestPeekBatchStopsBeforeCorruptRecord(t *testing.T) {
	dir := spoolWith(t, 5)
	rewriteSegment(t, dir, func(data []byte) []byte {
		i := bytes.Index(data, rec(3))
		data[i+2] ^= 0xff
		return data
	})
	s, set := open(t, dir, nil)
	defer s.Close()
	recs, err := s.PeekBatch(10, 1<<20)
	if err != nil || len(recs) != 3 {
		t.Fatalf("PeekBatch = %d records, %v; want the 3 before the corrupt one", len(recs), err)
	}
	s.Ack()
	if got := drainBatches(t, s, 10, 1<<20); !slices.Equal(got, want(4, 5)) {
		t.Errorf("after the batch got %q; want record 4 (3 is corrupt)", got)
	}
	if n := set.GetOrCreateCounter(`telltale_agent_spool_dropped_total{reason="corrupt"}`).Get(); n != 1 {
		t.Errorf("corrupt records counted: %d; want 1", n)
	}
}

func TestAckOfBatchAfterDropIsNoop(t *testing.T) {
	s, set := open(t, t.TempDir(), func(o *Options) { o.MaxBytes = 4 << 10; o.SegmentBytes = 1 << 10 })
	defer s.Close()
	for i := range 3 {
		s.Append(bytes.Repeat([]byte{byte('a' + i)}, 300))
	}
	if recs, _ := s.PeekBatch(3, 1<<20); len(recs) != 3 {
		t.Fatalf("PeekBatch = %d records; want 3", len(recs))
	}
	for range 20 { // appends push the batch out while it is being sent
		s.Append(bytes.Repeat([]byte{'z'}, 300))
	}
	if err := s.Ack(); err != nil {
		t.Fatalf("Ack after the batch was dropped: %v", err)
	}
	recs, _ := s.PeekBatch(100, 1<<20)
	if len(recs) == 0 || recs[0][0] != 'z' {
		t.Fatalf("after Ack of a dropped batch PeekBatch = %d records; want 'z' records", len(recs))
	}
	_, left := s.Size()
	dropped := int(set.GetOrCreateCounter(`telltale_agent_spool_dropped_total{reason="full"}`).Get())
	if dropped+left != 23 {
		t.Errorf("dropped %d + left %d = %d; want 23: every record is delivered or counted", dropped, left, dropped+left)
	}
}

func TestMetricLabelsAndFlag(t *testing.T) {
	s, set := open(t, t.TempDir(), func(o *Options) {
		o.MetricPrefix = "telltale_forward_"
		o.MetricLabels = `target="cortex"`
		o.MaxBytesFlag = "-forward.queue-max-bytes"
	})
	defer s.Close()
	s.Append(rec(1))
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	for _, w := range []string{
		"telltale_forward_spool_records{target=\"cortex\"} 1\n",
		"telltale_forward_spool_dropped_total{target=\"cortex\",reason=\"full\"} 0\n",
	} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("metrics lack %q:\n%s", w, buf.String())
		}
	}
	if err := s.Append(make([]byte, 2<<20)); err == nil || !strings.Contains(err.Error(), "-forward.queue-max-bytes") {
		t.Errorf("Append of a record larger than the spool: %v; want an error naming -forward.queue-max-bytes", err)
	}
}

func TestAckN(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, nil)
	for i := range 10 {
		s.Append(rec(i))
	}
	recs, _ := s.PeekBatch(5, 1<<20)
	if len(recs) != 5 {
		t.Fatalf("PeekBatch = %d records; want 5", len(recs))
	}
	if err := s.AckN(2); err != nil {
		t.Fatal(err)
	}
	if err := s.AckN(2); err != nil { // nothing peeked since: no-op
		t.Fatal(err)
	}
	if _, n := s.Size(); n != 8 {
		t.Errorf("after AckN(2) Size = %d records; want 8", n)
	}
	s.Close()
	s, _ = open(t, dir, nil)
	defer s.Close()
	if got := drainBatches(t, s, 3, 1<<20); !slices.Equal(got, want(2, 10)) {
		t.Errorf("after AckN(2) and a restart got %q; want records 2 to 9", got)
	}
}
