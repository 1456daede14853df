package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/client"
)

// runNote is `annotator note -service S [flags] [message words...]`.
func runNote(ctx context.Context, args []string, sys IO) error {
	var f where
	fs := newFlagSet("note", "note -service S [-env E] [-subject X] [-link L] [-json] message...", sys)
	f.register(fs, sys.Getenv, "the note is about")
	message := fs.String("message", "", "the note, at most 4 KiB; or give it as the arguments")
	subject := fs.String("subject", "", "what the note is about within the service, [A-Za-z0-9._:/-] (optional)")
	kind := fs.String("kind", changes.KindNote, "the kind to record: note, config, or your own ([a-z][a-z0-9_]*)")
	asJSON := fs.Bool("json", false, "print the recorded change as JSON")
	words, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if err := f.needService("noted"); err != nil {
		return err
	}
	msg := strings.TrimSpace(strings.Join(append([]string{*message}, words...), " "))
	if msg == "" {
		return usageError("missing message: annotator note -service demo \"raised the checkout timeout to 5s\"")
	}
	cl, err := f.client(sys.Getenv)
	if err != nil {
		return err
	}
	rec, err := cl.Create(ctx, changes.CreateRequest{Kind: *kind, Service: f.service, Env: f.env, Subject: *subject,
		Who: f.who, Message: msg, Link: f.link})
	if err != nil {
		return err
	}
	return printRecorded(sys, rec, *asJSON)
}

// runIncident is `annotator incident open|close`.
func runIncident(ctx context.Context, args []string, sys IO) error {
	if len(args) == 0 || (args[0] != "open" && args[0] != "close") {
		return usageError("incident needs open or close: annotator incident open -service S -message \"checkout errors\"; annotator incident close -service S")
	}
	verb := args[0]
	var f where
	fs := newFlagSet("incident "+verb, "incident "+verb+" -service S [-env E] [-subject KEY] [flags] [message...]", sys)
	f.register(fs, sys.Getenv, "affected")
	message := fs.String("message", "", "what is happening (open), at most 4 KiB; or give it as the arguments")
	subject := fs.String("subject", "", "a key for the incident, e.g. checkout-errors: open ends an open incident with the same key; close picks it")
	status := fs.String("status", changes.StatusResolved, "close: the final status")
	asJSON := fs.Bool("json", false, "print the change as JSON")
	rest, err := parseMixed(fs, args[1:])
	if err != nil {
		return err
	}
	if err := f.needService("affected"); err != nil {
		return err
	}
	cl, err := f.client(sys.Getenv)
	if err != nil {
		return err
	}
	if verb == "open" {
		msg := strings.TrimSpace(strings.Join(append([]string{*message}, rest...), " "))
		if msg == "" {
			return usageError("missing message: say what is happening, e.g. annotator incident open -service demo \"checkout errors\"")
		}
		rec, err := cl.Create(ctx, changes.CreateRequest{Kind: changes.KindIncident, Service: f.service, Env: f.env, Subject: *subject,
			Who: f.who, Message: msg, Link: f.link, Status: changes.StatusRunning})
		if err != nil {
			return err
		}
		if err := printRecorded(sys, rec, *asJSON); err != nil {
			return err
		}
		if !*asJSON {
			fmt.Fprintf(sys.Stdout, "close it with: annotator incident close -service %s %s\n", f.service, rec.Change.ID)
		}
		return nil
	}
	id := ""
	if len(rest) > 1 {
		return usageError("incident close takes at most one incident id, got %q", rest)
	}
	if len(rest) == 1 {
		id = rest[0]
	}
	if id == "" {
		open, err := cl.List(ctx, client.ListOptions{Kinds: []string{changes.KindIncident}, Service: f.service, Env: f.env,
			Subject: *subject, OpenOnly: true, Limit: 10})
		if err != nil {
			return err
		}
		switch len(open) {
		case 0:
			return &ExitError{Code: ExitRejected, Err: fmt.Errorf("no open incident of %s%s: annotator changes -kind incident -open lists the open ones", f.service, envText(f.env))}
		case 1:
			id = open[0].ID
		default:
			var ids []string
			for _, c := range open {
				ids = append(ids, c.ID+" ("+oneLine(c.Message, 30)+")")
			}
			return usageError("%s has %d open incidents: name one: %s", f.service, len(open), strings.Join(ids, ", "))
		}
	}
	c, err := cl.Update(ctx, id, changes.PatchRequest{Status: *status})
	if err != nil {
		return err
	}
	return printRecorded(sys, client.Recorded{Change: c}, *asJSON)
}

func envText(env string) string {
	if env == "" {
		return ""
	}
	return " in " + env
}

// runSwitch is `annotator switch`: list the switches of a service, or
// flip one with a reason through the collector's switch relay.
func runSwitch(ctx context.Context, args []string, sys IO) error {
	var f where
	fs := newFlagSet("switch", "switch -service S [-env E] [NAME on|off -reason R]", sys)
	f.register(fs, sys.Getenv, "owning the switch")
	reason := fs.String("reason", "", "why the switch is flipped (required to flip); recorded with the flip")
	rest, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	cl, err := f.client(sys.Getenv)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		list, err := cl.Switches(ctx, f.service, f.env)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintf(sys.Stdout, "no switches announced%s: apps announce them when built with instrument's Switches and pushing to this collector\n", forService(f.service))
			return nil
		}
		tw := tabwriter.NewWriter(sys.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tENV\tSWITCH\tSTATE\tDEFAULT\tOWNER\tPROTECTS\tINSTANCES")
		for _, s := range list {
			state := onOff(s.On)
			if s.Mixed {
				state = "mixed"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", s.Service, dash(s.Env), s.Name, state, onOff(s.Default),
				dash(s.Owner), dash(oneLine(s.Protects, 40)), len(s.Instances))
		}
		return tw.Flush()
	}
	if len(rest) != 2 || (rest[1] != "on" && rest[1] != "off") {
		return usageError("flip a switch with: annotator switch -service demo slow_checkout off -reason \"checkout p99 over 2s\"")
	}
	if err := f.needService("owning the switch"); err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usageError("missing -reason: say why the switch is flipped; it is recorded with the flip")
	}
	on := rest[1] == "on"
	res, err := cl.Flip(ctx, f.service, rest[0], changes.FlipRequest{On: &on, Reason: *reason, Who: first(f.who, "annotator"), Env: f.env})
	if err != nil {
		return err
	}
	failed := 0
	for _, o := range res.Results {
		if !o.OK {
			failed++
			fmt.Fprintf(sys.Stderr, "annotator: instance %s did not take the flip: %s\n", o.Instance, o.Error)
		}
	}
	fmt.Fprintf(sys.Stdout, "switched %s of %s%s %s on %d of %d instances; recorded as change %s\n", res.Switch, res.Service,
		envText(res.Env), onOff(res.On), len(res.Results)-failed, len(res.Results), res.ChangeID)
	if failed > 0 {
		return &ExitError{Code: ExitServer}
	}
	return nil
}

func forService(s string) string {
	if s == "" {
		return ""
	}
	return " for " + s
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
