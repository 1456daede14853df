package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
)

// Log is what the chat package needs of the change log;
// *changelog.Service has it.
type Log interface {
	Record(ctx context.Context, c changes.Change) (changes.Change, error)
	List(ctx context.Context, f changes.Filter) ([]changes.Change, error)
	Get(ctx context.Context, id string) (changes.Change, error)
	FlipSwitch(ctx context.Context, service, name string, req changes.FlipRequest) (changes.FlipResult, error)
}

// Attached is one configured network, built by the collector.
type Attached struct {
	// Config is the network's entry (name and kind) in Config.Networks.
	Config NetworkConfig
	// Network is the connection.
	Network Network
	// Channels are the channels it joins; the first is where changes go
	// unless routes say otherwise.
	Channels []string
}

// Options configures a Service. Config and Networks are required.
type Options struct {
	Config   *Config
	Networks []Attached
	// Authorize reports whether the token named token (Users[].Token)
	// exists and holds the deploy scope. nil refuses every !switch.
	Authorize func(token string) bool
	// Graph answers !graph with a line or a few (a console link, the
	// current values) and, where it can draw one, a PNG of the graph,
	// posted on the networks that are ImageSenders; nil answers that
	// graphs are off.
	Graph func(ctx context.Context, arg string) (Answer, error)
	// ChangesURL links to the change log in the console; batched messages
	// that leave changes out end with it. "" for none.
	ChangesURL string
	// FollowsWindow is how far back an alert or incident looks for the
	// deploy it follows (default 6h).
	FollowsWindow time.Duration
	Logger        *slog.Logger // nil means slog.Default()
	Metrics       *metrics.Set // default a new set
}

// Service sends changes to the chat networks (its Targets, delivered by
// the change log's outbox) and runs the bot that answers in them. Create
// it with New, hand Targets to changelog.Options.Targets, call SetLog with
// the opened change log, then Run.
type Service struct {
	opts    Options
	cfg     *Config
	logger  *slog.Logger
	m       *chatMetrics
	targets []*target
	log     atomic.Pointer[logRef]
}

type logRef struct{ Log }

// New checks opts and builds the targets.
func New(opts Options) (*Service, error) {
	if opts.Config == nil {
		return nil, errors.New("BUG: chat.New without a Config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.FollowsWindow <= 0 {
		opts.FollowsWindow = 6 * time.Hour
	}
	s := &Service{opts: opts, cfg: opts.Config, logger: opts.Logger.With("component", "chat"), m: newChatMetrics(opts.Metrics)}
	for _, a := range opts.Networks {
		if a.Network == nil || len(a.Channels) == 0 {
			return nil, fmt.Errorf("BUG: chat network %q without a connection or channels", a.Config.Name)
		}
		lim := a.Network.Limits()
		if a.Config.Every > 0 {
			lim.Every = a.Config.Every
		}
		if a.Config.Linger > 0 {
			lim.Linger = a.Config.Linger
		}
		s.targets = append(s.targets, &target{s: s, a: a, lim: lim, pace: &pacer{every: lim.Every, linger: lim.Linger},
			sent: map[int64]map[string]bool{}})
	}
	return s, nil
}

// Targets are the outbox targets, one per network (chat:<name>).
func (s *Service) Targets() []changelog.Target {
	out := make([]changelog.Target, len(s.targets))
	for i, t := range s.targets {
		out[i] = t
	}
	return out
}

// SetLog gives the Service the change log: call it before Run and
// before the change log delivers (changelog.Service.Run).
func (s *Service) SetLog(l Log) { s.log.Store(&logRef{l}) }

func (s *Service) changeLog() Log {
	if r := s.log.Load(); r != nil {
		return r.Log
	}
	return nil
}

// maxCommands bounds the commands one network runs at once; more are
// answered "busy".
const maxCommands = 4

// Run keeps every network connected and answers commands until ctx is
// done. It returns after every network and command ended; the error is the
// first a network could not recover from.
func (s *Service) Run(ctx context.Context) error {
	if s.changeLog() == nil {
		return errors.New("BUG: chat.Service.Run before SetLog")
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(s.targets))
	for _, t := range s.targets {
		b := &bot{s: s, t: t, slots: make(chan struct{}, maxCommands)}
		wg.Go(func() {
			var cmds sync.WaitGroup
			err := t.a.Network.Run(ctx, func(m Message) { b.hear(ctx, &cmds, m) })
			cmds.Wait()
			if err != nil && ctx.Err() == nil {
				s.logger.Error("chat network stopped", "network", t.a.Config.Name, "err", err)
				errs <- fmt.Errorf("chat network %s: %w", t.a.Config.Name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
