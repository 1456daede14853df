package chat

import (
	"context"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/retry"
)

// pacer spaces a target's batched messages: a message at most every
// Every, the first after a quiet spell held back Linger so a burst that
// starts with it goes out with it, and none before a rate-limit answer's
// time has passed. It reads time.Now, so tests run it under
// testing/synctest. Safe for concurrent use.
type pacer struct {
	every, linger time.Duration
	mu            sync.Mutex
	last          time.Time // last message sent
	blocked       time.Time // no message before this (a rate-limit answer)
}

// wait blocks until a message may go, or ctx is done.
func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	at := p.last.Add(p.every)
	if now.After(at) {
		// A quiet spell: let the burst this change may start gather.
		at = now.Add(p.linger)
	}
	if p.blocked.After(at) {
		at = p.blocked
	}
	p.mu.Unlock()
	return retry.Sleep(ctx, at.Sub(now))
}

// sent notes that a message went out now.
func (p *pacer) sent() {
	p.mu.Lock()
	p.last = time.Now()
	p.mu.Unlock()
}

// block holds every message back for d (a rate-limit answer).
func (p *pacer) block(d time.Duration) {
	p.mu.Lock()
	if until := time.Now().Add(d); until.After(p.blocked) {
		p.blocked = until
	}
	p.mu.Unlock()
}
