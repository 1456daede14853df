package forward

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/agent/spool"
	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/retry"
	"github.com/telltale-dev/telltale/samples"
)

// drainer sends one target's queue, oldest first, one request at a time.
type drainer struct {
	f      *Forwarder
	target Target
	q      *spool.Spool
	client *push.Client
	log    *slog.Logger
	late   func(*samples.Batch) // primary target only

	// head is the queue time (ms) of the oldest record being sent, 0 when
	// the drainer is idle.
	head atomic.Int64
	down bool // the last send failed; logged once per outage

	queued, sent, rejected, unreadable *metrics.Counter

	// scratch for merging and decoding
	raw, merged []byte
	lateBatch   samples.Batch
}

// oldestAge is the age in seconds of the oldest record not yet delivered.
func (d *drainer) oldestAge() float64 {
	h := d.head.Load()
	if h == 0 {
		return 0
	}
	return max(float64(d.f.opts.Now().UnixMilli()-h)/1e3, 0)
}

// run sends until ctx is done, then for at most ShutdownDrain while the
// queue is not empty. A request in flight when it stops is abandoned: its
// records stay queued and go again after the restart (an engine ignores a
// sample it already has).
func (d *drainer) run(ctx context.Context) {
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if d.f.opts.ShutdownDrain <= 0 {
			cancel()
			return
		}
		time.AfterFunc(d.f.opts.ShutdownDrain, cancel)
	})
	defer stop()
	for sendCtx.Err() == nil {
		recs, err := d.q.PeekBatch(256, d.f.opts.MaxBytesPerSend)
		if err != nil {
			d.log.Error("cannot read forward queue; retrying in 1s", "err", err)
			retry.Sleep(sendCtx, time.Second)
			continue
		}
		if len(recs) == 0 {
			d.head.Store(0)
			if ctx.Err() != nil {
				return // stopping, and nothing left
			}
			select {
			case <-ctx.Done():
			case <-d.q.Notify():
			}
			continue
		}
		d.sendBatch(sendCtx, recs)
	}
}

// batchRecord is a record of a batch, parsed.
type batchRecord struct {
	h    recordHeader
	body []byte
}

// sendBatch sends a prefix of recs (one request, or record by record when
// the engine refuses the merged one) and acknowledges what it settled.
func (d *drainer) sendBatch(ctx context.Context, recs [][]byte) {
	var batch []batchRecord
	total := 0
	for _, r := range recs {
		h, body, err := parseRecord(r)
		if err != nil {
			if len(batch) > 0 {
				break // settled when it comes first
			}
			d.unreadable.Inc()
			d.log.Error("dropped unreadable forward queue record", "err", err)
			_ = d.q.AckN(1)
			return
		}
		// Version 2.0 bodies carry their own symbol table and cannot be
		// concatenated; 1.0 bodies merge up to MaxSamplesPerSend.
		if len(batch) > 0 && (h.version != push.V1 || batch[0].h.version != push.V1 || total+h.samples > d.f.opts.MaxSamplesPerSend) {
			break
		}
		batch = append(batch, batchRecord{h, body})
		total += h.samples
	}
	d.head.Store(batch[0].h.queuedAt)
	body := batch[0].body
	if len(batch) > 1 {
		var ok bool
		if body, ok = d.merge(batch); !ok {
			batch = batch[:1]
			body, total = batch[0].body, batch[0].h.samples
		}
	}
	err := d.client.WithVersion(batch[0].h.version).Send(ctx, body)
	switch {
	case err == nil:
		d.delivered(batch, total)
	case push.IsPermanent(err) && len(batch) > 1:
		// One request for each record alone: only what the engine refuses
		// on its own is dropped.
		for i, r := range batch {
			err := d.client.WithVersion(r.h.version).Send(ctx, r.body)
			switch {
			case err == nil:
				d.delivered(batch[i:i+1], r.h.samples)
			case push.IsPermanent(err):
				d.refused(batch[i:i+1], r.h.samples, err)
			default:
				d.failed(ctx, err)
				_ = d.q.AckN(i) // the rest is sent again
				return
			}
		}
	case push.IsPermanent(err):
		d.refused(batch, total, err)
	default:
		d.failed(ctx, err)
		return
	}
	if err := d.q.AckN(len(batch)); err != nil {
		d.log.Error("cannot acknowledge forward queue records; they may be sent twice", "err", err)
	}
}

// merge concatenates the decoded remote write 1.0 bodies of batch (a
// WriteRequest's fields are all repeated, so concatenated requests are
// one request with all their series and metadata) and compresses the
// result. It reports false when a body does not decode.
func (d *drainer) merge(batch []batchRecord) ([]byte, bool) {
	d.raw = d.raw[:0]
	for _, r := range batch {
		n, err := snappy.DecodedLen(r.body)
		if err != nil || n > spool.MaxRecordBytes {
			return nil, false
		}
		start := len(d.raw)
		d.raw = append(d.raw, make([]byte, n)...)
		if _, err := snappy.Decode(d.raw[start:], r.body); err != nil {
			return nil, false
		}
	}
	d.merged = snappy.Encode(d.merged[:cap(d.merged)], d.raw)
	return d.merged, true
}

func (d *drainer) delivered(batch []batchRecord, n int) {
	d.sent.Add(n)
	if d.down {
		d.down = false
		b, recs := d.q.Size()
		d.log.Info("remote write target reachable again; sending the backlog", "backlog_records", recs, "backlog_bytes", b)
	}
	d.reportLate(batch)
}

func (d *drainer) refused(batch []batchRecord, n int, err error) {
	d.rejected.Add(n)
	d.log.Error("remote write target refused samples; dropped them", "samples", n, "err", err)
	// The engine may have kept part of a refused request (Cortex keeps the
	// valid samples of a request it answers 400).
	d.reportLate(batch)
}

func (d *drainer) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	if !d.down {
		d.down = true
		d.log.Warn("cannot reach remote write target; samples stay queued until it is back", "err", err)
	}
	// Send backed off between its attempts; wait the longest backoff
	// before the next round rather than start again at the shortest.
	retry.Sleep(ctx, d.f.opts.MaxBackoff)
}

// reportLate gives Options.Late the samples of the records that hold
// samples older than LateAge now that the engine has them.
func (d *drainer) reportLate(batch []batchRecord) {
	if d.late == nil {
		return
	}
	cut := d.f.opts.Now().Add(-d.f.opts.LateAge).UnixMilli()
	for _, r := range batch {
		if r.h.minT > cut {
			continue
		}
		raw, err := snappy.Decode(d.raw[:cap(d.raw)], r.body)
		if err != nil {
			continue
		}
		d.raw = raw
		d.lateBatch.Reset()
		if r.h.version == push.V2 {
			_, err = remotewrite.DecodeV2(raw, &d.lateBatch)
		} else {
			_, err = remotewrite.DecodeV1(raw, &d.lateBatch)
		}
		if err != nil {
			d.log.Error("BUG: cannot decode a queued remote write body", "err", err)
			continue
		}
		d.late(&d.lateBatch)
	}
}
