package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/agent/scrape"
)

// state collects what a Discoverer reports, as scrape.Scraper.Sync keeps
// it: groups by source, empty ones removed.
type state struct {
	mu      sync.Mutex
	groups  map[string]scrape.Group
	changed chan struct{}
	updates int
}

func newState() *state {
	return &state{groups: map[string]scrape.Group{}, changed: make(chan struct{}, 1)}
}

func (s *state) update(gs []scrape.Group) {
	s.mu.Lock()
	for _, g := range gs {
		if len(g.Targets) == 0 {
			delete(s.groups, g.Source)
		} else {
			s.groups[g.Source] = g
		}
	}
	s.updates++
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// addresses returns the sorted __address__ of every target.
func (s *state) addresses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, g := range s.groups {
		for _, t := range g.Targets {
			out = append(out, t["__address__"])
		}
	}
	sort.Strings(out)
	return out
}

// target returns the labels of the target with address addr, its group's
// labels merged under them.
func (s *state) target(addr string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		for _, t := range g.Targets {
			if t["__address__"] == addr {
				m := map[string]string{}
				for k, v := range g.Labels {
					m[k] = v
				}
				for k, v := range t {
					m[k] = v
				}
				return m
			}
		}
	}
	return nil
}

// waitFor waits until the addresses are want (in any order) and returns;
// it fails the test after a generous deadline, naming what it saw.
func (s *state) waitFor(t *testing.T, want ...string) {
	t.Helper()
	sort.Strings(want)
	deadline := time.After(30 * time.Second)
	for {
		got := s.addresses()
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("targets %v; want %v", got, want)
		}
	}
}

// waitLabels waits until the target addr has the labels of want.
func (s *state) waitLabels(t *testing.T, addr string, want map[string]string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		got := s.target(addr)
		ok := got != nil
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("target %s has labels %v; want %v", addr, got, want)
		}
	}
}

// run starts d and stops it when the test ends, checking that Run returns.
func run(t *testing.T, d Discoverer) *state {
	t.Helper()
	s := newState()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx, s.update)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func testOptions() (Options, *metrics.Set) {
	set := metrics.NewSet()
	return Options{Logger: slog.New(slog.DiscardHandler), Metrics: set}, set
}

func failures(set *metrics.Set, mechanism string) uint64 {
	return set.GetOrCreateCounter(`telltale_agent_sd_refresh_failures_total{mechanism="` + mechanism + `"}`).Get()
}

// checkLabels compares the labels of a target with want; "" in want means
// the label must be absent.
func checkLabels(t *testing.T, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s=%q (want %q)", k, got[k], v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("target labels differ: %s\nall: %v", strings.Join(diffs, ", "), got)
	}
}
