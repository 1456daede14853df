package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/telltale-dev/telltale/retry"
)

// Target is where Send posts bodies.
type Target struct {
	// URL is the full endpoint, e.g. http://127.0.0.1:9470/api/v1/write.
	URL    string
	Format Format
	// Client is the HTTP client; nil means one with a keep-alive connection
	// per sender.
	Client *http.Client
	// MaxRetries is how often a body answered with 5xx, 429 or a network
	// error is retried before Send gives up; zero means 20.
	MaxRetries int
}

// SendStats says what a Send did.
type SendStats struct {
	Requests int64
	Samples  int64
	// Retries counts bodies posted again after a 5xx, 429 or network error.
	Retries int64
	Elapsed time.Duration
}

// NewClient returns an HTTP client that keeps one idle connection per
// sender to one host.
func NewClient(senders int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(senders, 1)
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// Send posts every stream's bodies in order, the streams concurrently (one
// goroutine per stream), and returns when all are delivered or the first
// fails. A body answered 2xx counts as delivered; 5xx, 429 and network errors
// are retried with backoff (honouring Retry-After); any other status fails
// the Send with the receiver's message.
func Send(ctx context.Context, t Target, streams []Stream) (SendStats, error) {
	if t.Client == nil {
		t.Client = NewClient(len(streams))
	}
	if t.MaxRetries <= 0 {
		t.MaxRetries = 20
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var st SendStats
	var requests, nsamples, retries atomic.Int64
	var once sync.Once
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for _, stream := range streams {
		wg.Go(func() {
			for _, b := range stream {
				n, err := t.post(ctx, b)
				retries.Add(int64(n))
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				requests.Add(1)
				nsamples.Add(int64(b.Samples))
			}
		})
	}
	wg.Wait()
	st.Elapsed = time.Since(start)
	st.Requests, st.Samples, st.Retries = requests.Load(), nsamples.Load(), retries.Load()
	return st, firstErr
}

// post sends one body, retrying transient failures; it returns the number of
// retries.
func (t Target) post(ctx context.Context, b Body) (int, error) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		wait, err := t.postOnce(ctx, b)
		if err == nil {
			return attempt, nil
		}
		var perm *permanentError
		if errors.As(err, &perm) || ctx.Err() != nil {
			return attempt, err
		}
		if attempt >= t.MaxRetries {
			return attempt, fmt.Errorf("giving up after %d retries: %w", attempt, err)
		}
		if wait <= 0 {
			wait = backoff
			backoff = min(backoff*2, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return attempt, ctx.Err()
		case <-time.After(wait):
		}
	}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// postOnce posts b once. It returns how long the receiver asked to wait
// (Retry-After) with a transient error, or a *permanentError.
func (t Target) postOnce(ctx context.Context, b Body) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(b.Data))
	if err != nil {
		return 0, &permanentError{fmt.Errorf("bad target URL %q: %w", t.URL, err)}
	}
	switch t.Format {
	case RemoteWrite:
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	case Text:
		req.Header.Set("Content-Type", "text/plain; version=0.0.4")
	}
	resp, err := t.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", t.URL, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5:
		wait, _ := retry.After(resp.Header.Get("Retry-After"), time.Now(), 5*time.Second)
		return wait, fmt.Errorf("POST %s: %s: %s", t.URL, resp.Status, bytes.TrimSpace(msg))
	}
	return 0, &permanentError{fmt.Errorf("POST %s refused a %d-sample body: %s: %s", t.URL, b.Samples, resp.Status, bytes.TrimSpace(msg))}
}
