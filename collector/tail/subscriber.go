package tail

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/jsonutil"

	"github.com/telltale-dev/telltale/samples"
)

// subscriber is one websocket client: its selectors and its bounded
// queues. enqueue runs on ingest goroutines; writeLoop and readLoop on the
// client's own.
type subscriber struct {
	h         *Hub
	selectors []string
	matchers  [][]*labels.Matcher
	maxRate   float64 // samples/s; 0 means unlimited

	queue   chan *item  // samples messages
	deploys chan []byte // encoded deploy messages, shared by all clients

	mu        sync.Mutex // guards the fields below
	tokens    float64
	tokensAt  time.Time
	fullSince time.Time // when the queue was first found full; zero when not full
	overflows int       // consecutive dropped messages

	// Dropped and thinned counts not yet reported to the client.
	pendingMsgs, pendingSamples atomic.Int64
	pendingThinned              atomic.Int64

	kicked    atomic.Bool
	kickOnce  sync.Once
	kick      chan struct{} // closed by disconnect
	reason    string        // set before kick is closed
	closeCode int
	closeText string

	connMu sync.Mutex
	conn   *websocket.Conn
}

func (h *Hub) newSubscriber(selectors []string, matchers [][]*labels.Matcher, maxRate float64) *subscriber {
	s := &subscriber{
		h:         h,
		selectors: selectors,
		matchers:  matchers,
		maxRate:   maxRate,
		queue:     make(chan *item, h.opts.QueueSize),
		deploys:   make(chan []byte, 16),
		kick:      make(chan struct{}),
	}
	if maxRate > 0 {
		s.tokens = s.burst()
		s.tokensAt = h.opts.Now()
	}
	return s
}

// burst is the token bucket's size: one second's worth, at least 1.
func (s *subscriber) burst() float64 { return max(s.maxRate, 1) }

// take takes a token from the bucket, refilled at maxRate per second.
func (s *subscriber) take(now time.Time) bool {
	if d := now.Sub(s.tokensAt); d > 0 {
		s.tokens = min(s.burst(), s.tokens+d.Seconds()*s.maxRate)
		s.tokensAt = now
	}
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// enqueue queues it, thinned to max_rate, or, when the queue is full,
// drops it, counts it for the next dropped notice and disconnects s if it
// stays behind. It never blocks.
func (s *subscriber) enqueue(it *item, now time.Time) {
	h := s.h
	if s.kicked.Load() {
		h.putItem(it)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxRate > 0 {
		n := 0
		for n < len(it.samples) && s.take(now) {
			n++
		}
		if thinned := len(it.samples) - n; thinned > 0 {
			s.pendingThinned.Add(int64(thinned))
			h.thinned.Add(thinned)
			clear(it.samples[n:])
			it.samples = it.samples[:n]
		}
		if n == 0 {
			h.putItem(it)
			return
		}
	}
	it.droppedMsgs = s.pendingMsgs.Swap(0)
	it.droppedSamples = s.pendingSamples.Swap(0)
	select {
	case s.queue <- it:
		s.fullSince = time.Time{}
		s.overflows = 0
		return
	default:
	}
	n := int64(len(it.samples))
	s.pendingMsgs.Add(it.droppedMsgs + 1)
	s.pendingSamples.Add(it.droppedSamples + n)
	h.droppedMsgs.Inc()
	h.droppedSamples.Add(int(n))
	h.putItem(it)
	s.overflows++
	if s.fullSince.IsZero() {
		s.fullSince = now
	}
	switch lag := now.Sub(s.fullSince); {
	case lag > h.opts.MaxLag:
		s.disconnect("slow_client", CloseSlowClient,
			fmt.Sprintf("too slow: queue full for %s; read faster, narrow match[] or set max_rate", lag.Round(time.Second)))
	case s.overflows >= h.opts.MaxOverflows:
		s.disconnect("slow_client", CloseSlowClient,
			fmt.Sprintf("too slow: %d messages dropped in a row; read faster, narrow match[] or set max_rate", s.overflows))
	}
}

// disconnect asks the write loop to close the connection with code and
// text; the first call wins. reason labels telltale_tail_disconnects_total.
func (s *subscriber) disconnect(reason string, code int, text string) {
	s.kickOnce.Do(func() {
		s.reason, s.closeCode, s.closeText = reason, code, text
		s.kicked.Store(true)
		close(s.kick)
	})
}

func (s *subscriber) setConn(c *websocket.Conn) {
	s.connMu.Lock()
	s.conn = c
	s.connMu.Unlock()
}

// closeConn closes the connection hard, ending any blocked read or write.
func (s *subscriber) closeConn() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// serve runs the connection until s is disconnected: it writes queued
// messages, pings and notices; a second goroutine reads (pongs, close
// frames). It returns when both ended and the connection is closed.
func (s *subscriber) serve(conn *websocket.Conn) {
	h := s.h
	s.setConn(conn)
	pongWait := h.opts.PingInterval + h.opts.WriteTimeout
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.readLoop(conn, pongWait)
	}()
	writeOK := s.writeLoop(conn)
	h.unregister(s)
	if writeOK {
		msg := websocket.FormatCloseMessage(s.closeCode, truncate(s.closeText, 123))
		if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(h.opts.WriteTimeout)); err == nil {
			// Give the client a moment to answer, so it reads our reason
			// before the connection goes away.
			t := time.NewTimer(h.opts.CloseWait)
			select {
			case <-readDone:
			case <-t.C:
			}
			t.Stop()
		}
	}
	_ = conn.Close()
	<-readDone
	h.forget(s)
	h.counter(`telltale_tail_disconnects_total{reason="` + s.reason + `"}`).Inc()
	h.log.Debug("live-tail client disconnected", "reason", s.reason, "remote", conn.RemoteAddr().String())
}

// readLoop reads until the connection fails, handling pongs and close
// frames; client messages are ignored.
func (s *subscriber) readLoop(conn *websocket.Conn, pongWait time.Duration) {
	conn.SetReadLimit(4096)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	for {
		_, _, err := conn.NextReader()
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				s.disconnect("client_message_too_large", websocket.CloseMessageTooBig, "client messages are limited to 4096 bytes")
			case errors.As(err, &ne) && ne.Timeout():
				s.disconnect("ping_timeout", websocket.CloseGoingAway, "no pong within "+pongWait.String())
			default:
				s.disconnect("client_closed", websocket.CloseNormalClosure, "")
			}
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	}
}

// writeLoop writes the subscribed message, then queued messages, notices
// and pings until s is disconnected or a write fails. It reports whether the
// connection can still take a close frame.
func (s *subscriber) writeLoop(conn *websocket.Conn) bool {
	h := s.h
	var buf []byte
	write := func(data []byte, nSamples int) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout))
		if err := conn.WriteMessage(websocket.TextMessage, data); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.disconnect("write_timeout", websocket.CloseGoingAway, "write timed out")
			} else {
				s.disconnect("write_error", websocket.CloseGoingAway, "write failed")
			}
			return false
		}
		h.sentMessages.Inc()
		if nSamples > 0 {
			h.sentSamples.Add(nSamples)
		}
		return true
	}
	sub, _ := json.Marshal(Message{
		Type: TypeSubscribed, Time: h.opts.Now().UnixMilli(),
		Selectors: s.selectors, MaxRate: s.maxRate,
		QueueSize: h.opts.QueueSize, MaxSamplesPerMessage: h.opts.MaxSamplesPerMessage,
	})
	if !write(sub, 0) {
		return false
	}
	var lastFlush time.Time
	flushTimer := time.NewTimer(time.Hour)
	flushTimer.Stop()
	defer flushTimer.Stop()
	ping := time.NewTicker(h.opts.PingInterval)
	defer ping.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.kick:
			return true
		default:
		}
		select {
		case <-s.kick:
			return true
		case msg := <-s.deploys:
			if !write(msg, 0) {
				return false
			}
		case it := <-s.queue:
			// At most one samples message per FlushInterval: when writes
			// come faster, wait and send what queued up meanwhile in one
			// message, so a busy collector makes few syscalls per client.
			if wait := time.Until(lastFlush.Add(h.opts.FlushInterval)); wait > 0 {
				flushTimer.Reset(wait)
				select {
				case <-s.kick:
					h.putItem(it)
					return true
				case <-flushTimer.C:
				}
			}
			for it != nil {
				if it.droppedMsgs > 0 {
					buf = appendDroppedNotice(buf[:0], h.opts.Now().UnixMilli(), it.droppedMsgs, it.droppedSamples)
					if !write(buf, 0) {
						h.putItem(it)
						return false
					}
				}
				var n int
				buf, n, it = s.appendQueued(buf[:0], it)
				if !write(buf, n) {
					if it != nil {
						h.putItem(it)
					}
					return false
				}
			}
			lastFlush = time.Now()
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.opts.WriteTimeout)); err != nil {
				s.disconnect("write_error", websocket.CloseGoingAway, "ping failed")
				return false
			}
		case <-tick.C:
			if len(s.queue) == 0 {
				if msgs := s.pendingMsgs.Swap(0); msgs > 0 {
					buf = appendDroppedNotice(buf[:0], h.opts.Now().UnixMilli(), msgs, s.pendingSamples.Swap(0))
					if !write(buf, 0) {
						return false
					}
				}
			}
			if n := s.pendingThinned.Swap(0); n > 0 {
				buf = appendThinnedNotice(buf[:0], h.opts.Now().UnixMilli(), n, s.maxRate)
				if !write(buf, 0) {
					return false
				}
			}
		}
		if cap(buf) > 4<<20 {
			buf = nil // do not keep a huge buffer for a rare huge message
		}
	}
}

// maxMergedBytes bounds a samples message merged from several queued
// items.
const maxMergedBytes = 256 << 10

// appendQueued appends to dst one samples message with the samples of it
// and of the items queued after it, until the message is maxMergedBytes
// long, the queue is empty, or an item follows a gap (its dropped notice
// must come first). It returns the message, its sample count and that
// next item, or nil. The items written are returned to the pool.
func (s *subscriber) appendQueued(dst []byte, it *item) ([]byte, int, *item) {
	dst = append(dst, `{"type":"samples","samples":[`...)
	n := 0
	var last int64
	for {
		dst = appendSampleEntries(dst, it, n == 0)
		n += len(it.samples)
		last = it.time
		s.h.putItem(it)
		if len(dst) >= maxMergedBytes {
			it = nil
			break
		}
		select {
		case it = <-s.queue:
		default:
			it = nil
		}
		if it == nil || it.droppedMsgs > 0 {
			break
		}
	}
	dst = append(dst, `],"time":`...)
	dst = strconv.AppendInt(dst, last, 10)
	return append(dst, '}'), n, it
}

// appendSamples appends the samples message of it alone to dst.
func appendSamples(dst []byte, it *item) []byte {
	dst = append(dst, `{"type":"samples","samples":[`...)
	dst = appendSampleEntries(dst, it, true)
	dst = append(dst, `],"time":`...)
	dst = strconv.AppendInt(dst, it.time, 10)
	return append(dst, '}')
}

// appendSampleEntries appends the samples of it as JSON array elements,
// with a leading comma unless first.
func appendSampleEntries(dst []byte, it *item, first bool) []byte {
	for i, q := range it.samples {
		if i > 0 || !first {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"labels":`...)
		dst = append(dst, q.s.labelsJSON()...)
		dst = append(dst, `,"t":`...)
		dst = strconv.AppendInt(dst, q.t, 10)
		if q.h != nil {
			dst = append(dst, `,"h":`...)
			dst = appendHistogram(dst, q.h)
		} else {
			dst = append(dst, `,"v":`...)
			dst = appendValue(dst, q.v)
		}
		dst = append(dst, '}')
	}
	return dst
}

// appendHistogram appends h as Prometheus' HTTP API renders a histogram
// value: {"count":"..","sum":"..","buckets":[[boundaries,"lower","upper","count"],...]}
// with empty buckets left out.
func appendHistogram(dst []byte, h *histogram.FloatHistogram) []byte {
	st := jsoniter.ConfigCompatibleWithStandardLibrary.BorrowStream(nil)
	defer jsoniter.ConfigCompatibleWithStandardLibrary.ReturnStream(st)
	st.SetBuffer(dst)
	jsonutil.MarshalHistogram(h, st)
	dst = st.Buffer()
	st.SetBuffer(nil) // the pooled stream must not keep dst
	return dst
}

func labelsJSON(ls []samples.Label) []byte {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	b, err := json.Marshal(m) // sorts the keys
	if err != nil {
		panic("BUG: cannot encode labels: " + err.Error())
	}
	return b
}

func appendDroppedNotice(dst []byte, now, msgs, smpls int64) []byte {
	b, _ := json.Marshal(Message{
		Type: TypeNotice, Time: now, Notice: NoticeDropped, DroppedMessages: msgs, DroppedSamples: smpls,
		Text: fmt.Sprintf("this client fell behind: %d messages with %d samples were not sent; read faster, narrow match[] or set max_rate", msgs, smpls),
	})
	return append(dst, b...)
}

func appendThinnedNotice(dst []byte, now, n int64, rate float64) []byte {
	b, _ := json.Marshal(Message{
		Type: TypeNotice, Time: now, Notice: NoticeThinned, ThinnedSamples: n,
		Text: fmt.Sprintf("max_rate=%g held back %d samples; raise max_rate or narrow match[] to see them all", rate, n),
	})
	return append(dst, b...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
