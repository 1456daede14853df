package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// This file is how every write endpoint (remote write, text import,
// Influx, OTLP) reads its body, the first steps of the prelude they share
// (Handlers.serve):
//
//   - The body is read before the request takes an insert slot
//     (Writer.Acquire), within -ingest.body-read-timeout, so a sender that
//     stalls holds only its own connection, never a slot other writers need.
//   - A body over -ingest.max-body-bytes is refused from Content-Length
//     before reading or while reading; a decompressed body over
//     -ingest.max-decoded-bytes while decompressing (snappy: from its
//     header, before decoding), so a gzip bomb stops at the limit.
//   - Every byte a request holds (the body as sent, decompressed, and
//     batchFactor times the decompressed size for the decoded batch) is
//     reserved from one budget, -ingest.max-inflight-bytes, as the buffers
//     grow; a request that would exceed it is answered 503 with Retry-After
//     instead of growing the process, and releases what it reserved.
//     Memory per write is thus about (1 + 1 + batchFactor) times its
//     decoded size, and all writes together stay within the budget, with
//     two exceptions that keep writes moving: a request alone may exceed it
//     (the largest allowed request is never starved), and so may one
//     request starting to decode while no other decodes (bodies being read
//     cannot starve every request that has read its own). The bound is
//     then the budget plus one request's decoding.

// batchFactor is how many bytes a write holds per decompressed body byte
// while it is decoded and appended, the decodeFactor of the remote write,
// text and Influx endpoints: the batch (a float sample is ~12 bytes of
// remote write and 16 in the batch, a label 32 however short) and the
// TSDB appender's own copy of the samples and their WAL record (~35 bytes a
// sample). TestE2EMemoryBound measures the whole.
const batchFactor = 6

// bodyEncoding says which Content-Encodings an endpoint takes.
type bodyEncoding int

const (
	// gzipOrIdentity takes gzip (or x-gzip), identity or no encoding: the
	// text, Influx and OTLP endpoints.
	gzipOrIdentity bodyEncoding = iota
	// snappyBody takes snappy block format, as remote write requires (no
	// Content-Encoding is taken as snappy too, as Prometheus does).
	snappyBody
)

// inflight is the budget of bytes all write requests hold together.
type inflight struct {
	max  int64
	used atomic.Int64
	// decoding counts requests holding a decode reservation (decompressed
	// body and batch). When none does, the next one proceeds whatever the
	// bodies being read hold, so requests reading their bodies can never
	// starve every request that has read its own (all holding raw bytes,
	// none able to decode).
	decoding atomic.Int64
}

// reserve takes n bytes from the budget, or reports false when that would
// exceed it while other requests hold some (one request alone always
// proceeds, and so does a decode reservation while no other request
// decodes). held is what the caller reserved before.
func (b *inflight) reserve(n, held int64, decode bool) bool {
	if b.max <= 0 || n <= 0 {
		b.used.Add(n)
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.max && used > held && !(decode && b.decoding.Load() == 0) {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// reservation is what one request holds of the budget.
type reservation struct {
	b        *inflight
	held     int64
	decoding bool
}

// grow reserves n more bytes for what (named in the error); decode marks
// the reservation of the decompressed body and the batch.
func (r *reservation) grow(n int64, what string, decode bool) error {
	if n <= 0 {
		return nil
	}
	if !r.b.reserve(n, r.held, decode) {
		return fmt.Errorf("%w: writes in flight hold %d bytes and this one needs %d more for its %s, limit -ingest.max-inflight-bytes=%d: retry later (the sender's retry does), send smaller requests, or raise the flag",
			ErrOverloaded, r.b.used.Load(), n, what, r.b.max)
	}
	r.held += n
	if decode && !r.decoding {
		r.decoding = true
		r.b.decoding.Add(1)
	}
	return nil
}

func (r *reservation) release() {
	r.b.used.Add(-r.held)
	r.held = 0
	if r.decoding {
		r.decoding = false
		r.b.decoding.Add(-1)
	}
}

// readChunk is how much a body read grows its buffer at a time.
const readChunk = 256 << 10

// readBody reads and decompresses r's body as every write endpoint does
// (see the file comment) into bufs, and returns the decompressed bytes,
// valid until bufs is reused, and the release of the in-flight bytes the
// request holds: call it once the request is answered (also after an
// error). Errors wrap ErrTooLarge (413), ErrInvalid (400),
// ErrUnsupportedMediaType (415) or ErrOverloaded (503) and say which limit,
// header or flag to fix.
//
// decodeFactor is how many bytes the endpoint's decoding holds per
// decompressed byte (batchFactor, or more where an intermediate form such
// as OTLP's pdata comes first); it is reserved before decoding.
func (h *Handlers) readBody(w http.ResponseWriter, r *http.Request, bufs *bodyBuffers, enc bodyEncoding, decodeFactor int) (data []byte, release func(), err error) {
	res := &reservation{b: &h.inflight}
	release = res.release
	ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch {
	case enc == snappyBody && (ce == "" || ce == "snappy"):
	case enc == gzipOrIdentity && (ce == "" || ce == "identity" || ce == "gzip" || ce == "x-gzip"):
	case enc == snappyBody:
		return nil, release, fmt.Errorf("%w: Content-Encoding %q; remote write bodies must be snappy-compressed (Content-Encoding: snappy)", ErrUnsupportedMediaType, ce)
	default:
		return nil, release, fmt.Errorf("%w: Content-Encoding %q; send it plain or gzip", ErrUnsupportedMediaType, ce)
	}
	// The pooled buffers are this request's to fill.
	if err := res.grow(int64(cap(bufs.Raw)+cap(bufs.Decoded)), "buffers", false); err != nil {
		return nil, release, err
	}
	max := h.opts.MaxBodyBytes
	if r.ContentLength > max {
		return nil, release, fmt.Errorf("%w: body is %d bytes, limit -ingest.max-body-bytes=%d: send smaller batches or raise the flag", ErrTooLarge, r.ContentLength, max)
	}
	if t := h.opts.BodyReadTimeout; t > 0 {
		// Bound the body read; the server's own timeouts take over again
		// for the rest of the connection's life.
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(t)) == nil {
			defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
		}
	}
	bufs.Raw, err = readAll(bufs.Raw[:0], r.Body, max, res, "body", false)
	if err != nil {
		if errors.Is(err, errLimit) {
			return nil, release, fmt.Errorf("%w: body exceeds %d bytes, limit -ingest.max-body-bytes=%d: send smaller batches or raise the flag", ErrTooLarge, max, max)
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, release, fmt.Errorf("%w: the body did not arrive within -ingest.body-read-timeout=%s: the sender or its network is too slow; send smaller requests or raise the flag", errBody, h.opts.BodyReadTimeout)
		}
		return nil, release, err
	}
	maxDec := h.opts.MaxDecodedBytes
	switch {
	case enc == snappyBody:
		if declared, n := binary.Uvarint(bufs.Raw); n > 0 && declared <= uint64(maxDec) {
			// Reserve before decoding; DecodeSnappy refuses larger headers.
			if err := res.grow(int64(declared)*int64(1+decodeFactor), "decoded body and batch", true); err != nil {
				return nil, release, err
			}
		}
		bufs.Decoded, err = remotewrite.DecodeSnappy(bufs.Decoded[:0], bufs.Raw, int(maxDec))
		if err != nil {
			if errors.Is(err, remotewrite.ErrTooLarge) {
				return nil, release, fmt.Errorf("%w: %v (the flag is -ingest.max-decoded-bytes=%d)", ErrTooLarge, err, maxDec)
			}
			return nil, release, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return bufs.Decoded, release, nil
	case ce == "gzip" || ce == "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(bufs.Raw))
		if err != nil {
			return nil, release, fmt.Errorf("%w: cannot read gzip body: %v", ErrInvalid, err)
		}
		// The gzip trailer holds the decompressed size modulo 4 GiB: a size
		// over the limit is over it for sure (a bomb is refused without
		// decompressing it), and one under it sizes the buffer at once.
		if n := len(bufs.Raw); n >= 18 {
			isize := int64(binary.LittleEndian.Uint32(bufs.Raw[n-4:]))
			if isize > maxDec {
				return nil, release, fmt.Errorf("%w: gzip body declares %d decompressed bytes, limit -ingest.max-decoded-bytes=%d: send smaller batches or raise the flag", ErrTooLarge, isize, maxDec)
			}
			if int64(cap(bufs.Decoded)) <= isize {
				if err := res.grow(isize+1, "decompressed body", true); err != nil {
					return nil, release, err
				}
				bufs.Decoded = make([]byte, 0, isize+1)
			}
		}
		bufs.Decoded, err = readAll(bufs.Decoded[:0], zr, maxDec, res, "decompressed body", true)
		if err != nil {
			if errors.Is(err, errLimit) {
				return nil, release, fmt.Errorf("%w: body decompresses to more than %d bytes, limit -ingest.max-decoded-bytes=%d: send smaller batches or raise the flag", ErrTooLarge, maxDec, maxDec)
			}
			if errors.Is(err, ErrOverloaded) {
				return nil, release, err
			}
			return nil, release, fmt.Errorf("%w: cannot decompress gzip body: %v", ErrInvalid, err)
		}
		if err := res.grow(int64(len(bufs.Decoded))*int64(decodeFactor), "decoded batch", true); err != nil {
			return nil, release, err
		}
		return bufs.Decoded, release, nil
	}
	if err := res.grow(int64(len(bufs.Raw))*int64(decodeFactor), "decoded batch", true); err != nil {
		return nil, release, err
	}
	return bufs.Raw, release, nil
}

var errLimit = errors.New("over the limit")

// readAll appends what src yields to dst, at most max bytes (errLimit
// beyond), reserving every byte of capacity it grows dst by from res.
// The caller has reserved dst's capacity.
func readAll(dst []byte, src io.Reader, limit int64, res *reservation, what string, decode bool) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			if int64(len(dst)) > limit {
				return dst, errLimit
			}
			// Double (at least a chunk), so the buffers left behind add up
			// to the final size at most, but never past the limit.
			grow := int(min(int64(max(readChunk, len(dst))), limit+1-int64(len(dst))))
			if err := res.grow(int64(grow), what, decode); err != nil {
				return dst, err
			}
			nd := make([]byte, len(dst), cap(dst)+grow)
			copy(nd, dst)
			dst = nd
		}
		n, err := src.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)) > limit {
			return dst, errLimit
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, fmt.Errorf("%w: cannot read body: %w", errBody, err)
		}
	}
}

// bodyBuffers holds the reusable buffers of one request body. The zero value
// is ready for use; keep one per pooled request state so reading a body
// allocates nothing once the buffers have grown.
type bodyBuffers struct {
	Raw     []byte // the body as sent
	Decoded []byte // the body after gunzip
}

// trim drops the buffers an unusually large request grew (Raw over 8 MiB,
// Decoded over 32 MiB), so a pooled request state does not hold on to
// them. Call it before putting the state back into its pool.
func (b *bodyBuffers) trim() {
	if cap(b.Raw) > 8<<20 {
		b.Raw = nil
	}
	if cap(b.Decoded) > 32<<20 {
		b.Decoded = nil
	}
}

// resetBatch empties b for the next request of a pooled state; a batch an
// unusually large request grew past 1Mi samples is dropped instead, so the
// pool does not hold on to its memory.
func resetBatch(b *samples.Batch) {
	if cap(b.Samples) > 1<<20 {
		*b = samples.Batch{}
		return
	}
	b.Reset()
}
