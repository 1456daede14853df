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
