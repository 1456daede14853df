// Package sender delivers the agent's remote write bodies so that none is
// lost while the collector is down or restarting.
//
// Live bodies are sent at once, one attempt each. A body whose attempt
// fails retryably (network error, timeout, 429, 5xx, or a pending
// Retry-After) is appended to the spool before the next body is tried, so
// everything collected and not delivered is on disk within milliseconds of
// the failure. A replay loop sends the spool oldest first, retrying with
// backoff, alongside the live traffic: live data is never held behind the
// backlog (the collector's out-of-order window accepts the older samples),
// and within the backlog the order is kept.
//
// A body the collector rejects permanently (another 4xx) is dropped,
// logged with the collector's message and counted: sending it again could
// not succeed.
//
// On shutdown (Run's ctx cancelled) a live send in flight gets
// Options.ShutdownGrace to finish, then every body still in memory is
// appended to the spool; the next start replays it. What a kill -9 can lose is only a body not yet handed to the
// spool: the one being sent at that instant, or queued behind it.
package sender

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/telltale-dev/telltale/agent/push"
	"github.com/telltale-dev/telltale/agent/spool"
	"github.com/telltale-dev/telltale/retry"
)

// Options configures a Sender.
type Options struct {
	// Client sends the bodies; its version is the version of the bodies
	// given to Submit. Spooled bodies of another version (written before a
	// restart with another -remote-write-version) are replayed with
	// Client.WithVersion.
	Client *push.Client
	// Spool keeps the bodies that could not be sent.
	Spool *spool.Spool
	// QueueSize is how many live bodies may wait for the one being sent;
	// when full, Submit spools directly. Zero means 64.
	QueueSize int
	// ShutdownGrace is how long a live send in flight when Run's ctx is
	// cancelled may still take before it is abandoned (and its body
	// spooled). Zero means 2s.
	ShutdownGrace time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Metrics receives the counters; nil means none are kept.
	Metrics *metrics.Set
}

type item struct {
	body    []byte
	samples int
}

// Sender delivers bodies, live or through the spool. Submit is safe for
// concurrent use.
type Sender struct {
	opts   Options
	logger *slog.Logger
	queue  chan item

	mu      sync.Mutex // orders Submit against the final drain
	stopped bool

	down atomic.Bool // the last attempt failed; logged once per outage

	sent, replayed, rejected, spooled, spoolErrors *metrics.Counter
}

// New returns a Sender; call Run to start it.
func New(opts Options) *Sender {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 64
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	const p = "telltale_agent_"
	return &Sender{
		opts:        opts,
		logger:      opts.Logger.With("component", "sender"),
		queue:       make(chan item, opts.QueueSize),
		sent:        set.GetOrCreateCounter(p + "samples_sent_total"),
		replayed:    set.GetOrCreateCounter(p + "samples_replayed_total"),
		rejected:    set.GetOrCreateCounter(p + `samples_dropped_total{reason="rejected"}`),
		spooled:     set.GetOrCreateCounter(p + "samples_spooled_total"),
		spoolErrors: set.GetOrCreateCounter(p + "spool_write_errors_total"),
	}
}

// Submit hands over a snappy-compressed remote write body of the client's
// version holding samples samples. It copies body and never blocks on the
// network: when the live queue is full, or Run has ended, the body goes to
// the spool at once.
func (s *Sender) Submit(body []byte, samples int) {
	it := item{body: append([]byte(nil), body...), samples: samples}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		select {
		case s.queue <- it:
			return
		default:
		}
	}
	s.spoolItem(it, s.opts.Client.Version())
}

// Run sends live bodies and replays the spool until ctx is done, then
// spools what is left in memory and returns. The caller closes the spool
// afterwards.
func (s *Sender) Run(ctx context.Context) error {
	// A live send in flight at shutdown gets ShutdownGrace to finish: a
	// body the collector already has need not be spooled and sent twice.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(s.opts.ShutdownGrace, cancelSends) })
	defer stop()

	var wg sync.WaitGroup
	wg.Go(func() { s.replayLoop(ctx) })
	s.liveLoop(ctx, sendCtx)
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	n := 0
	for {
		select {
		case it := <-s.queue:
			s.spoolItem(it, s.opts.Client.Version())
			n++
		default:
			if n > 0 {
				s.logger.Info("spooled unsent bodies on shutdown", "bodies", n)
			}
			return nil
		}
	}
}

func (s *Sender) liveLoop(ctx, sendCtx context.Context) {
	c := s.opts.Client
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-s.queue:
			err := c.SendOnce(sendCtx, it.body)
			switch {
			case err == nil:
				s.sent.Add(it.samples)
				s.markUp()
			case push.IsPermanent(err):
				s.rejected.Add(it.samples)
				s.logger.Error("collector rejected samples; dropped them", "samples", it.samples, "err", err)
			default:
				s.spoolItem(it, c.Version())
				s.markDown(err)
			}
		}
	}
}

func (s *Sender) replayLoop(ctx context.Context) {
	sp := s.opts.Spool
	for ctx.Err() == nil {
		rec, ok, err := sp.Peek()
		if err != nil {
			s.logger.Error("cannot read spool; retrying in 1s", "err", err)
			if retry.Sleep(ctx, time.Second) != nil {
				return
			}
			continue
		}
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-sp.Notify():
			}
			continue
		}
		v, n, body, err := decodeRecord(rec)
		if err != nil {
			s.logger.Error("dropped unreadable spool record", "err", err)
			_ = sp.Ack()
			continue
		}
		// Unlike a live send, a replay in flight at shutdown is abandoned
		// at once: the record stays in the spool and goes out after the
		// restart (at worst a second time, which a TSDB ignores).
		err = s.opts.Client.WithVersion(v).Send(ctx, body)
		switch {
		case err == nil:
			s.sent.Add(n)
			s.replayed.Add(n)
			s.markUp()
		case push.IsPermanent(err):
			s.rejected.Add(n)
			s.logger.Error("collector rejected spooled samples; dropped them", "samples", n, "err", err)
		case ctx.Err() != nil:
			return // not acknowledged: replayed after the restart
		default:
			// MaxAttempts reached: keep the record and try again.
			s.markDown(err)
			continue
		}
		if err := sp.Ack(); err != nil {
			s.logger.Error("cannot acknowledge spool record; it may be sent twice", "err", err)
		}
	}
}

func (s *Sender) spoolItem(it item, v push.Version) {
	rec := encodeRecord(v, it.samples, it.body)
	if err := s.opts.Spool.Append(rec); err != nil {
		s.spoolErrors.Inc()
		s.logger.Error("cannot spool samples; they are lost", "samples", it.samples, "err", err)
		return
	}
	s.spooled.Add(it.samples)
}

func (s *Sender) markDown(err error) {
	if !s.down.Swap(true) {
		s.logger.Warn("cannot reach the collector; spooling to disk until it is back", "err", err)
	}
}

func (s *Sender) markUp() {
	if s.down.Swap(false) {
		b, n := s.opts.Spool.Size()
		s.logger.Info("collector reachable again; replaying the spool", "spooled_records", n, "spooled_bytes", b)
	}
}

// encodeRecord frames a body for the spool: version byte, samples as a
// uvarint, body.
func encodeRecord(v push.Version, samples int, body []byte) []byte {
	rec := make([]byte, 0, 1+binary.MaxVarintLen64+len(body))
	rec = append(rec, byte(v))
	rec = binary.AppendUvarint(rec, uint64(samples))
	return append(rec, body...)
}

func decodeRecord(rec []byte) (push.Version, int, []byte, error) {
	if len(rec) < 2 {
		return 0, 0, nil, errors.New("spool record too short")
	}
	v := push.Version(rec[0])
	if v != push.V1 && v != push.V2 {
		return 0, 0, nil, fmt.Errorf("spool record has unknown remote write version %d", rec[0])
	}
	n, k := binary.Uvarint(rec[1:])
	if k <= 0 || n > 1<<31 {
		return 0, 0, nil, errors.New("spool record has a bad sample count")
	}
	return v, int(n), rec[1+k:], nil
}
