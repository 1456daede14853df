package rules

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Change is one change to a service: a deploy, a switch flip, a config
// change ... what an alert's notification names as a possible cause.
type Change struct {
	ID      string
	Kind    string // deploy, switch, config ...
	Service string
	Env     string
	// Subject is what the change is about within its kind: a switch's
	// name, a config file; "" for none.
	Subject string
	Version string
	Who     string
	Link    string
	Time    time.Time
	// Impact is the one-line result of the change's impact analysis
	// ("error ratio 0.4% → 2.1% ▲ regressed"), "" while there is none.
	Impact string
}

// Changes lists recent changes of a service. The collector adapts its
// change log to it.
type Changes interface {
	// Recent returns the changes of service with from <= Time <= to, in
	// any order. It must be safe for concurrent use.
	Recent(ctx context.Context, service string, from, to time.Time) ([]Change, error)
}

// Annotations the manager adds to every alert of a service (an alert with
// a "service" label) when it has a Changes source.
const (
	// AnnotationChanges is one line for people: "firing since 14:02 UTC,
	// 4 min after deploy web v1.2.3 by alice: <link>; impact: ...", or
	// that no change of the service preceded the alert.
	AnnotationChanges = "telltale_changes"
	// AnnotationChangeLink is the link of the newest change, when it has
	// one.
	AnnotationChangeLink = "telltale_change_link"
)

// ServiceLabel is the alert label whose value names the service whose
// changes an alert carries.
const ServiceLabel = "service"

// maxChangesShown bounds how many changes one annotation names.
const maxChangesShown = 3

// changeContext computes and caches the change annotations of alerts.
type changeContext struct {
	src    Changes
	window time.Duration
	ttl    time.Duration
	now    func() time.Time
	onErr  func(error)

	mu    sync.Mutex
	cache map[ctxKey]ctxEntry
}

type ctxKey struct {
	service string
	env     string
	since   int64 // unix seconds the alert became active
	firing  bool
}

type ctxEntry struct {
	text, link string
	at         time.Time
}

// annotate returns ann with the change annotations of an alert of service
// (its labels) that became active at activeAt and fires (or would fire)
// after hold; ann is returned unchanged when the alert names no service.
func (c *changeContext) annotate(ctx context.Context, lset, ann labels.Labels, activeAt time.Time, hold time.Duration, firing bool) labels.Labels {
	if c == nil || c.src == nil {
		return ann
	}
	service := lset.Get(ServiceLabel)
	if service == "" || activeAt.IsZero() {
		return ann
	}
	env := lset.Get("env")
	// ALERTS_FOR_STATE keeps whole seconds, so after a restart the restored
	// ActiveAt is truncated: truncate always, and the text stays the same.
	text, link := c.lookup(ctx, service, env, activeAt.Truncate(time.Second), hold, firing)
	b := labels.NewBuilder(ann)
	b.Set(AnnotationChanges, text)
	b.Set(AnnotationChangeLink, link) // "" deletes
	return b.Labels()
}

func (c *changeContext) lookup(ctx context.Context, service, env string, activeAt time.Time, hold time.Duration, firing bool) (string, string) {
	now := c.now()
	k := ctxKey{service, env, activeAt.Unix(), firing}
	c.mu.Lock()
	e, ok := c.cache[k]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		return e.text, e.link
	}
	list, err := c.src.Recent(ctx, service, activeAt.Add(-c.window), now)
	if err != nil {
		c.onErr(err)
		if ok {
			return e.text, e.link // keep what was known
		}
		return fmt.Sprintf("changes of %s unknown: %v", service, err), ""
	}
	if env != "" {
		// Prefer the env's own changes; a change without an env applies
		// to every env.
		list = slices.DeleteFunc(list, func(ch Change) bool { return ch.Env != "" && ch.Env != env })
	}
	text, link := describeChanges(service, activeAt, hold, firing, c.window, list)
	c.mu.Lock()
	if c.cache == nil || len(c.cache) > 10_000 {
		c.cache = map[ctxKey]ctxEntry{}
	}
	c.cache[k] = ctxEntry{text, link, now}
	c.mu.Unlock()
	return text, link
}

// describeChanges renders the change annotation: when the alert started,
// the newest change before it with how long before, its link and impact,
// and the others of the window.
func describeChanges(service string, activeAt time.Time, hold time.Duration, firing bool, window time.Duration, list []Change) (text, link string) {
	since := activeAt.Add(hold)
	state := "firing since " + formatClock(since)
	if !firing {
		state = "pending since " + formatClock(activeAt)
	}
	slices.SortFunc(list, func(a, b Change) int { return b.Time.Compare(a.Time) }) // newest first
	var before, during []Change
	for _, ch := range list {
		if ch.Time.After(activeAt) {
			during = append(during, ch)
		} else {
			before = append(before, ch)
		}
	}
	if len(before) == 0 && len(during) == 0 {
		return fmt.Sprintf("%s; no change of %s in the %s before it", state, service, human(window)), ""
	}
	var b strings.Builder
	b.WriteString(state)
	shown := 0
	if len(before) > 0 {
		ch := before[0]
		fmt.Fprintf(&b, ", %s after %s", human(activeAt.Sub(ch.Time)), changeText(ch))
		link = ch.Link
		shown++
		for _, ch := range before[1:] {
			if shown == maxChangesShown {
				fmt.Fprintf(&b, "; and %d earlier", len(before)-shown)
				break
			}
			fmt.Fprintf(&b, "; earlier %s before: %s", human(activeAt.Sub(ch.Time)), changeText(ch))
			shown++
		}
	} else {
		fmt.Fprintf(&b, "; no change of %s in the %s before it", service, human(window))
	}
	for i, ch := range during {
		if i == maxChangesShown {
			fmt.Fprintf(&b, "; and %d more since", len(during)-i)
			break
		}
		fmt.Fprintf(&b, "; since then, %s later: %s", human(ch.Time.Sub(activeAt)), changeText(ch))
		if link == "" {
			link = ch.Link
		}
	}
	return b.String(), link
}

// changeText is "deploy web v1.2.3 by alice: <link>; impact: ...".
func changeText(ch Change) string {
	var b strings.Builder
	kind := ch.Kind
	if kind == "" {
		kind = "change"
	}
	b.WriteString(kind + " " + ch.Service)
	if ch.Subject != "" {
		b.WriteString(" " + ch.Subject)
	}
	if ch.Version != "" {
		b.WriteString(" " + ch.Version)
	}
	if ch.Env != "" {
		b.WriteString(" to " + ch.Env)
	}
	if ch.Who != "" {
		b.WriteString(" by " + ch.Who)
	}
	if ch.Link != "" {
		b.WriteString(": " + ch.Link)
	}
	if ch.Impact != "" {
		b.WriteString("; impact: " + ch.Impact)
	}
	return b.String()
}

// formatClock renders t as "2024-05-01 14:02 UTC": a notification is often read
// hours later, so the date stays.
func formatClock(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// human renders d as "4 min", "2 h 5 min", "40 s".
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(math.Round(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}
