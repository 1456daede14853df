package instrument

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/retry"
)

// maxRetryAfter caps the collector's Retry-After.
const maxRetryAfter = 10 * time.Minute

// maxLoggedRejections bounds the set of distinct rejection messages already
// logged; when full it is cleared.
const maxLoggedRejections = 64

// chunk is one measurement: every series of the registry at one time,
// gzipped, ready to post.
type chunk struct {
	seq     uint64
	ts      int64 // ms since the epoch, on every sample line
	samples int
	body    []byte
}

// pusher measures the registry every interval into a bounded queue and
// delivers the queue oldest first. Two goroutines: collectLoop measures on
// time whatever the collector does; sendLoop drains.
type pusher struct {
	reg    *Registry
	opts   *Options
	log    *slog.Logger
	labels []constLabel

	mu     sync.Mutex
	queue  []*chunk
	queued int // bytes in queue
	seq    uint64

	wake      chan struct{} // cap 1: a chunk was queued
	stopCh    chan struct{}
	stopOnce  sync.Once
	collected chan struct{} // closed after the final measurement
	hardCtx   context.Context
	hardStop  context.CancelFunc // cancels in-flight requests at the flush deadline

	// collectLoop only
	lastTS int64
	raw    bytes.Buffer
	text   []byte
	zw     *gzip.Writer

	// sendLoop only
	failures int
	logged   map[string]struct{}
	urls     []string // Collector, then Collectors
	cur      int      // index in urls of the replica pushed to
	tried    int      // replicas failed since the last success or wait

	requestsOK, requestsRetry, requestsRejected *metrics.Counter
	droppedFull, droppedRejected, droppedStop   *metrics.Counter
	gauges                                      []string
}

func newPusher(r *Registry, opts *Options, id *identity) *pusher {
	p := &pusher{
		reg:       r,
		opts:      opts,
		log:       opts.Logger.With("collector", redactURL(opts.Collector)),
		urls:      append([]string{opts.Collector}, opts.Collectors...),
		labels:    append(slices.Clone(id.labels), newConstLabel("instance", opts.Instance)),
		wake:      make(chan struct{}, 1),
		stopCh:    make(chan struct{}),
		collected: make(chan struct{}),
		logged:    make(map[string]struct{}),
		zw:        gzip.NewWriter(io.Discard),
	}
	s := r.set
	p.requestsOK = s.GetOrCreateCounter(`telltale_instrument_push_requests_total{result="ok"}`)
	p.requestsRetry = s.GetOrCreateCounter(`telltale_instrument_push_requests_total{result="retry"}`)
	p.requestsRejected = s.GetOrCreateCounter(`telltale_instrument_push_requests_total{result="rejected"}`)
	p.droppedFull = s.GetOrCreateCounter(`telltale_instrument_push_dropped_samples_total{reason="buffer_full"}`)
	p.droppedRejected = s.GetOrCreateCounter(`telltale_instrument_push_dropped_samples_total{reason="rejected"}`)
	p.droppedStop = s.GetOrCreateCounter(`telltale_instrument_push_dropped_samples_total{reason="shutdown"}`)
	p.gauges = []string{"telltale_instrument_push_buffer_bytes", "telltale_instrument_push_buffer_intervals", "telltale_instrument_push_buffer_limit_bytes"}
	s.GetOrCreateGauge(p.gauges[0], func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(p.queued)
	})
	s.GetOrCreateGauge(p.gauges[1], func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(len(p.queue))
	})
	s.GetOrCreateGauge(p.gauges[2], func() float64 { return float64(opts.BufferBytes) })
	return p
}

// redactURL drops user info and the query from u for logs.
func redactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(invalid URL)"
	}
	pu.User, pu.RawQuery = nil, ""
	return pu.String()
}

// run starts the loops; the returned channel is closed when both ended.
func (p *pusher) run(ctx context.Context) <-chan struct{} {
	p.hardCtx, p.hardStop = context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { p.collectLoop(ctx) })
	wg.Go(p.sendLoop)
	go func() {
		wg.Wait()
		p.hardStop()
		for _, g := range p.gauges {
			p.reg.set.UnregisterMetric(g)
		}
		close(done)
	}()
	return done
}

func (p *pusher) stop() { p.stopOnce.Do(func() { close(p.stopCh) }) }

func (p *pusher) collectLoop(ctx context.Context) {
	defer func() {
		time.AfterFunc(p.opts.FlushTimeout, p.hardStop)
		close(p.collected)
	}()
	tick := p.opts.tick
	if tick == nil {
		t := time.NewTicker(p.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	p.measure(time.Now()) // the first interval starts now
	for {
		select {
		case now, ok := <-tick:
			if !ok {
				p.measure(time.Now())
				return
			}
			p.measure(now)
		case <-ctx.Done():
			p.measure(time.Now())
			return
		case <-p.stopCh:
			p.measure(time.Now())
			return
		}
	}
}

// measure writes every series at time t into a chunk and queues it.
func (p *pusher) measure(t time.Time) {
	ts := t.UnixMilli()
	if ts <= p.lastTS {
		ts = p.lastTS + 1 // a second sample at the same ms would be a duplicate
	}
	p.lastTS = ts
	p.raw.Reset()
	p.reg.writeRaw(&p.raw)
	var n, bad int
	p.text, n, bad = appendExposition(p.text[:0], p.raw.Bytes(), p.labels, ts)
	if bad > 0 {
		p.log.Warn("dropped malformed exposition lines", "lines", bad)
	}
	var zb bytes.Buffer
	zb.Grow(len(p.text)/4 + 64)
	p.zw.Reset(&zb)
	p.zw.Write(p.text)
	p.zw.Close()
	p.enqueue(&chunk{ts: ts, samples: n, body: zb.Bytes()})
}

func (p *pusher) enqueue(c *chunk) {
	limit := p.opts.BufferBytes
	dropped := 0
	p.mu.Lock()
	p.seq++
	c.seq = p.seq
	if len(c.body) > limit {
		p.mu.Unlock()
		p.droppedFull.Add(c.samples)
		p.log.Error("one interval is larger than the push buffer: raise Options.BufferBytes", "interval_bytes", len(c.body), "buffer_bytes", limit)
		return
	}
	for p.queued+len(c.body) > limit {
		old := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.queued -= len(old.body)
		dropped += old.samples
	}
	p.queue = append(p.queue, c)
	p.queued += len(c.body)
	p.mu.Unlock()
	if dropped > 0 {
		p.droppedFull.Add(dropped)
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pusher) head() *chunk {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil
	}
	return p.queue[0]
}

// pop removes c if it is still the head (it may have been dropped for
// space while it was being sent).
func (p *pusher) pop(c *chunk) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) > 0 && p.queue[0].seq == c.seq {
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.queued -= len(c.body)
	}
}

// dropAll empties the queue at shutdown and returns the samples lost.
func (p *pusher) dropAll() int {
	p.mu.Lock()
	n := 0
	for _, c := range p.queue {
		n += c.samples
	}
	clear(p.queue)
	p.queue, p.queued = p.queue[:0], 0
	p.mu.Unlock()
	p.droppedStop.Add(n)
	return n
}

func (p *pusher) sendLoop() {
	collected := p.collected
	finishing := false
	var retryAt time.Time
	for {
		if finishing && p.hardCtx.Err() != nil {
			if n := p.dropAll(); n > 0 {
				p.log.Error("collector unreachable at shutdown: samples lost", "samples", n, "flush_timeout", p.opts.FlushTimeout)
			}
			return
		}
		c := p.head()
		if c == nil {
			if finishing {
				return
			}
			select {
			case <-p.wake:
			case <-collected:
				finishing, collected = true, nil
			}
			continue
		}
		if wait := time.Until(retryAt); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-collected:
				finishing, collected = true, nil
			case <-p.hardCtx.Done():
			}
			t.Stop()
			continue
		}
		delay, ok := p.send(c)
		if ok {
			retryAt = time.Time{}
		} else {
			retryAt = time.Now().Add(delay)
		}
	}
}

// send posts c once. ok means c is done with (delivered or rejected);
// otherwise retry after delay.
func (p *pusher) send(c *chunk) (delay time.Duration, ok bool) {
	ctx, cancel := context.WithTimeout(p.hardCtx, p.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.urls[p.cur], bytes.NewReader(c.body))
	if err != nil {
		panic(fmt.Sprintf("BUG: cannot build push request for validated URL: %v", err))
	}
	req.Header.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "telltale-instrument")
	if p.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.opts.Token)
	}
	resp, err := p.opts.Client.Do(req)
	if err != nil {
		return p.retry(c, err.Error(), 0), false
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		p.requestsOK.Inc()
		p.tried = 0
		p.pop(c)
		if p.failures > 0 {
			p.log.Info("push recovered", "failed_attempts", p.failures)
			p.failures = 0
		}
		return 0, true
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		ra, _ := retry.After(resp.Header.Get("Retry-After"), time.Now(), maxRetryAfter)
		return p.retry(c, fmt.Sprintf("status %d: %s", code, strings.TrimSpace(string(msg))), ra), false
	default:
		p.requestsRejected.Inc()
		p.droppedRejected.Add(c.samples)
		p.pop(c)
		p.failures = 0
		text := fmt.Sprintf("status %d: %s", code, strings.TrimSpace(string(msg)))
		if _, seen := p.logged[text]; !seen {
			if len(p.logged) >= maxLoggedRejections {
				clear(p.logged)
			}
			p.logged[text] = struct{}{}
			p.log.Error("collector rejected a push; not retrying it: fix what the collector says (this message is logged once)", "err", text, "samples", c.samples)
		}
		return 0, true
	}
}

// retry counts a failed attempt and returns the wait before the next one:
// the collector's Retry-After if given, else exponential backoff with jitter.
func (p *pusher) retry(c *chunk, why string, retryAfter time.Duration) time.Duration {
	p.requestsRetry.Inc()
	if len(p.urls) > 1 {
		// The next attempt goes to the next replica, at once unless every
		// replica failed since the last success or wait.
		p.cur = (p.cur + 1) % len(p.urls)
		if p.tried++; p.tried < len(p.urls) {
			return 0
		}
		p.tried = 0
	}
	p.failures++
	if p.failures == 1 {
		p.log.Warn("push failed; retrying with backoff", "err", why, "measured_at", time.UnixMilli(c.ts).UTC())
	}
	if retryAfter > 0 {
		return retryAfter
	}
	return retry.Backoff(p.failures, p.opts.RetryMin, p.opts.RetryMax)
}
