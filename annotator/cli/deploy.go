package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/telltale-dev/telltale/annotator/ci"
	"github.com/telltale-dev/telltale/annotator/deployapi"
)

// deployFlags are the flags describing a deploy, shared by deploy and run.
type deployFlags struct {
	common
	service, env, version, commit, who, message, link, id string
	info                                                  ci.Info
}

func (f *deployFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	f.common.register(fs, getenv)
	f.info = ci.Detect(getenv)
	i := f.info
	fs.StringVar(&f.service, "service", getenv("TELLTALE_SERVICE"), "deployed service, [A-Za-z0-9._-] (required; env TELLTALE_SERVICE)")
	fs.StringVar(&f.env, "env", first(getenv("TELLTALE_ENV"), i.Env), "environment deployed to, e.g. prod (env TELLTALE_ENV, CI_ENVIRONMENT_NAME)")
	fs.StringVar(&f.version, "version", i.Version(), "version deployed (default: the CI tag, else <branch>@<short commit>)")
	fs.StringVar(&f.commit, "commit", i.Commit, "commit deployed (GITHUB_SHA, CI_COMMIT_SHA, GIT_COMMIT)")
	fs.StringVar(&f.who, "who", i.Who, "who deployed (GITHUB_ACTOR, GITLAB_USER_LOGIN, BUILD_USER_ID, USER)")
	fs.StringVar(&f.message, "message", i.Message, "what changed, at most 4 KiB (CI_COMMIT_TITLE)")
	fs.StringVar(&f.link, "link", i.Link, "absolute http(s) URL of the change or pipeline run (GitHub run URL, CI_PIPELINE_URL, BUILD_URL)")
	fs.StringVar(&f.id, "id", "", "deploy id; the same id makes a retry idempotent (default in CI: derived from the run, service and env)")
}

// request validates the flags and builds the create request.
func (f *deployFlags) request() (deployapi.CreateRequest, error) {
	if f.service == "" {
		return deployapi.CreateRequest{}, usageError("missing -service: name the deployed service, e.g. -service api (or set TELLTALE_SERVICE)")
	}
	id := f.id
	if id == "" {
		id = f.info.DeployID(f.service, f.env)
	}
	return deployapi.CreateRequest{
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
	d, created, err := cl.Create(ctx, req)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(sys.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	if created {
		fmt.Fprintf(sys.Stdout, "recorded deploy %s: %s\n", d.ID, describe(d))
	} else {
		fmt.Fprintf(sys.Stdout, "deploy %s was already recorded: %s\n", d.ID, describe(d))
	}
	return nil
}

func describe(d deployapi.Deploy) string {
	s := d.Service
	if d.Version != "" {
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
