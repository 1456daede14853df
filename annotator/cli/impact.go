package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/impact"
)

func runImpact(ctx context.Context, args []string, sys IO) error {
	var c common
	fs := newFlagSet("impact", "impact [-json] <change id>", sys)
	c.register(fs, sys.Getenv)
	asJSON := fs.Bool("json", false, "print the answer (state and full report) as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	id := fs.Arg(0)
	if rest := fs.Args(); len(rest) > 1 {
		// Flags may also follow the id: annotator impact web-1 -json.
		if err := parse(fs, rest[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageError("unexpected argument %q: impact takes one change id", fs.Arg(0))
		}
	}
	if id == "" {
		return usageError("missing change id: annotator impact <id> (annotator changes lists them)")
	}
	cl, err := c.client(sys.Getenv)
	if err != nil {
		return err
	}
	ans, err := cl.Impact(ctx, id)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(sys.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ans)
	}
	return printImpact(sys.Stdout, ans)
}

// printImpact prints an impact answer for people: the state, or the
// report as a table of signals.
func printImpact(w io.Writer, ans changes.ImpactAnswer) error {
	if ans.Status != changes.ImpactDone {
		fmt.Fprintf(w, "%s %s: impact analysis %s\n", answerNoun(ans), ans.DeployID, ans.Message)
		if ans.Attempts > 0 {
			fmt.Fprintf(w, "attempts: %d\n", ans.Attempts)
		}
		return nil
	}
	if len(ans.Report) == 0 {
		fmt.Fprintf(w, "%s %s: %s\n", answerNoun(ans), ans.DeployID, ans.Message)
		return nil
	}
	var r impact.Report
	if err := json.Unmarshal(ans.Report, &r); err != nil {
		return fmt.Errorf("cannot decode the impact report of change %s (annotator older than the collector?): %w", ans.DeployID, err)
	}
	where := r.Service
	if r.Env != "" {
		where += " to " + r.Env
	}
	noun := answerNoun(ans)
	fmt.Fprintf(w, "%s %s: %s at %s\n", noun, r.DeployID, where, r.DeployTime.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "verdict: %s (%s)\n", r.Verdict, plural(r.Regressions(), "signal needs", "signals need")+" a look")
	fmt.Fprintf(w, "summary: %s\n", r.SummaryText)
	fmt.Fprintf(w, "compared: %s before vs %s after the %s, one value per %s; requests %s before, %s after\n",
		time.Duration(r.Window), time.Duration(r.Window), noun, time.Duration(r.Step), count(float64(r.RequestsBefore)), count(float64(r.RequestsAfter)))
	if r.Hint != "" {
		fmt.Fprintf(w, "why no requests: %s\n", r.Hint)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SIGNAL\tBEFORE\tAFTER\tCHANGE\tP-VALUE\tVERDICT")
	var notes []string
	for _, s := range r.Signals {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name,
			impact.FormatValue(float64(s.Before.Median), s.Unit), impact.FormatValue(float64(s.After.Median), s.Unit),
			change(s), impact.FormatP(float64(s.PValue)), s.Verdict)
		if s.Note != "" {
			notes = append(notes, s.Name+": "+s.Note)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintln(w, "  "+n)
		}
	}
	if len(r.Overlaps) > 0 {
		fmt.Fprintf(w, "\nother changes of %s inside the windows (what moved may be theirs):\n", where)
		for _, o := range r.Overlaps {
			fmt.Fprintf(w, "  %s  %s  %s\n", o.Time.UTC().Format(time.RFC3339), o.Title, o.ID)
		}
	} else if len(r.Overlapping) > 0 {
		fmt.Fprintf(w, "\noverlapping deploys of %s (changes may be theirs): %s\n", where, strings.Join(r.Overlapping, ", "))
	}
	return nil
}

// answerNoun names the analysed change: "deploy" for deploys and for
// answers of collectors that analysed deploys only, else "change".
func answerNoun(ans changes.ImpactAnswer) string {
	if ans.Kind == "" {
		return "deploy"
	}
	return changes.Noun(ans.Kind)
}

// change is the relative change of medians; the absolute change when the
// relative one is undefined (from 0); "-" when not judged.
func change(s impact.SignalReport) string {
	if math.IsNaN(float64(s.RelChange)) || math.IsInf(float64(s.RelChange), 0) {
		if a := float64(s.AbsChange); !math.IsNaN(a) && a != 0 {
			return impact.FormatDelta(a, s.Unit)
		}
		return "-"
	}
	return impact.FormatRel(float64(s.RelChange))
}

func count(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", v)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// impactColumn is the IMPACT column of the deploys table.
func impactColumn(im *changes.Impact) string {
	switch {
	case im == nil:
		return "-"
	case im.Status == changes.ImpactPending && im.DueAt != nil:
		return "pending (due " + im.DueAt.UTC().Format(time.RFC3339) + ")"
	case im.Status == changes.ImpactDone:
		return im.Verdict + ": " + oneLine(im.Summary, 70)
	}
	return im.Status
}
