// Package spool is a bounded on-disk FIFO queue of opaque records: the
// agent keeps there the remote write bodies it could not deliver and
// replays them, oldest first, when the collector is back; a collector in
// forward mode queues every accepted write there before it answers 2xx and
// drains it to the distributed engine.
//
// Layout: a directory of segment files named by a 16-hex-digit sequence
// number (0000000000000001.seg ...), each an 8-byte header followed by
// records, plus read.pos, the position of the oldest unacknowledged record.
// A record is
//
//	magic (4 bytes) | length (4, little endian) | CRC-32C of length and payload (4) | payload
//
// Promises:
//   - Order: Peek (and PeekBatch) return records in the order Append wrote
//     them, across restarts.
//   - Crash safety: Append returns after write(2), so a record survives the
//     agent being killed (kill -9) right after. Whether it also survives a
//     power loss depends on Options.SyncInterval: 0 (the default) fsyncs the
//     segment on every Append, so an acknowledged Append is on disk; a
//     positive interval fsyncs at most that often (and on Close), so up to
//     that much can be lost to a power cut, never to a process crash.
//   - Acknowledged records are not replayed again after a restart: read.pos
//     is rewritten (without fsync) on every Ack, so a process crash loses
//     nothing of it; after a power loss up to SyncInterval of acknowledged
//     records may be replayed twice, which a TSDB ignores (same sample).
//   - Bounded: the segment files never exceed Options.MaxBytes in total.
//     When an Append would go over, the oldest segments are deleted first,
//     unread records in them are counted as dropped (reason "full").
//   - Corruption never stops the queue: a record whose CRC or length is
//     wrong (a torn write, a bad disk block) is skipped, counted (reason
//     "corrupt"), and reading resumes at the next record magic. A new
//     process never appends to an existing segment; it starts a new one, so
//     a torn tail stays a torn tail.
//   - One process at a time: Open takes an exclusive lock on the directory.
//
// A Spool is safe for concurrent use: typically one goroutine appends while
// another peeks and acknowledges.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

const (
	segmentMagic = "TTSPOOL1" // segment file header
	recordMagic  = 0x7E11_7A1E
	headerLen    = 12
	// MaxRecordBytes is the largest record payload Append accepts.
	MaxRecordBytes = 64 << 20
	segSuffix      = ".seg"
	posFile        = "read.pos"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge is returned by Append for a record that does not fit in
// Options.MaxBytes (or MaxRecordBytes) even in an empty spool.
var ErrTooLarge = errors.New("record larger than the spool")

// Options configures a Spool.
type Options struct {
	// Dir holds the segment files; it is created if missing.
	Dir string
	// MaxBytes bounds the total size of the segment files. Zero means 512 MiB.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started: the
	// unit in which old data is dropped and disk space is freed. Zero means
	// MaxBytes/16, between 64 KiB and 16 MiB.
	SegmentBytes int64
	// SyncInterval is the fsync policy (see the package doc): 0 fsyncs every
	// Append, > 0 at most that often, < 0 never (tests, benchmarks).
	SyncInterval time.Duration
	// Logger gets a line per dropped or corrupt record; nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics receives the spool's gauges and counters; nil means none.
	// Use one Spool per Set: the gauges stay bound to the first.
	Metrics *metrics.Set
	// MetricPrefix starts the metric names. Zero means "telltale_agent_".
	MetricPrefix string
	// MetricLabels are added to every metric of the spool, as
	// `name="value"` pairs separated by commas (e.g. `target="cortex"`),
	// for a process with several spools in one Set. Empty means none.
	MetricLabels string
	// DirFlag and MaxBytesFlag name the settings of Dir and MaxBytes in
	// error messages. Zero means the agent's flags, "-spool-dir" and
	// "-spool-max-bytes".
	DirFlag, MaxBytesFlag string
}

// segment is one segment file.
type segment struct {
	seq     uint64
	size    int64 // bytes in the file
	records int   // records in it (estimate for segments found at Open)
}

// Spool is a bounded on-disk FIFO queue of records.
type Spool struct {
	opts   Options
	logger *slog.Logger

	mu       sync.Mutex
	closed   bool
	lock     *os.File
	segs     []segment // oldest first; the last is being written
	w        *os.File  // last segment, opened for appending
	lastSync time.Time
	dirty    bool

	r        *os.File // segment segs[0], opened for reading
	rSeq     uint64
	rOff     int64   // offset of the next record to read in segs[0]
	rRecords int     // records of segs[0] already acknowledged
	peeked   []int64 // length on disk of each record Peek returned
	rbuf     []byte  // the records Peek returned
	recs     [][]byte
	wbuf     []byte // the record Append writes
	pos      *os.File

	bytes   int64 // sum of segs[i].size
	records int   // unacknowledged records (estimate for old segments)

	notify chan struct{}

	droppedFull, droppedCorrupt *metrics.Counter
}

// Open opens (or creates) the spool in opts.Dir and positions it at the
// oldest unacknowledged record.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("spool directory is empty")
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 512 << 20
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = min(max(opts.MaxBytes/16, 64<<10), 16<<20)
	}
	// Old data is dropped a segment at a time: keep at least two.
	opts.SegmentBytes = min(opts.SegmentBytes, opts.MaxBytes/2)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MetricPrefix == "" {
		opts.MetricPrefix = "telltale_agent_"
	}
	if opts.DirFlag == "" {
		opts.DirFlag = "-spool-dir"
	}
	if opts.MaxBytesFlag == "" {
		opts.MaxBytesFlag = "-spool-max-bytes"
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create spool directory: %w", err)
	}
	s := &Spool{opts: opts, logger: opts.Logger.With("component", "spool", "dir", opts.Dir), notify: make(chan struct{}, 1)}
	lock, err := lockDir(opts.Dir, opts.DirFlag)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	name := func(n, labels string) string { return MetricName(opts.MetricPrefix, n, opts.MetricLabels, labels) }
	s.droppedFull = set.GetOrCreateCounter(name("spool_dropped_total", `reason="full"`))
	s.droppedCorrupt = set.GetOrCreateCounter(name("spool_dropped_total", `reason="corrupt"`))
	set.GetOrCreateGauge(name("spool_bytes", ""), func() float64 { b, _ := s.Size(); return float64(b) })
	set.GetOrCreateGauge(name("spool_records", ""), func() float64 { _, n := s.Size(); return float64(n) })
	return s, nil
}

// MetricName is prefix+name with the labels of both lists (each `k="v"`
// pairs separated by commas; either may be empty): the metric names of the
// components that take MetricPrefix and MetricLabels options (this spool,
// the remote write client of agent/push).
func MetricName(prefix, name, labels, more string) string {
	switch {
	case labels == "" && more == "":
		return prefix + name
	case labels == "" || more == "":
		return prefix + name + "{" + labels + more + "}"
	}
	return prefix + name + "{" + labels + "," + more + "}"
}

// load reads the directory: the segments, the read position, and starts a
// new segment for this process's appends.
func (s *Spool) load() error {
	entries, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("cannot read spool directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 16, 64)
		if err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("cannot stat spool segment: %w", err)
		}
		s.segs = append(s.segs, segment{seq: seq, size: fi.Size()})
	}
	slices.SortFunc(s.segs, func(a, b segment) int { return cmpUint(a.seq, b.seq) })

	s.pos, err = os.OpenFile(filepath.Join(s.opts.Dir, posFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open spool read position: %w", err)
	}
	seq, off, ok := s.readPos()
	// Trust the position only if its segment exists: a crash between
	// removing a consumed segment and writing the position leaves it
	// pointing at the removed one, and then the oldest segment is where to
	// start anyway.
	ok = ok && slices.ContainsFunc(s.segs, func(g segment) bool { return g.seq == seq })
	// Segments before the read position were consumed before a crash
	// removed them.
	for len(s.segs) > 0 && ok && s.segs[0].seq < seq {
		_ = os.Remove(s.segPath(s.segs[0].seq))
		s.segs = s.segs[1:]
	}
	for i := range s.segs {
		start := int64(len(segmentMagic))
		if i == 0 && ok && s.segs[0].seq == seq {
			start = off
		}
		s.segs[i].records = countRecords(s.segPath(s.segs[i].seq), start)
		s.records += s.segs[i].records
		s.bytes += s.segs[i].size
	}
	if len(s.segs) > 0 {
		s.rOff = int64(len(segmentMagic))
		if ok && s.segs[0].seq == seq && off >= s.rOff && off <= s.segs[0].size {
			s.rOff = off
		}
	}
	next := uint64(1)
	if len(s.segs) > 0 {
		next = s.segs[len(s.segs)-1].seq + 1
	}
	return s.newSegment(next)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.opts.Dir, fmt.Sprintf("%016x%s", seq, segSuffix))
}

// newSegment creates segment seq and makes it the one appended to.
func (s *Spool) newSegment(seq uint64) error {
	f, err := os.OpenFile(s.segPath(seq), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create spool segment: %w", err)
	}
	if _, err := f.Write([]byte(segmentMagic)); err != nil {
		f.Close()
		return fmt.Errorf("cannot write spool segment: %w", err)
	}
	if s.opts.SyncInterval >= 0 {
		// Make the new file's directory entry durable with the data.
		if err := syncDir(s.opts.Dir); err != nil {
			f.Close()
			return err
		}
	}
	if s.w != nil {
		if s.dirty && s.opts.SyncInterval >= 0 {
			_ = s.w.Sync()
		}
		s.w.Close()
	}
	s.w = f
	s.dirty = false
	s.segs = append(s.segs, segment{seq: seq, size: int64(len(segmentMagic))})
	s.bytes += int64(len(segmentMagic))
	if len(s.segs) == 1 {
		s.rOff = int64(len(segmentMagic))
		s.rRecords = 0
	}
	return nil
}

// Append adds rec at the tail. When the spool would grow past MaxBytes the
// oldest segments are dropped first. rec is copied.
func (s *Spool) Append(rec []byte) error {
	need := int64(headerLen + len(rec))
	if len(rec) > MaxRecordBytes || need+int64(2*len(segmentMagic)) > s.opts.MaxBytes {
		return fmt.Errorf("%w: %d bytes, limit %d (raise %s)", ErrTooLarge, len(rec), s.opts.MaxBytes, s.opts.MaxBytesFlag)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool is closed")
	}
	last := &s.segs[len(s.segs)-1]
	if last.size+need > s.opts.SegmentBytes && last.size > int64(len(segmentMagic)) {
		if err := s.newSegment(last.seq + 1); err != nil {
			return err
		}
	}
	for s.bytes+need > s.opts.MaxBytes && len(s.segs) > 1 {
		s.dropOldest()
	}
	var hdr [headerLen]byte
	binary.LittleEndian.PutUint32(hdr[0:], recordMagic)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(rec)))
	crc := crc32.Update(crc32.Checksum(hdr[4:8], castagnoli), castagnoli, rec)
	binary.LittleEndian.PutUint32(hdr[8:], crc)
	s.wbuf = append(append(s.wbuf[:0], hdr[:]...), rec...)
	if _, err := s.w.Write(s.wbuf); err != nil {
		// A partial write leaves a torn record the reader will skip;
		// start afresh in a new segment.
		werr := fmt.Errorf("cannot write to spool: %w", err)
		if nerr := s.newSegment(s.segs[len(s.segs)-1].seq + 1); nerr != nil {
			return errors.Join(werr, nerr)
		}
		return werr
	}
	last = &s.segs[len(s.segs)-1]
	last.size += need
	last.records++
	s.bytes += need
	s.records++
	s.dirty = true
	if err := s.maybeSync(); err != nil {
		return err
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

func (s *Spool) maybeSync() error {
	switch {
	case s.opts.SyncInterval < 0:
		return nil
	case s.opts.SyncInterval > 0 && time.Since(s.lastSync) < s.opts.SyncInterval:
		return nil
	}
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("cannot fsync spool: %w", err)
	}
	s.lastSync = time.Now()
	s.dirty = false
	return nil
}

// dropOldest deletes the oldest segment and counts its unread records.
func (s *Spool) dropOldest() {
	seg := s.segs[0]
	lost := max(seg.records-s.rRecords, 0)
	s.closeReader()
	_ = os.Remove(s.segPath(seg.seq))
	s.segs = s.segs[1:]
	s.bytes -= seg.size
	s.records -= lost
	s.rOff = int64(len(segmentMagic))
	s.rRecords = 0
	s.peeked = s.peeked[:0]
	s.droppedFull.Add(lost)
	s.logger.Warn("spool full, dropped oldest records", "records", lost, "bytes", seg.size, "max_bytes", s.opts.MaxBytes)
	s.writePos()
}

func (s *Spool) closeReader() {
	if s.r != nil {
		s.r.Close()
		s.r = nil
	}
}

// Peek returns the oldest unacknowledged record, or ok=false when the
// spool is empty. The record stays until Ack; a second Peek returns it
// again. rec is valid until the next Peek; Append may run meanwhile.
func (s *Spool) Peek() (rec []byte, ok bool, err error) {
	recs, err := s.PeekBatch(1, 0)
	if err != nil || len(recs) == 0 {
		return nil, false, err
	}
	return recs[0], true, nil
}

// PeekBatch returns the oldest unacknowledged records, at most maxRecords
// and, past the first, at most maxBytes of payload together; none when the
// spool is empty. They come from one segment file, so a batch may be
// shorter than asked at a segment's end. Ack acknowledges all of them; a
// second PeekBatch before that returns them again (perhaps with more).
// The records are valid until the next Peek or PeekBatch; Append may run
// meanwhile.
func (s *Spool) PeekBatch(maxRecords, maxBytes int) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("spool is closed")
	}
	s.peeked = s.peeked[:0]
	for {
		seg := &s.segs[0]
		if s.rOff >= seg.size {
			if len(s.segs) == 1 {
				return nil, nil // caught up with the writer
			}
			s.finishSegment()
			continue
		}
		if s.r == nil || s.rSeq != seg.seq {
			s.closeReader()
			f, err := os.Open(s.segPath(seg.seq))
			if err != nil {
				return nil, fmt.Errorf("cannot open spool segment: %w", err)
			}
			s.r, s.rSeq = f, seg.seq
		}
		n, err := s.readRecord(s.rOff, seg.size, 0)
		if err == nil {
			// Then as many of the following records as fit; a bad one
			// ends the batch and is dealt with when it comes first.
			ends := []int{int(n - headerLen)}
			s.peeked = append(s.peeked, n)
			off := s.rOff + n
			for len(ends) < maxRecords && off < seg.size {
				last := ends[len(ends)-1]
				m, err := s.readRecord(off, seg.size, last)
				if err != nil || last+int(m-headerLen) > maxBytes {
					s.rbuf = s.rbuf[:last]
					break
				}
				ends = append(ends, last+int(m-headerLen))
				s.peeked = append(s.peeked, m)
				off += m
			}
			s.recs = s.recs[:0]
			start := 0
			for _, end := range ends {
				s.recs = append(s.recs, s.rbuf[start:end:end])
				start = end
			}
			return s.recs, nil
		}
		if !errors.Is(err, errCorrupt) {
			return nil, err
		}
		// Skip to the next record magic after the bad one.
		next := s.resync(s.rOff+1, seg.size)
		s.droppedCorrupt.Inc()
		s.logger.Warn("skipped corrupt spool record", "segment", filepath.Base(s.segPath(seg.seq)), "offset", s.rOff, "skipped_bytes", next-s.rOff, "err", err)
		s.rOff = next
		s.rRecords++
		s.records = max(s.records-1, 0)
		s.writePos()
	}
}

var errCorrupt = errors.New("corrupt record")

// readRecord reads the record at off of the open read segment into
// s.rbuf[at:] and returns its length on disk.
func (s *Spool) readRecord(off, size int64, at int) (int64, error) {
	var hdr [headerLen]byte
	if size-off < headerLen {
		return 0, fmt.Errorf("%w: truncated header", errCorrupt)
	}
	if _, err := s.r.ReadAt(hdr[:], off); err != nil {
		return 0, fmt.Errorf("cannot read spool segment: %w", err)
	}
	if binary.LittleEndian.Uint32(hdr[0:]) != recordMagic {
		return 0, fmt.Errorf("%w: bad magic", errCorrupt)
	}
	n := int64(binary.LittleEndian.Uint32(hdr[4:]))
	if n > MaxRecordBytes || off+headerLen+n > size {
		return 0, fmt.Errorf("%w: length %d past the end of the segment", errCorrupt, n)
	}
	s.rbuf = slices.Grow(s.rbuf[:at], int(n))
	rec := s.rbuf[at : at+int(n)]
	if _, err := s.r.ReadAt(rec, off+headerLen); err != nil {
		return 0, fmt.Errorf("cannot read spool segment: %w", err)
	}
	crc := crc32.Update(crc32.Checksum(hdr[4:8], castagnoli), castagnoli, rec)
	if crc != binary.LittleEndian.Uint32(hdr[8:]) {
		return 0, fmt.Errorf("%w: CRC mismatch", errCorrupt)
	}
	s.rbuf = s.rbuf[:at+int(n)]
	return headerLen + n, nil
}

// resync returns the offset of the next record magic at or after from, or
// size when there is none.
func (s *Spool) resync(from, size int64) int64 {
	var m [4]byte
	binary.LittleEndian.PutUint32(m[:], recordMagic)
	const chunk = 64 << 10
	buf := make([]byte, chunk+3)
	for off := from; off < size; off += chunk {
		n, err := s.r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n <= 0 && err != nil {
			return size
		}
		for i := 0; i+4 <= n; i++ {
			if buf[i] == m[0] && buf[i+1] == m[1] && buf[i+2] == m[2] && buf[i+3] == m[3] {
				return off + int64(i)
			}
		}
	}
	return size
}

// finishSegment removes the fully read oldest segment.
func (s *Spool) finishSegment() {
	seg := s.segs[0]
	s.closeReader()
	_ = os.Remove(s.segPath(seg.seq))
	s.segs = s.segs[1:]
	s.bytes -= seg.size
	s.records -= max(seg.records-s.rRecords, 0)
	s.rOff = int64(len(segmentMagic))
	s.rRecords = 0
	s.writePos()
}

// Ack removes the records the last Peek or PeekBatch returned. It does
// nothing when they were dropped for space in between (they were counted
// then).
func (s *Spool) Ack() error { return s.AckN(-1) }

// AckN removes the first n of the records the last Peek or PeekBatch
// returned (all of them when n is negative or more than were returned);
// the others come first in the next PeekBatch. Like Ack, it does nothing
// when they were dropped for space in between.
func (s *Spool) AckN(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool is closed")
	}
	if n < 0 || n > len(s.peeked) {
		n = len(s.peeked)
	}
	if n == 0 {
		return nil
	}
	for _, l := range s.peeked[:n] {
		s.rOff += l
	}
	s.rRecords += n
	s.records = max(s.records-n, 0)
	s.peeked = s.peeked[:0]
	if s.rOff >= s.segs[0].size {
		if len(s.segs) == 1 {
			// Caught up with the writer: start a fresh segment so the
			// consumed one can go and the spool is empty on disk too.
			if err := s.newSegment(s.segs[0].seq + 1); err != nil {
				s.writePos()
				return err
			}
		}
		s.finishSegment()
		return nil
	}
	s.writePos()
	return nil
}

// Notify returns a channel that receives a value after an Append; a reader
// waiting for records selects on it.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Size returns the bytes of the segment files and the number of
// unacknowledged records (exact for records appended by this process,
// counted by record headers for older ones).
func (s *Spool) Size() (bytes int64, records int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes, s.records
}

// Close fsyncs and closes the spool. Records not acknowledged stay for the
// next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.w != nil && s.opts.SyncInterval >= 0 {
		if err := s.w.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("cannot fsync spool: %w", err))
		}
	}
	s.writePos()
	if s.pos != nil && s.opts.SyncInterval >= 0 {
		if err := s.pos.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("cannot fsync spool read position: %w", err))
		}
	}
	s.closeFiles()
	return errors.Join(errs...)
}

func (s *Spool) closeFiles() {
	s.closeReader()
	for _, f := range []*os.File{s.w, s.pos, s.lock} {
		if f != nil {
			f.Close()
		}
	}
	s.w, s.pos, s.lock = nil, nil, nil
}

// writePos records the read position: sequence, offset, CRC. It is written
// in place without fsync (see the package doc).
func (s *Spool) writePos() {
	if s.pos == nil || len(s.segs) == 0 {
		return
	}
	var b [20]byte
	binary.LittleEndian.PutUint64(b[0:], s.segs[0].seq)
	binary.LittleEndian.PutUint64(b[8:], uint64(s.rOff))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	if _, err := s.pos.WriteAt(b[:], 0); err != nil {
		s.logger.Warn("cannot write spool read position; records may be replayed twice after a restart", "err", err)
	}
}

func (s *Spool) readPos() (seq uint64, off int64, ok bool) {
	var b [20]byte
	if n, err := s.pos.ReadAt(b[:], 0); err != nil {
		if n > 0 {
			s.logger.Warn("spool read position is truncated; replaying from the oldest segment")
		}
		return 0, 0, false
	}
	if crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		s.logger.Warn("spool read position is corrupt; replaying from the oldest segment")
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[0:]), int64(binary.LittleEndian.Uint64(b[8:])), true
}

// countRecords counts the records of a segment from offset start by walking
// the headers (no CRC check); it stops at the first bad header.
func countRecords(path string, start int64) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	var hdr [headerLen]byte
	for off := start; ; n++ {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return n // io.EOF at the end, or a torn header
		}
		if binary.LittleEndian.Uint32(hdr[0:]) != recordMagic {
			return n
		}
		off += headerLen + int64(binary.LittleEndian.Uint32(hdr[4:]))
	}
}
