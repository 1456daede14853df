package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/ci"
	"github.com/telltale-dev/telltale/annotator/client"
)

// where are the flags every recorded change has: which service and env,
// who, and a link; their defaults come from TELLTALE_* and the CI
// environment (annotator/ci) for every kind alike.
type where struct {
	common
	service, env, who, link string
	info                    ci.Info
}

// register adds the flags; verb says what the change does ("deployed",
// "noted") in their help.
func (f *where) register(fs *flag.FlagSet, getenv func(string) string, verb string) {
	f.common.register(fs, getenv)
	f.info = ci.Detect(getenv)
	i := f.info
	fs.StringVar(&f.service, "service", getenv("TELLTALE_SERVICE"), "service "+verb+", [A-Za-z0-9._-] (required; env TELLTALE_SERVICE)")
	fs.StringVar(&f.env, "env", first(getenv("TELLTALE_ENV"), i.Env), "environment, e.g. prod (env TELLTALE_ENV, CI_ENVIRONMENT_NAME); empty marks every env of the service")
	fs.StringVar(&f.who, "who", i.Who, "who (GITHUB_ACTOR, GITLAB_USER_LOGIN, BUILD_USER_ID, USER)")
	fs.StringVar(&f.link, "link", i.Link, "absolute http(s) URL of the change, ticket or pipeline run (GitHub run URL, CI_PIPELINE_URL, BUILD_URL)")
}

func (f *where) needService(what string) error {
	if f.service == "" {
		return usageError("missing -service: name the %s service, e.g. -service demo (or set TELLTALE_SERVICE)", what)
	}
	return nil
}

// deployFlags are the flags describing a deploy, shared by deploy and run.
type deployFlags struct {
	where
	version, commit, message, id string
}

func (f *deployFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	f.where.register(fs, getenv, "deployed")
	i := f.info
	fs.StringVar(&f.version, "version", i.Version(), "version deployed (default: the CI tag, else <branch>@<short commit>)")
	fs.StringVar(&f.commit, "commit", i.Commit, "commit deployed (GITHUB_SHA, CI_COMMIT_SHA, GIT_COMMIT)")
	fs.StringVar(&f.message, "message", i.Message, "what changed, at most 4 KiB (CI_COMMIT_TITLE)")
	fs.StringVar(&f.id, "id", "", "deploy id; the same id makes a retry idempotent (default in CI: derived from the run, service and env)")
}

// request validates the flags and builds the create request.
func (f *deployFlags) request() (changes.CreateRequest, error) {
	if err := f.needService("deployed"); err != nil {
		return changes.CreateRequest{}, err
	}
	id := f.id
	if id == "" {
		id = f.info.DeployID(f.service, f.env)
	}
	return changes.CreateRequest{
		ID: id, Service: f.service, Env: f.env, Version: f.version, Commit: f.commit,
		Who: f.who, Message: f.message, Link: f.link,
	}, nil
}

func runDeploy(ctx context.Context, args []string, sys IO) error {
	var f deployFlags
	fs := newFlagSet("deploy", "deploy -service S [flags]", sys)
	f.register(fs, sys.Getenv)
	asJSON := fs.Bool("json", false, "print the recorded deploy as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q: deploy takes only flags", fs.Arg(0))
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	cl, err := f.client(sys.Getenv)
	if err != nil {
		return err
	}
	rec, err := cl.Create(ctx, req)
	if err != nil {
		return err
	}
	return printRecorded(sys, rec, *asJSON)
}

// printRecorded prints a recorded change (as JSON with -json) and its
// warnings, which always go to stderr.
func printRecorded(sys IO, rec client.Recorded, asJSON bool) error {
	for _, w := range rec.Warnings {
		fmt.Fprintf(sys.Stderr, "annotator: warning: %s\n", w)
	}
	c := rec.Change
	if asJSON {
		enc := json.NewEncoder(sys.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(c)
	}
	if rec.Created {
		fmt.Fprintf(sys.Stdout, "recorded %s %s: %s\n", changes.Noun(c.Kind), c.ID, describe(c))
	} else {
		fmt.Fprintf(sys.Stdout, "%s %s was already recorded: %s\n", changes.Noun(c.Kind), c.ID, describe(c))
	}
	return nil
}

func describe(d changes.Change) string {
	s := d.Service
	if d.Kind != changes.KindDeploy {
		s = d.Title()
	} else if d.Version != "" {
		s += " " + d.Version
	}
	if d.Env != "" {
		s += " to " + d.Env
	}
	if d.Who != "" {
		s += " by " + d.Who
	}
	return s + " (" + d.Status + ")"
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
