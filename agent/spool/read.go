package spool

// The reading side of the spool: Peek and PeekBatch read records from the
// oldest segment, checking each CRC and resynchronising past corruption;
// Ack and AckN advance the read position, drop finished segments and keep
// the position file (see the package doc for what it promises).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
)

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
