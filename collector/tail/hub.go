package tail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"
	"github.com/gorilla/websocket"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/samples"
	"github.com/telltale-dev/telltale/samples/promhistogram"
)

// Options configure New. Zero values mean the defaults given.
type Options struct {
	// MaxClients bounds websocket clients at once; more get 503
	// (-tail.max-clients). Default 100.
	MaxClients int
	// MaxSelectors bounds the match[] selectors of one client; more get 400
	// (-tail.max-selectors). Default 10.
	MaxSelectors int
	// QueueSize is how many messages are buffered per client
	// (-tail.queue-size). Default 256.
	QueueSize int
	// MaxSamplesPerMessage splits the matching samples of a large write
	// into messages of at most this many samples; with QueueSize it bounds
	// a client's buffered samples. Default 256.
	MaxSamplesPerMessage int
	// MaxLag disconnects a client whose queue has been full this long while
	// writes kept coming. Default 30s.
	MaxLag time.Duration
	// MaxOverflows disconnects a client after this many consecutive
	// messages were dropped for it. Default 1000.
	MaxOverflows int
	// MaxCachedSeries bounds the match cache of series whose storage
	// reference is 2^22 or more; a full cache is cleared and refilled.
	// (The embedded TSDB numbers series 1, 2, 3 ..., so smaller references
	// are cached in a paged array: 8 bytes per reference, 32 MiB at most.)
	// Default 65536.
	MaxCachedSeries int
	// PingInterval is how often clients are pinged; a client that sends no
	// pong (or anything else) for PingInterval+WriteTimeout is dropped.
	// Default 30s.
	PingInterval time.Duration
	// WriteTimeout bounds writing one message to a client. Default 10s.
	WriteTimeout time.Duration
	// FlushInterval is the least time between two samples messages to a
	// client: samples committed meanwhile go out together in one message,
	// which keeps the syscalls per client bounded when writes come fast. It
	// adds at most this much latency. Default 10ms.
	FlushInterval time.Duration
	// CloseWait is how long the server waits for the client to answer its
	// close frame before it closes the connection. Default 1s.
	CloseWait time.Duration

	// ParseSelector parses one match[] selector; nil means the PromQL
	// parser's ParseMetricSelector with default options.
	ParseSelector func(string) ([]*labels.Matcher, error)
	Logger        *slog.Logger // nil means slog.Default()
	Metrics       *metrics.Set
	// Now is the clock for lag and rate limits; nil means time.Now.
	Now func() time.Time
	// OnSubscribersChange, when set, is called after a client subscribed
	// or left (collector replicas then tell each other which selectors
	// their clients want; see Selectors). It is called with the hub locked:
	// it must not block or call the hub.
	OnSubscribersChange func()
}

func (o *Options) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxClients, 100)
	o.MaxClients = min(o.MaxClients, maxClientsLimit)
	def(&o.MaxSelectors, 10)
	def(&o.QueueSize, 256)
	def(&o.MaxSamplesPerMessage, 256)
	def(&o.MaxOverflows, 1000)
	def(&o.MaxCachedSeries, 65536)
	defDur(&o.MaxLag, 30*time.Second)
	defDur(&o.PingInterval, 30*time.Second)
	defDur(&o.WriteTimeout, 10*time.Second)
	defDur(&o.CloseWait, time.Second)
	defDur(&o.FlushInterval, 10*time.Millisecond)
	if o.ParseSelector == nil {
		o.ParseSelector = parser.NewParser(parser.Options{}).ParseMetricSelector
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.NewSet()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Hub fans committed samples and deploy events out to live-tail clients.
// It is an http.Handler for the websocket endpoint and an ingest.Observer.
// Its methods are safe for concurrent use.
type Hub struct {
	opts     Options
	log      *slog.Logger
	upgrader websocket.Upgrader

	// snap is the set of subscribed clients Observe works with; it is
	// replaced (never changed in place) under mu.
	snap atomic.Pointer[snapshot]
	gen  uint64 // generation of the last snapshot; under mu
	// newRefTable makes the match cache when the first client comes; it
	// is dropped with the last one.
	newRefTable func() *refTable

	scratch sync.Pool // *observeScratch

	mu     sync.Mutex
	all    map[*subscriber]struct{} // registered: Observe sees them
	live   map[*subscriber]struct{} // registered until their connection is closed
	conns  int                      // accepted connections, from slot reservation to the end
	closed bool
	wg     sync.WaitGroup // one per accepted connection

	items sync.Pool // *item

	clients        atomic.Int64
	sentMessages   *metrics.Counter
	sentSamples    *metrics.Counter
	droppedMsgs    *metrics.Counter
	droppedSamples *metrics.Counter
	thinned        *metrics.Counter
	set            *metrics.Set
	counters       sync.Map // metric name -> *metrics.Counter
}

// New returns a hub with no clients.
func New(opts Options) *Hub {
	opts.setDefaults()
	h := &Hub{
		opts: opts,
		log:  opts.Logger.With("component", "tail"),
		all:  map[*subscriber]struct{}{},
		live: map[*subscriber]struct{}{},
		set:  opts.Metrics,
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  16 << 10,
		// ServeHTTP checks the origin itself before the upgrade, with a
		// message that says what to do.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	h.newRefTable = func() *refTable { return newRefTable(denseRefs, opts.MaxCachedSeries) }
	h.scratch.New = func() any { return &observeScratch{} }
	h.items.New = func() any { return &item{samples: make([]queued, 0, opts.MaxSamplesPerMessage)} }
	h.set.NewGauge("telltale_tail_clients", func() float64 { return float64(h.clients.Load()) })
	h.sentMessages = h.set.NewCounter("telltale_tail_messages_sent_total")
	h.sentSamples = h.set.NewCounter("telltale_tail_samples_sent_total")
	h.droppedMsgs = h.set.NewCounter("telltale_tail_dropped_total")
	h.droppedSamples = h.set.NewCounter("telltale_tail_dropped_samples_total")
	h.thinned = h.set.NewCounter("telltale_tail_thinned_samples_total")
	return h
}

func (h *Hub) counter(name string) *metrics.Counter {
	if c, ok := h.counters.Load(name); ok {
		return c.(*metrics.Counter)
	}
	c, _ := h.counters.LoadOrStore(name, h.set.GetOrCreateCounter(name))
	return c.(*metrics.Counter)
}

// Active reports whether any client is subscribed. It is one atomic load,
// so the writer can skip Observe when nobody watches.
func (h *Hub) Active() bool {
	p := h.snap.Load()
	return p != nil && p.n > 0
}

// Observe queues the samples of the committed batch b that match each
// client's selectors; refs[i] is the storage reference of b.Series[i] (0
// means unknown: the series is matched without the cache). It never blocks
// and keeps neither b nor refs.
//
// Which clients want a series is cached by reference for all clients at
// once, so in the steady state a sample costs one table lookup, plus a
// copy of its time and value per client that wants it.
func (h *Hub) Observe(b *samples.Batch, refs []storage.SeriesRef) {
	snap := h.snap.Load()
	if snap == nil || snap.n == 0 {
		return
	}
	sc := h.scratch.Get().(*observeScratch)
	if cap(sc.items) < len(snap.subs) {
		sc.items = make([]*item, len(snap.subs))
	}
	items := sc.items[:len(snap.subs)]
	var now time.Time
	for i := range b.Series {
		sr := &b.Series[i]
		if sr.SamplesStart == sr.SamplesEnd && sr.HistogramsStart == sr.HistogramsEnd {
			continue
		}
		var ref storage.SeriesRef
		if i < len(refs) {
			ref = refs[i]
		}
		var e *matchEntry
		if ref != 0 {
			e = snap.refs.get(ref)
		}
		if e == nil || e.gen != snap.gen {
			e = snap.match(b.SeriesLabels(sr))
			if ref != 0 {
				snap.refs.put(ref, e)
			}
		}
		if len(e.subs) == 0 {
			continue
		}
		if now.IsZero() {
			now = h.opts.Now()
		}
		// Native histograms are copied once for all clients: the batch's
		// slices are reused after Observe returns.
		sc.hists = sc.hists[:0]
		for _, hs := range b.SeriesHistograms(sr) {
			sc.hists = append(sc.hists, copyHistogram(&hs))
		}
		for _, si := range e.subs {
			if snap.subs[si] == nil {
				continue // gone since the entry was made
			}
			it := items[si]
			add := func(q queued) {
				if it == nil {
					it = h.getItem()
					it.time = now.UnixMilli()
				}
				it.samples = append(it.samples, q)
				it.cost += q.cost()
				if it.cost >= h.opts.MaxSamplesPerMessage {
					snap.subs[si].enqueue(it, now)
					it = nil
				}
			}
			for _, smp := range b.SeriesSamples(sr) {
				add(queued{s: e.series, t: smp.T, v: smp.V})
			}
			for _, hq := range sc.hists {
				add(queued{s: e.series, t: hq.t, h: hq.h})
			}
			items[si] = it
		}
	}
	clear(sc.hists) // drop the histograms: the items hold them now
	for si, it := range items {
		if it != nil {
			snap.subs[si].enqueue(it, now)
			items[si] = nil
		}
	}
	h.scratch.Put(sc)
}

// observeScratch holds one Observe call's message being built per client,
// indexed like snapshot.subs.
type observeScratch struct {
	items []*item
	hists []queuedHistogram // the current series' histograms
}

type queuedHistogram struct {
	t int64
	h *histogram.FloatHistogram
}

// copyHistogram copies a native histogram sample out of the batch, as the
// float histogram Prometheus' API renders.
func copyHistogram(hs *samples.Histogram) queuedHistogram {
	ih, fh := promhistogram.ToPrometheus(hs)
	if fh == nil {
		fh = ih.ToFloat(nil)
	}
	return queuedHistogram{t: hs.T, h: fh}
}

// maxClientsLimit is the most clients a hub serves: match entries index
// clients with uint16.
const maxClientsLimit = 1<<16 - 1

// denseRefs is the reference below which the match cache is a paged array.
const denseRefs = 1 << 22

// PublishDeploy sends the deploy event d, any value encoding/json can
// marshal, to every client as a deploy message. It never blocks: a client
// whose event queue is full misses it and is told so in a dropped notice.
func (h *Hub) PublishDeploy(d any) { h.publish(TypeDeploy, d) }

// PublishChange sends a change of any other kind (a switch flip, a note,
// an incident ...), any value encoding/json can marshal, as a change
// message, with PublishDeploy's guarantees; deploys keep their own type.
func (h *Hub) PublishChange(c any) { h.publish(TypeChange, c) }

// publish sends one event message {"type":typ,"time":...,typ:v}.
func (h *Hub) publish(typ string, v any) {
	snap := h.snap.Load()
	if snap == nil || snap.n == 0 {
		return
	}
	raw, err := json.Marshal(v)
	if err != nil {
		h.log.Error("BUG: cannot encode event for the live tail", "type", typ, "err", err)
		return
	}
	msg := make([]byte, 0, len(raw)+64)
	msg = append(msg, `{"type":"`+typ+`","time":`...)
	msg = strconv.AppendInt(msg, h.opts.Now().UnixMilli(), 10)
	msg = append(msg, `,"`+typ+`":`...)
	msg = append(msg, raw...)
	msg = append(msg, '}')
	for _, s := range snap.subs {
		if s == nil {
			continue
		}
		select {
		case s.deploys <- msg:
		default:
			s.pendingMsgs.Add(1)
			h.droppedMsgs.Inc()
		}
	}
}

// ErrShuttingDown is returned for new clients once Close has been called.
var ErrShuttingDown = errors.New("live tail is shutting down")

// reserve takes a connection slot: a client counts from before the upgrade
// until its goroutines ended.
func (h *Hub) reserve() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrShuttingDown
	}
	if h.conns >= h.opts.MaxClients {
		return errTooManyClients
	}
	h.conns++
	h.wg.Add(1)
	return nil
}

var errTooManyClients = errors.New("too many live-tail clients")

func (h *Hub) release() {
	h.mu.Lock()
	h.conns--
	h.mu.Unlock()
	h.wg.Done()
}

// register makes s visible to Observe; it reports false when the hub is
// closing.
func (h *Hub) register(s *subscriber) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.all[s] = struct{}{}
	h.live[s] = struct{}{}
	// A new generation: cached entries do not know s, so they are stale
	// and each series is matched again when it is next written.
	h.gen++
	old := h.snap.Load()
	snap := &snapshot{gen: h.gen, n: len(h.all), subs: make([]*subscriber, 0, len(h.all))}
	snap.noMatch = &matchEntry{gen: h.gen}
	for s := range h.all {
		snap.subs = append(snap.subs, s)
	}
	if old != nil && old.refs != nil {
		snap.refs = old.refs
	} else {
		snap.refs = h.newRefTable()
	}
	h.snap.Store(snap)
	h.clients.Add(1)
	if h.opts.OnSubscribersChange != nil {
		h.opts.OnSubscribersChange()
	}
	return true
}

func (h *Hub) unregister(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.all[s]; !ok {
		return
	}
	delete(h.all, s)
	// Same generation with s's slot emptied: cached entries stay valid.
	// With the last client the cache goes too.
	old := h.snap.Load()
	snap := &snapshot{gen: old.gen, n: len(h.all), noMatch: old.noMatch, subs: slices.Clone(old.subs), refs: old.refs}
	if i := slices.Index(snap.subs, s); i >= 0 {
		snap.subs[i] = nil
	}
	if snap.n == 0 {
		snap.subs, snap.refs = nil, nil
	}
	h.snap.Store(snap)
	h.clients.Add(-1)
	if h.opts.OnSubscribersChange != nil {
		h.opts.OnSubscribersChange()
	}
}

// Selectors returns the match[] selectors of every subscribed client,
// each once, in no particular order.
func (h *Hub) Selectors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for s := range h.all {
		for _, sel := range s.selectors {
			if !seen[sel] {
				seen[sel] = true
				out = append(out, sel)
			}
		}
	}
	return out
}

// Missed tells every client that msgs messages meant for it were lost
// before they reached the hub (another replica's samples dropped on the
// way): each gets a dropped notice, as for its own queue's overflow.
func (h *Hub) Missed(msgs int) {
	snap := h.snap.Load()
	if snap == nil || msgs <= 0 {
		return
	}
	for _, s := range snap.subs {
		if s != nil {
			s.pendingMsgs.Add(int64(msgs))
			h.droppedMsgs.Add(msgs)
		}
	}
}

// forget drops s from the set Close may close hard; its connection is
// closed.
func (h *Hub) forget(s *subscriber) {
	h.mu.Lock()
	delete(h.live, s)
	h.mu.Unlock()
}

// Close sends every client a close frame ("server shutting down"), refuses
// new ones and waits until all client goroutines ended. If ctx ends first,
// the remaining connections are closed hard, and Close still waits for
// their goroutines (which then end at once) and returns ctx's error.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	subs := make([]*subscriber, 0, len(h.all))
	for s := range h.all {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.disconnect("shutdown", CloseShutdown, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	for s := range h.live {
		s.closeConn()
	}
	h.mu.Unlock()
	<-done
	return fmt.Errorf("live-tail clients did not close in time, closed their connections: %w", ctx.Err())
}

// item is one queued samples message for one client.
type item struct {
	time    int64 // commit time, ms
	samples []queued
	cost    int // the samples' total cost (queued.cost)
	// Messages and samples dropped for the client before this item, taken
	// from its pending counters when the item was queued.
	droppedMsgs, droppedSamples int64
}

// queued is one sample of a queued message: a float v or, when h is not
// nil, a native histogram (shared by every client it is queued for, never
// changed).
type queued struct {
	s *series
	t int64
	v float64
	h *histogram.FloatHistogram
}

// queuedSize is the size of a queued float sample in bytes: the unit of
// an item's cost.
const queuedSize = int(unsafe.Sizeof(queued{}))

// cost is what q weighs against Options.MaxSamplesPerMessage: 1 for a
// float sample, and for a native histogram 1 plus its buckets and spans
// in queued-sample units, so a client's queued memory stays bounded by
// QueueSize × MaxSamplesPerMessage samples whatever the histograms' size.
func (q queued) cost() int {
	if q.h == nil {
		return 1
	}
	n := 8*(len(q.h.PositiveBuckets)+len(q.h.NegativeBuckets)+len(q.h.PositiveSpans)+len(q.h.NegativeSpans)+len(q.h.CustomValues)) +
		int(unsafe.Sizeof(*q.h))
	return 1 + n/queuedSize
}

func (h *Hub) getItem() *item { return h.items.Get().(*item) }

func (h *Hub) putItem(it *item) {
	clear(it.samples) // drop the *series references
	it.samples = it.samples[:0]
	it.cost = 0
	it.droppedMsgs, it.droppedSamples = 0, 0
	h.items.Put(it)
}
