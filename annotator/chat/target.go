package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
)

// Fields a change recorded from chat carries, so its notification does
// not echo into the channel it came from.
const (
	FieldNetwork = "chat_network"
	FieldChannel = "chat_channel"
)

// target delivers the change events of the outbox to one network: a
// changelog.BatchTarget.
type target struct {
	s    *Service
	a    Attached
	lim  Limits
	pace *pacer
	mu   sync.Mutex
	// sent remembers, per outbox entry, the channels a partly failed
	// batch already reached, so a retry does not post there twice. Lost
	// on restart (then the retry may repeat them).
	sent map[int64]map[string]bool
}

// maxRemembered bounds the entries sent remembers.
const maxRemembered = 10_000

func (t *target) Name() string { return "chat:" + t.a.Config.Name }

func (t *target) Wait(ctx context.Context) error { return t.pace.wait(ctx) }

func (t *target) Deliver(ctx context.Context, e changelog.Entry, c changes.Change) error {
	return t.DeliverBatch(ctx, []changelog.Item{{Entry: e, Change: c}})[0]
}

// DeliverBatch sends the events of items as one message per channel they
// are routed to.
func (t *target) DeliverBatch(ctx context.Context, items []changelog.Item) []error {
	name := t.a.Config.Name
	errs := make([]error, len(items))
	var order []string
	byChannel := map[string][]int{}
	t.mu.Lock()
	for i, it := range items {
		c := it.Change
		for _, ch := range t.s.cfg.channels(name, t.a.Channels, c, it.Entry.Event) {
			if c.Fields[FieldNetwork] == name && c.Fields[FieldChannel] == ch && it.Entry.Event == changelog.EventRecorded {
				continue // said in this channel: the bot answered there
			}
			if t.sent[it.Entry.Seq][ch] {
				continue
			}
			if _, ok := byChannel[ch]; !ok {
				order = append(order, ch)
			}
			byChannel[ch] = append(byChannel[ch], i)
		}
	}
	t.mu.Unlock()
	follows := map[string]*changes.Change{}
	for _, ch := range order {
		idx := byChannel[ch]
		evs := make([]event, 0, len(idx))
		for _, i := range idx {
			c := items[i].Change
			f, ok := follows[c.ID]
			if !ok {
				f = t.s.follows(ctx, c)
				follows[c.ID] = f
			}
			evs = append(evs, event{change: c, event: items[i].Entry.Event, follows: f})
		}
		err := t.send(ctx, ch, compose(evs, t.lim, t.s.opts.ChangesURL), len(evs))
		t.mu.Lock()
		for _, i := range idx {
			if err != nil {
				errs[i] = err
				continue
			}
			seq := items[i].Entry.Seq
			if t.sent[seq] == nil {
				t.sent[seq] = map[string]bool{}
			}
			t.sent[seq][ch] = true
		}
		t.mu.Unlock()
		var rl *RateLimitError
		if errors.As(err, &rl) || ctx.Err() != nil {
			// The rest would be refused too: leave it for the next round.
			t.failRest(order, ch, byChannel, errs, err)
			break
		}
	}
	t.mu.Lock()
	for i, it := range items {
		if errs[i] == nil {
			delete(t.sent, it.Entry.Seq)
		}
	}
	if len(t.sent) > maxRemembered {
		// Entries that failed for good are never delivered: forget all
		// rather than grow (a retry may then repeat a channel).
		clear(t.sent)
	}
	t.mu.Unlock()
	return errs
}

// failRest marks the items of the channels after ch in order with err.
func (t *target) failRest(order []string, ch string, byChannel map[string][]int, errs []error, err error) {
	after := false
	for _, c := range order {
		if after {
			for _, i := range byChannel[c] {
				if errs[i] == nil {
					errs[i] = fmt.Errorf("not sent to %s: %w", c, err)
				}
			}
		}
		after = after || c == ch
	}
}

// send posts one message and maps its error to the outbox's kinds.
func (t *target) send(ctx context.Context, channel, text string, n int) error {
	name := t.a.Config.Name
	err := t.a.Network.Send(ctx, channel, text)
	t.pace.sent()
	var rl *RateLimitError
	switch {
	case err == nil:
		t.s.m.messages(name, "sent").Inc()
		t.s.m.changesSent(name).AddInt64(int64(n))
		return nil
	case errors.As(err, &rl):
		t.s.m.messages(name, "rate_limited").Inc()
		t.pace.block(rl.After)
		return fmt.Errorf("%s %s: %w", name, channel, err)
	case errors.Is(err, ErrRefused):
		t.s.m.messages(name, "refused").Inc()
		return changelog.Refused(fmt.Errorf("%s %s: %w", name, channel, err))
	case errors.Is(err, ErrRejected):
		t.s.m.messages(name, "rejected").Inc()
		return changelog.Permanent(fmt.Errorf("%s %s: %w", name, channel, err))
	}
	t.s.m.messages(name, "error").Inc()
	return fmt.Errorf("%s %s: %w", name, channel, err)
}

// followKinds are the changes an alert or incident is said to follow.
var followKinds = []string{changes.KindDeploy, changes.KindSwitch, changes.KindConfig}

// follows returns the newest deploy, switch flip or config change of c's
// service (and env, or every env) in the FollowsWindow before c, for
// alerts and incidents; nil for other kinds or when there is none.
func (s *Service) follows(ctx context.Context, c changes.Change) *changes.Change {
	if c.Kind != changes.KindAlert && c.Kind != changes.KindIncident {
		return nil
	}
	l := s.changeLog()
	if l == nil {
		return nil
	}
	list, err := l.List(ctx, changes.Filter{Kinds: followKinds, Service: c.Service, Env: c.Env, EnvlessToo: true,
		From: c.Time.Add(-s.opts.FollowsWindow), To: c.Time, Limit: 1})
	if err != nil {
		s.logger.Warn("cannot look up the change an alert follows", "change_id", c.ID, "err", err)
		return nil
	}
	if len(list) == 0 {
		return nil
	}
	return &list[0]
}
