// Package cli is the annotator command line: `annotator deploy` records a
// deploy from a CI pipeline, `annotator run` wraps a deploy script and
// records its start and end, `annotator note` and `annotator incident`
// record other changes, `annotator switch` lists and flips contingency
// switches, `annotator deploys` and `annotator changes` list (and search)
// the change log, `annotator impact` prints what a change did to its
// service's numbers. It talks to the collector's change API through
// annotator/client and takes its defaults from the CI environment through
// annotator/ci, for every kind of change alike.
//
// Promises: Run never calls os.Exit and reads the environment only through
// IO.Getenv; ExitCode maps every error Run returns to the documented exit
// codes (see usage), so scripts can tell "collector down" from "bad input".
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/annotator/client"
)

// Exit codes of the annotator.
const (
	ExitOK          = 0
	ExitFailure     = 1 // anything else (a bug, an unexpected answer)
	ExitUsage       = 2 // bad flags or arguments
	ExitUnreachable = 3 // the collector could not be reached
	ExitRejected    = 4 // the collector refused the request (bad input, token, unknown id)
	ExitServer      = 5 // the collector failed (5xx) on every try
	ExitCannotRun   = 127
)

const usage = `annotator records changes in Telltale — deploys, switch flips, incidents,
notes — so every graph can show them.

Usage:
  annotator deploy   -service S [-version V] [-env E] [-who W] [-message M] [-link L] [-commit C] [-id ID] [-json]
  annotator run      -service S [deploy flags] -- command [args...]
  annotator note     -service S [-env E] [-subject X] [-kind note|config|...] message...
  annotator incident open  -service S [-env E] [-subject KEY] message...
  annotator incident close -service S [-env E] [-subject KEY] [ID]
  annotator switch   [-service S] [-env E]                       list the switches apps announced
  annotator switch   -service S [-env E] NAME on|off -reason R   flip one on every instance
  annotator deploys  [-service S] [-env E] [-limit N] [-json]
  annotator changes  [-kind K,...] [-service S] [-env E] [-q TEXT] [-open] [-limit N] [-json]
  annotator impact   [-json] <change id>
  annotator <command> -h     flags of one command

A change without -env marks every env of its service; a change whose
service (or env) has no data is recorded with a warning saying that it
marks no graph of the Service dashboard.

Commands:
  deploy   record one deploy (a point on the graphs)
  run      record a deploy as "running", run the command with stdio passed
           through and signals forwarded, then record its end time and status
           (success if it exits 0, else failed; cancelled if it was
           interrupted) and exit with the command's exit code. If the collector
           cannot be reached the command still runs; a warning is printed.
  note     record a note (or, with -kind, a config change or your own kind)
  incident open records an incident as a region that runs until
           incident close ends it (status resolved)
  switch   list the contingency switches apps announced, or flip one on
           every live instance through the collector, with a reason; the
           app records the flip as a switch change (who, why)
  deploys  list recent deploys, newest first, as a table or JSON, with the
           verdict and summary of each deploy's impact analysis
  changes  list recent changes of every kind; -q searches their words
           (service, env, subject, version, commit, who, message, link)
  impact   what a change did to its service's key signals (request rate,
           error ratio, p50/p99 latency, CPU, memory): the window after it
           compared with the window before, per signal the medians, change,
           p-value and verdict; "pending: due at ..." until the window passed

Environment:
  TELLTALE_COLLECTOR   collector URL (default http://127.0.0.1:9470); -collector overrides it
  TELLTALE_TOKEN       bearer token with the deploy scope (read suffices to list)
  TELLTALE_SERVICE, TELLTALE_ENV   defaults for -service and -env
  CI variables fill the other defaults:
    GitHub Actions  GITHUB_SHA, GITHUB_ACTOR, GITHUB_REF_NAME/GITHUB_REF_TYPE,
                    GITHUB_SERVER_URL/GITHUB_REPOSITORY/GITHUB_RUN_ID (link),
                    GITHUB_RUN_ID/GITHUB_RUN_ATTEMPT (id)
    GitLab CI       CI_COMMIT_SHA, GITLAB_USER_LOGIN, CI_PIPELINE_URL, CI_COMMIT_REF_NAME,
                    CI_COMMIT_TAG, CI_ENVIRONMENT_NAME, CI_COMMIT_TITLE, CI_PIPELINE_ID/CI_JOB_ID (id)
    Jenkins         GIT_COMMIT, BUILD_URL, GIT_BRANCH, BUILD_TAG (id), BUILD_USER_ID
    anywhere        USER (who)
  These defaults apply to every command that records a change. In CI the
  deploy id defaults to one derived from the run, the service and the env,
  so a retried step records the deploy once.

Exit codes:
  0    success
  1    unexpected error
  2    bad flags or arguments
  3    collector unreachable (after retries)
  4    collector refused the request (bad input, bad token, unknown id)
  5    collector error (HTTP 5xx after retries)
  run: the command's exit code; 127 if it could not be started; 128+N if it
       was killed by signal N
`

// IO is the process environment Run uses.
type IO struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// ExitError carries an exit code; Err, if not nil, is what to print.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func usageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// ExitCode maps an error of Run to the process exit code.
func ExitCode(err error) int {
	var ee *ExitError
	var apiErr *client.APIError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, client.ErrUnreachable):
		return ExitUnreachable
	case errors.As(err, &apiErr):
		if apiErr.StatusCode >= 500 {
			return ExitServer
		}
		return ExitRejected
	}
	return ExitFailure
}

// Silent reports whether err needs no message (help was shown, or a wrapped
// command's exit code is passed on).
func Silent(err error) bool {
	var ee *ExitError
	return err == nil || errors.Is(err, flag.ErrHelp) || errors.As(err, &ee) && ee.Err == nil
}

// Run runs the annotator with args (without the program name).
func Run(ctx context.Context, args []string, sys IO) error {
	if len(args) == 0 {
		io.WriteString(sys.Stderr, usage)
		return usageError("missing command: use deploy, run, note, incident, switch, deploys, changes or impact")
	}
	switch args[0] {
	case "deploy":
		return runDeploy(ctx, args[1:], sys)
	case "run":
		return runRun(ctx, args[1:], sys)
	case "deploys", "list":
		return runList(ctx, args[1:], sys)
	case "impact":
		return runImpact(ctx, args[1:], sys)
	case "changes":
		return runChanges(ctx, args[1:], sys)
	case "note":
		return runNote(ctx, args[1:], sys)
	case "incident":
		return runIncident(ctx, args[1:], sys)
	case "switch":
		return runSwitch(ctx, args[1:], sys)
	case "-h", "-help", "--help", "help":
		io.WriteString(sys.Stdout, usage)
		return nil
	}
	io.WriteString(sys.Stderr, usage)
	return usageError("unknown command %q: use deploy, run, note, incident, switch, deploys, changes or impact", args[0])
}

// common are the flags every command has.
type common struct {
	collector string
	retries   int
	timeout   time.Duration
}

func (c *common) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("TELLTALE_COLLECTOR")
	if def == "" {
		def = "http://127.0.0.1:9470"
	}
	fs.StringVar(&c.collector, "collector", def, "collector URL (env TELLTALE_COLLECTOR)")
	fs.IntVar(&c.retries, "retries", 4, "retries on network errors and HTTP 5xx, with exponential backoff")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of one HTTP request")
}

func (c *common) client(getenv func(string) string) (*client.Client, error) {
	retries := c.retries
	if retries == 0 {
		retries = -1 // client: 0 means default
	}
	cl, err := client.New(c.collector, client.Options{
		Token:      getenv("TELLTALE_TOKEN"),
		HTTPClient: &http.Client{Timeout: c.timeout},
		Retries:    retries,
	})
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return cl, nil
}

// parse parses fs, mapping errors to usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return nil
}

// parseMixed parses fs where flags may follow the arguments too
// (annotator switch -service demo slow_checkout off -reason "..."), and
// returns the arguments. "--" ends the flags.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func newFlagSet(name, synopsis string, sys IO) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(sys.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: annotator %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\nRun annotator -h for the environment variables and exit codes.\n")
	}
	return fs
}

func oneLine(s string, max int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	r := []rune(s)
	if len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
