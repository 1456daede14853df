package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/telltale-dev/telltale/annotator/client"
)

func runList(ctx context.Context, args []string, sys IO) error {
	var c common
	fs := newFlagSet("deploys", "deploys [-service S] [-env E] [-limit N] [-json]", sys)
	c.register(fs, sys.Getenv)
	service := fs.String("service", "", "only this service")
	env := fs.String("env", "", "only this environment")
	limit := fs.Int("limit", 20, "at most this many deploys (the collector allows up to 1000)")
	asJSON := fs.Bool("json", false, "print the deploys as a JSON array")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q: deploys takes only flags", fs.Arg(0))
	}
	if *limit <= 0 {
		return usageError("-limit %d must be positive", *limit)
	}
	cl, err := c.client(sys.Getenv)
	if err != nil {
		return err
	}
	list, err := cl.List(ctx, client.ListOptions{Service: *service, Env: *env, Limit: *limit})
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
		fmt.Fprintln(sys.Stdout, "no deploys found")
		return nil
	}
	tw := tabwriter.NewWriter(sys.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSERVICE\tENV\tVERSION\tWHO\tSTATUS\tIMPACT\tMESSAGE\tLINK")
	for _, d := range list {
		status := d.Status
		if d.EndTime != nil {
			status += " (" + d.EndTime.Sub(d.Time).Round(time.Second).String() + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.UTC().Format(time.RFC3339), dash(d.Service), dash(d.Env),
			dash(oneLine(d.Version, 24)), dash(oneLine(d.Who, 20)), status, impactColumn(d.Impact), dash(oneLine(d.Message, 40)), dash(d.Link))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
