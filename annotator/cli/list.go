package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/client"
)

// runList is `annotator deploys`: the deploys, newest first.
func runList(ctx context.Context, args []string, sys IO) error {
	return listChanges(ctx, args, sys, "deploys", []string{changes.KindDeploy})
}

// runChanges is `annotator changes`: every kind, with search.
func runChanges(ctx context.Context, args []string, sys IO) error {
	return listChanges(ctx, args, sys, "changes", nil)
}

func listChanges(ctx context.Context, args []string, sys IO, name string, kinds []string) error {
	var c common
	synopsis := name + " [-service S] [-env E] [-limit N] [-json]"
	if kinds == nil {
		synopsis = name + " [-kind K,...] [-service S] [-env E] [-subject X] [-q TEXT] [-open] [-limit N] [-json]"
	}
	fs := newFlagSet(name, synopsis, sys)
	c.register(fs, sys.Getenv)
	service := fs.String("service", "", "only this service")
	env := fs.String("env", "", "only this environment (and changes without env, which mark every env)")
	limit := fs.Int("limit", 20, "at most this many (the collector allows up to 1000)")
	asJSON := fs.Bool("json", false, "print a JSON array")
	var kind, subject, text *string
	var open *bool
	if kinds == nil {
		kind = fs.String("kind", "", "only these kinds, comma-separated: deploy, switch, config, incident, note, alert or your own")
		subject = fs.String("subject", "", "only changes about this subject (a switch name, a config file)")
		text = fs.String("q", "", `full-text search: changes whose words include every word given, e.g. -q "checkout timeout"`)
		open = fs.Bool("open", false, "only open changes (running: an incident not closed, a switch away from its default)")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q: %s takes only flags", fs.Arg(0), name)
	}
	if *limit <= 0 {
		return usageError("-limit %d must be positive", *limit)
	}
	o := client.ListOptions{Kinds: kinds, Service: *service, Env: *env, Limit: *limit}
	if kinds == nil {
		if *kind != "" {
			o.Kinds = []string{*kind}
		}
		o.Subject, o.Text, o.OpenOnly = *subject, *text, *open
	}
	cl, err := c.client(sys.Getenv)
	if err != nil {
		return err
	}
	list, err := cl.List(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(sys.Stdout)
		enc.SetIndent("", "  ")
		if list == nil {
			return enc.Encode([]struct{}{})
		}
		return enc.Encode(list)
	}
	if len(list) == 0 {
		fmt.Fprintf(sys.Stdout, "no %s found\n", name)
		return nil
	}
	if kinds != nil {
		return printDeploys(sys.Stdout, list)
	}
	return printChanges(sys.Stdout, list)
}

func printDeploys(w io.Writer, list []changes.Change) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSERVICE\tENV\tVERSION\tWHO\tSTATUS\tIMPACT\tMESSAGE\tLINK")
	for _, d := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339), dash(d.Service), dash(d.Env),
			dash(oneLine(d.Version, 24)), dash(oneLine(d.Who, 20)), status(d), impactColumn(d.Impact), dash(oneLine(d.Message, 40)), dash(d.Link))
	}
	return tw.Flush()
}

func printChanges(w io.Writer, list []changes.Change) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tWHAT\tENV\tWHO\tSTATUS\tIMPACT\tMESSAGE\tID")
	for _, c := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Time.UTC().Format(time.RFC3339), c.Kind,
			oneLine(c.Title(), 40), dash(c.Env), dash(oneLine(c.Who, 20)), status(c), impactColumn(c.Impact), dash(oneLine(c.Message, 40)), c.ID)
	}
	return tw.Flush()
}

// status is the change's status, with how long a region lasted.
func status(c changes.Change) string {
	s := c.Status
	if c.EndTime != nil {
		s += " (" + c.EndTime.Sub(c.Time).Round(time.Second).String() + ")"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
