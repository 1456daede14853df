package forward

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/telltale-dev/telltale/agent/push"
)

// A queue record is one remote write request body with what the drainer
// needs to know about it without decoding it:
//
//	format (1 byte, recordFormat) | remote write version (1 byte: 1 or 2) |
//	samples (uvarint) | queued at (varint, ms since the epoch) |
//	oldest sample (varint, ms) | body (snappy-compressed protobuf)
//
// The spool frames and checksums each record; this is its payload.
const recordFormat = 1

// recordHeader is what a record says about its body.
type recordHeader struct {
	version  push.Version
	samples  int
	queuedAt int64 // ms
	minT     int64 // ms; the oldest sample of the body
}

// appendRecord appends the record of body to dst.
func appendRecord(dst []byte, h recordHeader, body []byte) []byte {
	dst = append(dst, recordFormat, byte(h.version))
	dst = binary.AppendUvarint(dst, uint64(h.samples))
	dst = binary.AppendVarint(dst, h.queuedAt)
	dst = binary.AppendVarint(dst, h.minT)
	return append(dst, body...)
}

var errBadRecord = errors.New("unreadable forward queue record")

// parseRecord splits a record into its header and body; body aliases rec.
func parseRecord(rec []byte) (recordHeader, []byte, error) {
	var h recordHeader
	if len(rec) < 2 {
		return h, nil, fmt.Errorf("%w: %d bytes", errBadRecord, len(rec))
	}
	if rec[0] != recordFormat {
		return h, nil, fmt.Errorf("%w: format %d, want %d (written by a newer collector?)", errBadRecord, rec[0], recordFormat)
	}
	h.version = push.Version(rec[1])
	if h.version != push.V1 && h.version != push.V2 {
		return h, nil, fmt.Errorf("%w: remote write version %d", errBadRecord, rec[1])
	}
	i := 2
	n, k := binary.Uvarint(rec[i:])
	if k <= 0 || n > 1<<31 {
		return h, nil, fmt.Errorf("%w: bad sample count", errBadRecord)
	}
	h.samples, i = int(n), i+k
	if h.queuedAt, k = binary.Varint(rec[i:]); k <= 0 {
		return h, nil, fmt.Errorf("%w: bad queue time", errBadRecord)
	}
	i += k
	if h.minT, k = binary.Varint(rec[i:]); k <= 0 {
		return h, nil, fmt.Errorf("%w: bad sample time", errBadRecord)
	}
	i += k
	return h, rec[i:], nil
}
