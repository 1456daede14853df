package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/retry"
)

// The bot: commands said in a channel of a network are answered in that
// channel. Answers are read from the change log and are not recorded
// again (they would only repeat it); the actions are: !note records a
// note change, !switch flips a switch through the switch relay (each app
// records the flip as a switch change). Both carry the speaker as who and
// the network and channel in their fields, so they are found by search
// and their notifications do not echo into the channel that asked.

// helpText is the short help for unknown commands.
const helpText = "commands: !deploys [service] · !changes <words> · !impact <id> · !alerts · !note [service:] <text> · !switch <service> <name> on|off <reason> · !graph <panel or PromQL>"

// listLimit is how many changes a listing command answers with.
const listLimit = 5

// commandTimeout bounds one command.
const commandTimeout = 30 * time.Second

type bot struct {
	s     *Service
	t     *target
	slots chan struct{}
}

// hear runs a command heard on the network, in its own goroutine so the
// network's read loop is never held up, at most maxCommands at once.
func (b *bot) hear(ctx context.Context, wg *sync.WaitGroup, m Message) {
	cmd, ok := ParseCommand(m.Text)
	if !ok {
		return
	}
	name := b.t.a.Config.Name
	select {
	case b.slots <- struct{}{}:
	default:
		b.s.m.commands(name, "all", "busy").Inc()
		return
	}
	wg.Go(func() {
		defer func() { <-b.slots }()
		ctx, cancel := context.WithTimeout(ctx, commandTimeout)
		defer cancel()
		var ans Answer
		var outcome string
		if cmd.Name == "graph" {
			ans, outcome = b.graph(ctx, cmd)
		} else {
			ans.Lines, outcome = b.run(ctx, m, cmd)
		}
		b.s.m.commands(name, metricCommand(cmd.Name), outcome).Inc()
		b.s.logger.Info("chat command", "network", name, "channel", m.Channel, "user", m.User, "command", cmd.Name, "outcome", outcome)
		if b.reply(ctx, m.Channel, ans.Lines) && ans.Image != nil {
			b.replyImage(ctx, m.Channel, ans.Image)
		}
	})
}

// metricCommand keeps made-up command names out of the metric labels.
func metricCommand(name string) string {
	switch name {
	case "deploys", "changes", "impact", "alerts", "note", "switch", "graph", "help":
		return name
	}
	return "unknown"
}

// maxReplyLines bounds an answer.
const maxReplyLines = 8

// reply posts lines as the network takes them and reports whether all
// went.
func (b *bot) reply(ctx context.Context, channel string, lines []string) bool {
	if len(lines) == 0 {
		return true
	}
	if len(lines) > maxReplyLines {
		lines = append(lines[:maxReplyLines-1], fmt.Sprintf("… and %d more lines", len(lines)-maxReplyLines+1))
	}
	lim := b.t.lim
	var msgs []string
	if lim.MultiLine {
		msgs = []string{ClipText(strings.Join(lines, "\n"), lim.MaxBytes)}
	} else {
		for _, l := range lines {
			msgs = append(msgs, ClipText(oneLine(l), lim.MaxBytes))
		}
	}
	for _, text := range msgs {
		if err := b.sendWaiting(ctx, func() error { return b.t.a.Network.Send(ctx, channel, text) }); err != nil {
			if ctx.Err() == nil {
				b.s.logger.Warn("cannot answer chat command", "network", b.t.a.Config.Name, "channel", channel, "err", err)
			}
			return false
		}
	}
	return true
}

// replyImage draws and posts an image where the network can post images;
// elsewhere the text answer (with its link) was all.
func (b *bot) replyImage(ctx context.Context, channel string, draw func(context.Context) (Image, error)) {
	name := b.t.a.Config.Name
	is, ok := b.t.a.Network.(ImageSender)
	if !ok {
		b.s.m.images(name, "unsupported").Inc()
		return
	}
	img, err := draw(ctx)
	if err != nil {
		b.s.m.images(name, "not_drawn").Inc()
		b.s.logger.Warn("cannot draw chat image; answered with text only", "network", name, "channel", channel, "err", err)
		return
	}
	if err := b.sendWaiting(ctx, func() error { return is.SendImage(ctx, channel, img) }); err != nil {
		b.s.m.images(name, outcomeOf(err)).Inc()
		if ctx.Err() == nil {
			b.s.logger.Warn("cannot post chat image", "network", name, "channel", channel, "err", err)
		}
		return
	}
	b.s.m.images(name, "sent").Inc()
}

// maxAnswerTries bounds the posts of one answer message.
const maxAnswerTries = 3

// sendWaiting calls send, and again after the wait a *RateLimitError
// asks for while that wait ends before ctx does (a command has 30 s): an
// answer is worth a short wait, and the network said exactly how long.
// The wait holds the network's batched messages back too, as their own
// rate-limit answers do.
func (b *bot) sendWaiting(ctx context.Context, send func() error) error {
	for try := 1; ; try++ {
		err := send()
		var rl *RateLimitError
		if err == nil || !errors.As(err, &rl) {
			return err
		}
		b.t.pace.block(rl.After)
		if try == maxAnswerTries {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < rl.After {
			return err
		}
		if retry.Sleep(ctx, rl.After) != nil {
			return err
		}
	}
}

// outcomeOf names a send error for the metrics.
func outcomeOf(err error) string {
	var rl *RateLimitError
	switch {
	case errors.As(err, &rl):
		return "rate_limited"
	case errors.Is(err, ErrRefused):
		return "refused"
	case errors.Is(err, ErrRejected):
		return "rejected"
	}
	return "error"
}

// run executes cmd and returns the answer and the outcome for the metric.
func (b *bot) run(ctx context.Context, m Message, cmd Command) ([]string, string) {
	l := b.s.changeLog()
	now := time.Now()
	switch cmd.Name {
	case "deploys":
		f := changes.Filter{Kinds: []string{changes.KindDeploy}}
		if len(cmd.Args) > 1 || len(cmd.Args) == 1 && !changes.ValidLabel(cmd.Args[0]) {
			return []string{"usage: !deploys [service]"}, "bad"
		}
		if len(cmd.Args) == 1 {
			f.Service = cmd.Args[0]
		}
		return b.list(ctx, l, f, now, "no deploys"+forService(f.Service))
	case "changes":
		if cmd.Rest == "" {
			return []string{"usage: !changes <words>, e.g. !changes checkout timeout"}, "bad"
		}
		if _, err := changes.SearchTerms(cmd.Rest); err != nil {
			return []string{"!changes: " + err.Error()}, "bad"
		}
		return b.list(ctx, l, changes.Filter{Text: cmd.Rest}, now, "no change matches "+cmd.Rest)
	case "alerts":
		return b.list(ctx, l, changes.Filter{Kinds: []string{changes.KindAlert}, OpenOnly: true}, now, "no alert is firing")
	case "impact":
		if len(cmd.Args) != 1 {
			return []string{"usage: !impact <change id> (ids are in !deploys and !changes)"}, "bad"
		}
		return b.impact(ctx, l, cmd.Args[0])
	case "note":
		return b.note(ctx, l, m, cmd.Rest)
	case "switch":
		return b.flip(ctx, l, m, cmd)
	case "help":
		return []string{helpText}, "ok"
	}
	return []string{"unknown command !" + cmd.Name + "; " + helpText}, "bad"
}

// graph answers !graph with Options.Graph's lines and image.
func (b *bot) graph(ctx context.Context, cmd Command) (Answer, string) {
	if cmd.Rest == "" {
		return Answer{Lines: []string{"usage: !graph <panel title or PromQL>"}}, "bad"
	}
	if b.s.opts.Graph == nil {
		return Answer{Lines: []string{"!graph is off on this collector"}}, "bad"
	}
	ans, err := b.s.opts.Graph(ctx, cmd.Rest)
	if err != nil {
		return Answer{Lines: []string{"!graph: " + err.Error()}}, "bad"
	}
	return ans, "ok"
}

func forService(s string) string {
	if s == "" {
		return ""
	}
	return " of " + s
}

// list answers with the newest listLimit changes of f, one line each,
// and a last line saying there are more when there are (seven alerts
// firing must not read as five).
func (b *bot) list(ctx context.Context, l Log, f changes.Filter, now time.Time, none string) ([]string, string) {
	f.Limit = listLimit + 1
	list, err := l.List(ctx, f)
	if err != nil {
		return []string{"cannot read the change log: " + err.Error()}, "error"
	}
	if len(list) == 0 {
		return []string{none}, "ok"
	}
	out := make([]string, 0, len(list))
	for i, c := range list {
		if i == listLimit {
			more := fmt.Sprintf("… and more, older than these %d", listLimit)
			if b.s.opts.ChangesURL != "" {
				more += ": " + b.s.opts.ChangesURL
			}
			out = append(out, more)
			break
		}
		out = append(out, fmt.Sprintf("%s ago: %s [%s]", human(now.Sub(c.Time)), Line(c, changelog.EventRecorded, nil), c.ID))
	}
	return out, "ok"
}

func (b *bot) impact(ctx context.Context, l Log, id string) ([]string, string) {
	c, err := l.Get(ctx, id)
	if errors.Is(err, changelog.ErrNotFound) {
		return []string{fmt.Sprintf("no change %q; ids are in !deploys and !changes", ClipText(id, 64))}, "bad"
	}
	if err != nil {
		return []string{"cannot read the change log: " + err.Error()}, "error"
	}
	title := c.Kind + " " + subject(c)
	if c.Impact == nil || c.Impact.Status != changes.ImpactDone {
		return []string{"impact of " + title + ": not analysed yet (analysis runs once the after window has passed, for deploys, switches and config changes)"}, "ok"
	}
	return []string{Line(c, changelog.EventImpact, nil)}, "ok"
}

// note records "!note [service:] text" as a note change by the speaker.
func (b *bot) note(ctx context.Context, l Log, m Message, rest string) ([]string, string) {
	if rest == "" {
		return []string{"usage: !note [service:] <text>, e.g. !note web: cache flushed by hand"}, "bad"
	}
	service := b.s.cfg.DefaultService
	if word, text, ok := strings.Cut(rest, " "); ok && strings.HasSuffix(word, ":") && changes.ValidLabel(strings.TrimSuffix(word, ":")) {
		service, rest = strings.TrimSuffix(word, ":"), strings.TrimSpace(text)
	}
	c, err := l.Record(ctx, changes.Change{Kind: changes.KindNote, Service: service, Who: b.who(m), Message: rest, Time: time.Now(),
		Fields: map[string]string{FieldNetwork: b.t.a.Config.Name, FieldChannel: m.Channel}})
	if err != nil {
		var re *changes.RequestError
		if errors.As(err, &re) {
			return []string{"!note: " + re.Msg}, "bad"
		}
		return []string{"cannot record the note: " + err.Error()}, "error"
	}
	return []string{fmt.Sprintf("noted: %s [%s]", Line(c, changelog.EventRecorded, nil), c.ID)}, "ok"
}

// flip relays "!switch <service> <name> on|off <reason>" for users mapped
// to a token with the deploy scope.
func (b *bot) flip(ctx context.Context, l Log, m Message, cmd Command) ([]string, string) {
	const usage = "usage: !switch <service> <name> on|off <reason>"
	u, mapped := b.s.cfg.user(b.t.a.Config.Kind(), m.User)
	if !mapped || b.s.opts.Authorize == nil || !b.s.opts.Authorize(u.Token) {
		b.s.logger.Warn("chat switch flip refused", "network", b.t.a.Config.Name, "user", m.User, "mapped", mapped)
		return []string{fmt.Sprintf("%s: !switch needs a chat user mapped to a token with the deploy scope (users: in -chat.config); nothing was flipped", m.Name)}, "refused"
	}
	if len(cmd.Args) < 4 {
		return []string{usage}, "bad"
	}
	var on bool
	switch strings.ToLower(cmd.Args[2]) {
	case "on":
		on = true
	case "off":
	default:
		return []string{usage}, "bad"
	}
	reason := cmd.Rest
	for range 3 { // drop service, name and on|off, keep the reason as said
		_, reason, _ = strings.Cut(strings.TrimSpace(reason), " ")
	}
	req := changes.FlipRequest{On: &on, Reason: strings.TrimSpace(reason), Who: b.whoMapped(u, m)}
	if err := req.Validate(); err != nil {
		return []string{"!switch: " + err.Error()}, "bad"
	}
	res, err := l.FlipSwitch(ctx, cmd.Args[0], cmd.Args[1], req)
	if err != nil {
		var re *changes.RequestError
		if errors.As(err, &re) {
			return []string{"!switch: " + re.Msg}, "bad"
		}
		return []string{"!switch failed: " + err.Error()}, "error"
	}
	okN := 0
	var failed []string
	for _, o := range res.Results {
		if o.OK {
			okN++
		} else {
			failed = append(failed, o.Instance+": "+o.Error)
		}
	}
	state := "off"
	if on {
		state = "on"
	}
	line := fmt.Sprintf("switch %s %s (%s) by %s: %d of %d instances took it [%s]", res.Switch, state, res.Service, req.Who, okN, len(res.Results), res.ChangeID)
	out := []string{line}
	if len(failed) > 0 {
		out = append(out, "not taken by "+strings.Join(failed, "; "))
	}
	if okN == 0 {
		return out, "error"
	}
	return out, "ok"
}

// who is what an action records as who: "alice (irc)".
func (b *bot) who(m Message) string {
	if u, ok := b.s.cfg.user(b.t.a.Config.Kind(), m.User); ok && u.Who != "" {
		return u.Who
	}
	return whoName(m.Name, b.t.a.Config.Kind())
}

func (b *bot) whoMapped(u User, m Message) string {
	if u.Who != "" {
		return u.Who
	}
	return whoName(m.Name, b.t.a.Config.Kind())
}

func whoName(name, kind string) string {
	if name == "" || !utf8.ValidString(name) {
		name = "someone"
	}
	return ClipText(oneLine(name), 64) + " (" + kind + ")"
}
