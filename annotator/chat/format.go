package chat

import (
	"fmt"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
)

// maxMessagePart bounds the change's message quoted in a line, in bytes.
const maxMessagePart = 160

// Line renders one event of change c as one short line of plain text:
//
//	deployed web v1.2.3 → prod by alice: fix the checkout https://ci/1
//	deploy web v1.2.3 → prod failed after 3m12s
//	impact of deploy web v1.2.3 → prod: regressed: error ratio 0.4% → 2.1% ▲ regressed
//	FIRING HighErrorRate web → prod (critical): error ratio above 5% — 4m after deploy web v1.2.3 by alice
//	RESOLVED HighErrorRate web → prod after 12m
//	switch slow_checkout off (web) by alice: payment provider slow
//
// follows, when not nil, is the change (deploy, switch flip, config
// change) the change came after: alerts and incidents name it (the likely
// cause). event is one of the changelog
// Event constants.
func Line(c changes.Change, event string, follows *changes.Change) string {
	var b strings.Builder
	if c.Kind == changes.KindAlert {
		alertLine(&b, c, event)
	} else {
		changeLine(&b, c, event)
	}
	if follows != nil && follows.ID != c.ID && event != changelog.EventImpact && !(c.Kind == changes.KindAlert && !c.Open()) {
		fmt.Fprintf(&b, " — %s after %s", human(c.Time.Sub(follows.Time)), changeName(*follows))
	}
	return b.String()
}

func changeLine(b *strings.Builder, c changes.Change, event string) {
	what := subject(c)
	switch {
	case event == changelog.EventImpact:
		verdict, summary := "pending", ""
		if c.Impact != nil {
			verdict, summary = c.Impact.Verdict, c.Impact.Summary
		}
		fmt.Fprintf(b, "impact of %s %s: %s", c.Kind, what, strings.ReplaceAll(verdict, "_", " "))
		if summary != "" {
			b.WriteString(": " + firstLine(summary))
		}
		return
	case event == changelog.EventFinished:
		b.WriteString(c.Kind + " " + what + " " + finishedWord(c))
		if c.EndTime != nil {
			b.WriteString(" after " + human(c.EndTime.Sub(c.Time)))
		}
		return
	case c.Kind == changes.KindDeploy && c.Status == changes.StatusSuccess:
		b.WriteString("deployed " + what)
	case c.Open():
		b.WriteString(c.Kind + " " + what + " " + startedWord(c.Kind))
	case c.Status == changes.StatusSuccess:
		b.WriteString(c.Kind + " " + what)
	default:
		b.WriteString(c.Kind + " " + what + " " + strings.ReplaceAll(c.Status, "_", " "))
	}
	if c.Who != "" {
		b.WriteString(" by " + oneLine(c.Who))
	}
	if m := firstLine(c.Message); m != "" {
		b.WriteString(": " + ClipText(m, maxMessagePart))
	}
	if c.Link != "" {
		b.WriteString(" " + c.Link)
	}
}

func alertLine(b *strings.Builder, c changes.Change, event string) {
	name := c.Subject
	if name == "" {
		name = c.Fields["alertname"]
	}
	if name == "" {
		name = "alert"
	}
	where := c.Service
	if c.Env != "" {
		where += " → " + c.Env
	}
	if event == changelog.EventImpact {
		fmt.Fprintf(b, "impact of alert %s %s: %s", name, where, firstLine(impactSummary(c)))
		return
	}
	if c.Open() {
		b.WriteString("FIRING " + name + " " + where)
	} else {
		b.WriteString("RESOLVED " + name + " " + where)
	}
	if sev := c.Fields["severity"]; sev != "" {
		b.WriteString(" (" + oneLine(sev) + ")")
	}
	if !c.Open() {
		if c.EndTime != nil {
			b.WriteString(" after " + human(c.EndTime.Sub(c.Time)))
		}
		return
	}
	if summary := alertSummary(c, name); summary != "" {
		b.WriteString(": " + ClipText(summary, maxMessagePart))
	}
	if c.Link != "" {
		b.WriteString(" " + c.Link)
	}
}

// alertSummary is what an alert says beyond its name. The rules engine
// records alerts with the message "<alertname> firing: <summary>:
// <description>: <telltale_changes>", where the last part ("firing since
// 14:02 UTC, 4 min after deploy ...") says what the line's "— after"
// already says: the name, the state and that part are left out.
func alertSummary(c changes.Change, name string) string {
	if s := firstLine(c.Fields["summary"]); s != "" {
		return s
	}
	m := firstLine(c.Message)
	for _, st := range []string{"firing", "resolved", "pending"} {
		if rest, ok := strings.CutPrefix(m, name+" "+st); ok && (rest == "" || rest[0] == ':') {
			m = strings.TrimSpace(strings.TrimPrefix(rest, ":"))
			break
		}
	}
	for _, marker := range []string{"firing since ", "pending since "} {
		if i := strings.Index(m, marker); i >= 0 {
			m = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(m[:i]), ":"))
		}
	}
	return m
}

func impactSummary(c changes.Change) string {
	if c.Impact == nil {
		return "pending"
	}
	return c.Impact.Verdict + ": " + c.Impact.Summary
}

// subject is "web v1.2.3 → prod" for a change without subject, else
// "slow_checkout off (web → prod)".
func subject(c changes.Change) string {
	env := ""
	if c.Env != "" {
		env = " → " + c.Env
	}
	if c.Subject == "" {
		s := c.Service
		if c.Version != "" {
			s += " " + oneLine(c.Version)
		}
		return s + env
	}
	s := c.Subject
	if st := c.Fields["state"]; st != "" {
		s += " " + oneLine(st)
	}
	return s + " (" + c.Service + env + ")"
}

// changeName is "deploy web v1.2.3 by alice", "switch slow_checkout off
// (web) by bob".
func changeName(d changes.Change) string {
	s := d.Kind + " " + d.Service
	if d.Subject != "" {
		s = d.Kind + " " + d.Subject
		if st := d.Fields["state"]; st != "" {
			s += " " + oneLine(st)
		}
		s += " (" + d.Service + ")"
	}
	if d.Version != "" {
		s += " " + oneLine(d.Version)
	}
	if d.Who != "" {
		s += " by " + oneLine(d.Who)
	}
	return s
}

func startedWord(kind string) string {
	switch kind {
	case changes.KindIncident:
		return "opened"
	case changes.KindDeploy:
		return "started"
	}
	return "(open)"
}

func finishedWord(c changes.Change) string {
	switch c.Status {
	case changes.StatusSuccess:
		if c.Kind == changes.KindIncident {
			return "closed"
		}
		return "done"
	case changes.StatusRunning:
		return "ended"
	}
	return strings.ReplaceAll(c.Status, "_", " ")
}

// firstLine is s up to its first line break, trimmed.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// oneLine replaces control characters (line breaks, IRC formatting codes)
// with spaces: a field must never start a line of its own on IRC.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// human renders d as "40s", "4m", "2h5m", "3d".
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// event is one change event as a target renders it.
type event struct {
	change  changes.Change
	event   string
	follows *changes.Change
}

// maxGroupLines bounds the lines of one batched message on networks that
// allow several; the rest is counted.
const maxGroupLines = 10

// compose renders the events of one batch for one channel as one message
// of at most lim.MaxBytes: a single event as its Line; several as one line
// per group of events that read the same ("deployed web v1.2.3 → prod by ci (×50)"),
// at most 10 lines on multi-line networks, joined with "; " into one line
// on IRC, with the rest counted ("… and 12 more") and more (a link to the
// change log) appended when anything was left out.
func compose(events []event, lim Limits, more string) string {
	if len(events) == 1 {
		return ClipText(oneLine(Line(events[0].change, events[0].event, events[0].follows)), lim.MaxBytes)
	}
	// Events that read the same collapse into one line: a 50-host deploy
	// of one version by one pipeline is one line (×50).
	var order []string
	n := map[string]int{}
	for _, e := range events {
		l := oneLine(Line(e.change, e.event, e.follows))
		if n[l] == 0 {
			order = append(order, l)
		}
		n[l]++
	}
	lines := make([]string, 0, len(order))
	for _, l := range order {
		if n[l] > 1 {
			l += fmt.Sprintf(" (×%d)", n[l])
		}
		lines = append(lines, l)
	}
	head := fmt.Sprintf("%d changes: ", len(events))
	if lim.MultiLine {
		head = fmt.Sprintf("%d changes:\n", len(events))
		return joinWithin(head, lines, "\n", maxGroupLines, lim.MaxBytes, more, lineLen(lim))
	}
	return joinWithin(head, lines, "; ", len(lines), lim.MaxBytes, more, maxMessagePart)
}

func lineLen(lim Limits) int { return min(lim.MaxBytes, 400) }

// joinWithin joins as many of lines (each clipped to each bytes) as fit in
// max bytes and maxLines, then "… and N more" and more when some are left
// out.
func joinWithin(head string, lines []string, sep string, maxLines, max int, more string, each int) string {
	var b strings.Builder
	b.WriteString(head)
	for i, l := range lines {
		l = ClipText(l, each)
		rest := len(lines) - i - 1
		tail := ""
		if rest > 0 {
			tail = fmt.Sprintf("%s… and %d more", sep, rest)
			if more != "" {
				tail += " " + more
			}
		}
		sepLen := 0
		if i > 0 {
			sepLen = len(sep)
		}
		if i >= maxLines || b.Len()+sepLen+len(l)+len(tail) > max {
			tail = fmt.Sprintf("%s… and %d more", sep, len(lines)-i)
			if i == 0 {
				tail = fmt.Sprintf("… %d groups", len(lines))
			}
			if more != "" {
				tail += " " + more
			}
			b.WriteString(tail)
			return ClipText(b.String(), max)
		}
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(l)
	}
	if more != "" && b.Len()+1+len(more) <= max {
		b.WriteString(sep + more)
	}
	return b.String()
}
