// Package fanout connects the replicas of a scaled-out collector over NATS
// (an embedded server or an external one), so that what one replica sees
// the others learn:
//
//   - Live tail. A tail client connected to any replica sees the samples
//     every replica ingests and every change recorded on any replica. Each
//     replica announces the selectors its tail clients subscribed with
//     (when they change and every InterestInterval; an announcement
//     expires after three intervals), and publishes of each committed
//     write only the series that some replica's clients want. What the
//     others publish goes into this replica's tail hub, where each client's
//     bounded queue, its "dropped" notices and its disconnection rules apply
//     as for local writes. Publishing never blocks ingest: messages wait in
//     a bounded queue and are dropped, counted, when it is full.
//   - Query result cache. In forward mode a sample that reaches the engine
//     late (older than the cache's freshness) through one replica must drop
//     the cached steps it changes on every replica; each replica publishes
//     such late windows (metric name, oldest and newest time) and applies
//     the others'.
//
// Core NATS delivers at most once. What is lost on the way is counted and
// handled: tail clients get a "dropped" notice (Hub.Missed); a replica that
// may have missed a late-write notice (a slow subscription, a lost
// connection) clears its result cache, so it never serves stale steps.
//
// Messages carry remote write 1.0 bodies (snappy) for samples, JSON for
// interest and changes; a replica never receives its own (NoEcho).
package fanout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/golang/snappy"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// Tail is what the bus needs from the live-tail hub (collector/tail.Hub).
type Tail interface {
	Observe(b *samples.Batch, refs []promstorage.SeriesRef)
	PublishDeploy(d any)
	PublishChange(c any)
	Selectors() []string
	Missed(msgs int)
}

// Embed runs a NATS server inside the collector.
type Embed struct {
	// Listen is the client address, e.g. 127.0.0.1:4222.
	Listen string
	// ClusterListen is the address other replicas' embedded servers route
	// to, e.g. 0.0.0.0:6222; empty runs a single server.
	ClusterListen string
	// Routes are the other replicas' cluster addresses
	// (nats-route://host:6222).
	Routes []string
}

// Options configure New.
type Options struct {
	// URL is the NATS server to use, e.g. nats://nats:4222; empty with
	// Embed means the embedded server.
	URL   string
	Embed *Embed
	// Subject starts every subject; replicas of one deployment share it.
	// Default "telltale".
	Subject string
	// Replica names this replica in logs and announcements. Default the
	// host name and process id.
	Replica string
	// ParseSelector parses a tail selector another replica announces.
	ParseSelector func(string) ([]*labels.Matcher, error)
	// Tail receives the others' samples and changes; nil means no tail.
	Tail Tail
	// Late applies the others' late-write windows to the result cache,
	// and ClearCache empties it when notices may have been lost; nil
	// means no cache.
	Late       func(b *samples.Batch)
	ClearCache func()
	// InterestInterval is how often the tail selectors are announced.
	// Default 10s.
	InterestInterval time.Duration
	// QueueSize bounds the messages waiting to be published. Default 4096.
	QueueSize int
	// PendingMessages bounds what a subscription buffers before NATS drops
	// (a slow consumer). Default 65536.
	PendingMessages int
	Logger          *slog.Logger // nil means slog.Default()
	Metrics         *metrics.Set
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Bus is one replica's connection to the others. It is an ingest.Observer
// (the samples it publishes) and is safe for concurrent use.
type Bus struct {
	opts   Options
	log    *slog.Logger
	srv    *server.Server // nil unless embedded
	nc     *nats.Conn
	subs   []*nats.Subscription
	out    chan outMsg
	wake   chan struct{} // the local selectors changed
	active atomic.Bool   // some other replica wants samples

	mu       sync.Mutex
	interest map[string]remoteInterest // by replica
	matchers atomic.Pointer[matcherSet]
	gen      uint64

	refMu sync.Mutex
	refs  map[promstorage.SeriesRef]uint64 // gen<<1 | wanted

	lateSub     *nats.Subscription
	lastDropped map[*nats.Subscription]int // under mu

	published, received, dropped map[string]*metrics.Counter
	reconnects                   *metrics.Counter
}

type outMsg struct {
	subject string
	header  nats.Header
	data    []byte
	kind    string
}

type remoteInterest struct {
	selectors []string
	until     time.Time
}

// matcherSet is the union of every other replica's selectors.
type matcherSet struct {
	gen  uint64
	sels [][]*labels.Matcher
}

// Message kinds, the values of the kind label of the metrics.
const (
	kindSamples  = "samples"
	kindChange   = "change"
	kindLate     = "late"
	kindInterest = "interest"
)

func (b *Bus) subject(s string) string { return b.opts.Subject + "." + s }

// New starts the embedded server (when configured), connects and
// subscribes. Call Run, then Close.
func New(opts Options) (*Bus, error) {
	if opts.URL == "" && opts.Embed == nil {
		return nil, errors.New("NATS: set -nats.url or -nats.listen (embedded server)")
	}
	if opts.Subject == "" {
		opts.Subject = "telltale"
	}
	if opts.Replica == "" {
		h, _ := os.Hostname()
		opts.Replica = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if opts.InterestInterval <= 0 {
		opts.InterestInterval = 10 * time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.PendingMessages <= 0 {
		opts.PendingMessages = 65536
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Bus{opts: opts, log: opts.Logger.With("component", "fanout", "replica", opts.Replica),
		out: make(chan outMsg, opts.QueueSize), wake: make(chan struct{}, 1),
		interest: map[string]remoteInterest{}, refs: map[promstorage.SeriesRef]uint64{}, lastDropped: map[*nats.Subscription]int{},
		published: map[string]*metrics.Counter{}, received: map[string]*metrics.Counter{}, dropped: map[string]*metrics.Counter{}}
	b.matchers.Store(&matcherSet{})
	set := opts.Metrics
	for _, k := range []string{kindSamples, kindChange, kindLate, kindInterest} {
		b.published[k] = set.NewCounter(`telltale_fanout_published_total{kind="` + k + `"}`)
		b.received[k] = set.NewCounter(`telltale_fanout_received_total{kind="` + k + `"}`)
	}
	for _, r := range []string{"queue_full", "slow_consumer", "undecodable"} {
		b.dropped[r] = set.NewCounter(`telltale_fanout_dropped_total{reason="` + r + `"}`)
	}
	b.reconnects = set.NewCounter("telltale_fanout_reconnects_total")
	set.NewGauge("telltale_fanout_remote_replicas", func() float64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		return float64(len(b.interest))
	})
	set.NewGauge("telltale_fanout_connected", func() float64 {
		if b.nc != nil && b.nc.IsConnected() {
			return 1
		}
		return 0
	})

	url := opts.URL
	if opts.Embed != nil {
		srv, err := startServer(opts.Embed)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		if url == "" {
			url = srv.ClientURL()
		}
	}
	nc, err := nats.Connect(url, nats.Name("telltale-collector "+opts.Replica), nats.NoEcho(),
		nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond), nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("lost the NATS connection; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			// Notices sent meanwhile are lost: the cache may be stale.
			b.reconnects.Inc()
			b.clearCache("reconnected to NATS")
			b.askInterest()
		}),
		nats.ErrorHandler(b.asyncError))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("cannot connect to NATS at %s: %w", url, err)
	}
	b.nc = nc
	for _, s := range []struct {
		subj string
		fn   nats.MsgHandler
	}{
		{b.subject("tail.samples"), b.onSamples},
		{b.subject("tail.changes"), b.onChange},
		{b.subject("tail.interest"), b.onInterest},
		{b.subject("tail.interest.request"), func(*nats.Msg) { b.signal() }},
		{b.subject("cache.late"), b.onLate},
	} {
		sub, err := nc.Subscribe(s.subj, s.fn)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("cannot subscribe to %s: %w", s.subj, err)
		}
		_ = sub.SetPendingLimits(opts.PendingMessages, 256<<20)
		b.subs = append(b.subs, sub)
		if s.subj == b.subject("cache.late") {
			b.lateSub = sub
		}
	}
	b.askInterest()
	return b, nil
}

func startServer(e *Embed) (*server.Server, error) {
	host, port, err := splitHostPort(e.Listen)
	if err != nil {
		return nil, fmt.Errorf("-nats.listen=%q: %w", e.Listen, err)
	}
	o := &server.Options{Host: host, Port: port, NoLog: true, NoSigs: true, ServerName: fmt.Sprintf("telltale-%s-%d", host, port)}
	if e.ClusterListen != "" {
		ch, cp, err := splitHostPort(e.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("-nats.cluster-listen=%q: %w", e.ClusterListen, err)
		}
		o.Cluster = server.ClusterOpts{Name: "telltale", Host: ch, Port: cp}
		o.Routes = server.RoutesFromStr(strings.Join(e.Routes, ","))
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded NATS server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("the embedded NATS server did not start listening on %s in 10s: is the port taken?", e.Listen)
	}
	return srv, nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, errors.New("want host:port")
	}
	var port int
	if _, err := fmt.Sscan(addr[i+1:], &port); err != nil || port < 0 || port > 65535 {
		return "", 0, errors.New("bad port")
	}
	return addr[:i], port, nil
}

// ClientURL is the embedded server's client URL, "" without one.
func (b *Bus) ClientURL() string {
	if b.srv == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// Run publishes queued messages and announces the local selectors until
// ctx is done.
func (b *Bus) Run(ctx context.Context) error {
	tick := time.NewTicker(b.opts.InterestInterval)
	defer tick.Stop()
	b.announce()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-b.out:
			msg := &nats.Msg{Subject: m.subject, Header: m.header, Data: m.data}
			if err := b.nc.PublishMsg(msg); err != nil {
				b.dropped["queue_full"].Inc()
				continue
			}
			b.published[m.kind].Inc()
		case <-b.wake:
			b.announce()
		case <-tick.C:
			b.announce()
			b.expire()
		}
	}
}

// Close unsubscribes, disconnects and stops the embedded server.
func (b *Bus) Close() error {
	if b.nc != nil {
		_ = b.nc.Drain()
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	return nil
}

// SubscribersChanged is the tail hub's OnSubscribersChange: the local
// selectors are announced soon.
func (b *Bus) SubscribersChanged() { b.signal() }

func (b *Bus) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Bus) askInterest() {
	if b.nc != nil {
		_ = b.nc.Publish(b.subject("tail.interest.request"), nil)
	}
}

type interestMsg struct {
	Replica   string   `json:"replica"`
	Selectors []string `json:"selectors"`
	// TTL is how long the announcement holds, in ms.
	TTL int64 `json:"ttl_ms"`
}

func (b *Bus) announce() {
	var sels []string
	if b.opts.Tail != nil {
		sels = b.opts.Tail.Selectors()
	}
	data, _ := json.Marshal(interestMsg{Replica: b.opts.Replica, Selectors: sels, TTL: (3 * b.opts.InterestInterval).Milliseconds()})
	if err := b.nc.Publish(b.subject("tail.interest"), data); err == nil {
		b.published[kindInterest].Inc()
	}
}

func (b *Bus) onInterest(m *nats.Msg) {
	b.received[kindInterest].Inc()
	var im interestMsg
	if err := json.Unmarshal(m.Data, &im); err != nil || im.Replica == "" {
		b.dropped["undecodable"].Inc()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(im.Selectors) == 0 {
		delete(b.interest, im.Replica)
	} else {
		b.interest[im.Replica] = remoteInterest{selectors: im.Selectors, until: b.opts.Now().Add(time.Duration(im.TTL) * time.Millisecond)}
	}
	b.rebuild()
}

// expire forgets announcements not renewed in time (a replica that died).
func (b *Bus) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.opts.Now()
	changed := false
	for r, in := range b.interest {
		if now.After(in.until) {
			delete(b.interest, r)
			changed = true
		}
	}
	if changed {
		b.rebuild()
	}
}

// rebuild makes the union of the remote selectors; b.mu is held.
func (b *Bus) rebuild() {
	b.gen++
	ms := &matcherSet{gen: b.gen}
	seen := map[string]bool{}
	for _, in := range b.interest {
		for _, s := range in.selectors {
			if seen[s] {
				continue
			}
			seen[s] = true
			m, err := b.opts.ParseSelector(s)
			if err != nil {
				b.log.Warn("another replica announced a selector that does not parse; ignored", "selector", s, "err", err)
				continue
			}
			ms.sels = append(ms.sels, m)
		}
	}
	b.matchers.Store(ms)
	b.active.Store(len(ms.sels) > 0)
}

// Active reports whether some other replica's tail clients want samples.
func (b *Bus) Active() bool { return b.active.Load() }

// Observe publishes the series of a committed write that some other
// replica's tail clients want. It never blocks.
func (b *Bus) Observe(batch *samples.Batch, refs []promstorage.SeriesRef) {
	ms := b.matchers.Load()
	if len(ms.sels) == 0 {
		return
	}
	var out samples.Batch
	for i := range batch.Series {
		s := &batch.Series[i]
		var ref promstorage.SeriesRef
		if i < len(refs) {
			ref = refs[i]
		}
		if !b.wanted(ms, ref, batch.SeriesLabels(s)) {
			continue
		}
		out.StartSeries(nil)
		for _, l := range batch.SeriesLabels(s) {
			out.AddLabel(l.Name, l.Value)
		}
		for _, smp := range batch.SeriesSamples(s) {
			out.AddSample(smp.T, smp.V)
		}
		// Native histograms too (remote write 1.0 carries them); out
		// aliases their slices only until AppendV1 below has encoded them.
		for _, h := range batch.SeriesHistograms(s) {
			out.AddHistogram(h)
		}
	}
	if len(out.Series) == 0 {
		return
	}
	b.enqueue(outMsg{subject: b.subject("tail.samples"), kind: kindSamples, data: snappy.Encode(nil, remotewrite.AppendV1(nil, &out))})
}

// wanted reports whether ls matches a remote selector, cached by ref.
func (b *Bus) wanted(ms *matcherSet, ref promstorage.SeriesRef, ls []samples.Label) bool {
	if ref != 0 {
		b.refMu.Lock()
		v, ok := b.refs[ref]
		b.refMu.Unlock()
		if ok && v>>1 == ms.gen {
			return v&1 == 1
		}
	}
	want := false
	for _, sel := range ms.sels {
		if matches(sel, ls) {
			want = true
			break
		}
	}
	if ref != 0 {
		v := ms.gen << 1
		if want {
			v |= 1
		}
		b.refMu.Lock()
		if len(b.refs) >= 1<<20 {
			clear(b.refs)
		}
		b.refs[ref] = v
		b.refMu.Unlock()
	}
	return want
}

func matches(sel []*labels.Matcher, ls []samples.Label) bool {
	for _, m := range sel {
		v := ""
		for _, l := range ls {
			if l.Name == m.Name {
				v = l.Value
				break
			}
		}
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

func (b *Bus) enqueue(m outMsg) {
	select {
	case b.out <- m:
	default:
		b.dropped["queue_full"].Inc()
	}
}

// PublishChange tells the other replicas' tail clients about a change
// recorded here: deploy says whether it is a deploy (a deploy message)
// or another kind (a change message); v is the change, as JSON.
func (b *Bus) PublishChange(deploy bool, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		b.log.Error("BUG: cannot encode a change for the other replicas", "err", err)
		return
	}
	kind := "change"
	if deploy {
		kind = "deploy"
	}
	b.enqueue(outMsg{subject: b.subject("tail.changes"), kind: kindChange, header: nats.Header{"Kind": []string{kind}}, data: data})
}

// PublishLate tells the other replicas about samples that reached the
// engine late through this one: per metric name the oldest and newest
// time, which is all their caches need.
func (b *Bus) PublishLate(batch *samples.Batch) {
	type window struct{ from, to int64 }
	byName := map[string]window{}
	for i := range batch.Series {
		s := &batch.Series[i]
		w, ok := byName[batch.Name(s)]
		if !ok {
			w = window{from: 1<<63 - 1, to: -1 << 63}
		}
		for _, smp := range batch.SeriesSamples(s) {
			w.from, w.to = min(w.from, smp.T), max(w.to, smp.T)
		}
		for _, h := range batch.SeriesHistograms(s) {
			w.from, w.to = min(w.from, h.T), max(w.to, h.T)
		}
		if w.to >= w.from {
			byName[batch.Name(s)] = w
		}
	}
	if len(byName) == 0 {
		return
	}
	var out samples.Batch
	for name, w := range byName {
		out.StartSeries(nil)
		out.AddLabel("__name__", name)
		out.AddSample(w.from, 0)
		if w.to != w.from {
			out.AddSample(w.to, 0)
		}
	}
	b.enqueue(outMsg{subject: b.subject("cache.late"), kind: kindLate, data: snappy.Encode(nil, remotewrite.AppendV1(nil, &out))})
}

// decode reads a samples message into a batch valid while raw is.
func decode(data []byte, dst *samples.Batch) error {
	raw, err := snappy.Decode(nil, data)
	if err != nil {
		return err
	}
	_, err = remotewrite.DecodeV1(raw, dst)
	return err
}

func (b *Bus) onSamples(m *nats.Msg) {
	b.received[kindSamples].Inc()
	if b.opts.Tail == nil {
		return
	}
	var batch samples.Batch
	if err := decode(m.Data, &batch); err != nil {
		b.dropped["undecodable"].Inc()
		return
	}
	b.opts.Tail.Observe(&batch, nil)
}

func (b *Bus) onChange(m *nats.Msg) {
	b.received[kindChange].Inc()
	if b.opts.Tail == nil {
		return
	}
	if !json.Valid(m.Data) {
		b.dropped["undecodable"].Inc()
		return
	}
	raw := json.RawMessage(m.Data)
	if m.Header.Get("Kind") == "deploy" {
		b.opts.Tail.PublishDeploy(raw)
	} else {
		b.opts.Tail.PublishChange(raw)
	}
}

func (b *Bus) onLate(m *nats.Msg) {
	b.received[kindLate].Inc()
	if b.opts.Late == nil {
		return
	}
	var batch samples.Batch
	if err := decode(m.Data, &batch); err != nil {
		b.dropped["undecodable"].Inc()
		b.clearCache("an undecodable late-write notice")
		return
	}
	b.opts.Late(&batch)
}

// asyncError handles NATS' asynchronous errors: a slow consumer means
// messages were dropped.
func (b *Bus) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if !errors.Is(err, nats.ErrSlowConsumer) || sub == nil {
		b.log.Warn("NATS error", "err", err)
		return
	}
	total, _ := sub.Dropped()
	b.mu.Lock()
	n := max(total-b.lastDropped[sub], 1)
	b.lastDropped[sub] = total
	b.mu.Unlock()
	b.dropped["slow_consumer"].Add(n)
	switch {
	case sub == b.lateSub:
		b.clearCache("late-write notices were dropped (slow consumer)")
	case sub.Subject == b.subject("tail.samples") && b.opts.Tail != nil:
		b.opts.Tail.Missed(n)
	}
}

func (b *Bus) clearCache(why string) {
	if b.opts.ClearCache != nil {
		b.opts.ClearCache()
		b.log.Info("cleared the query result cache: it may have missed late writes of other replicas", "why", why)
	}
}
