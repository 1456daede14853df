package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/client"
)

func TestExitCode(t *testing.T) {
	f := func(err error, want int, silent bool) {
		t.Helper()
		if got := ExitCode(err); got != want {
			t.Fatalf("ExitCode(%v): got %d; want %d", err, got, want)
		}
		if got := Silent(err); got != silent {
			t.Fatalf("Silent(%v): got %v; want %v", err, got, silent)
		}
	}
	f(nil, ExitOK, true)
	f(flag.ErrHelp, ExitOK, true)
	f(&ExitError{Code: 3}, 3, true)
	f(usageError("bad"), ExitUsage, false)
	f(fmt.Errorf("x: %w", client.ErrUnreachable), ExitUnreachable, false)
	f(&client.APIError{StatusCode: 409}, ExitRejected, false)
	f(&client.APIError{StatusCode: 401}, ExitRejected, false)
	f(&client.APIError{StatusCode: 503}, ExitServer, false)
	f(errors.New("boom"), ExitFailure, false)
}

func TestRunUsage(t *testing.T) {
	f := func(args []string, want int, wantOut string) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := Run(t.Context(), args, IO{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errOut})
		if got := ExitCode(err); got != want {
			t.Fatalf("Run(%q): got exit %d (%v); want %d", args, got, err, want)
		}
		if all := out.String() + errOut.String() + fmt.Sprint(err); !strings.Contains(all, wantOut) {
			t.Fatalf("Run(%q): output %q; want it to contain %q", args, all, wantOut)
		}
	}
	f(nil, ExitUsage, "missing command")
	f([]string{"help"}, ExitOK, "Exit codes:")
	f([]string{"deploy", "extra"}, ExitUsage, `unexpected argument "extra"`)
	f([]string{"deploys", "-limit", "0"}, ExitUsage, "-limit 0 must be positive")
	f([]string{"run", "-service", "api"}, ExitUsage, "missing command")
}

func TestOneLine(t *testing.T) {
	f := func(in string, max int, want string) {
		t.Helper()
		if got := oneLine(in, max); got != want {
			t.Fatalf("oneLine(%q, %d): got %q; want %q", in, max, got, want)
		}
	}
	f("short", 10, "short")
	f("first\nsecond", 10, "first")
	f("héllo wörld", 6, "héllo…")
}

func TestImpactColumn(t *testing.T) {
	due := time.Date(2024, 5, 1, 12, 15, 30, 0, time.UTC)
	f := func(im *changes.Impact, want string) {
		t.Helper()
		if got := impactColumn(im); got != want {
			t.Fatalf("impactColumn(%+v): got %q; want %q", im, got, want)
		}
	}
	f(nil, "-")
	f(&changes.Impact{Status: changes.ImpactPending, DueAt: &due}, "pending (due 2024-05-01T12:15:30Z)")
	f(&changes.Impact{Status: changes.ImpactFailed}, "failed")
	f(&changes.Impact{Status: changes.ImpactDone, Verdict: "unchanged", Summary: "no significant change in 6 signals"},
		"unchanged: no significant change in 6 signals")
	long := strings.Repeat("error ratio 0.4% → 2.1% ▲ regressed; ", 5)
	if got := impactColumn(&changes.Impact{Status: changes.ImpactDone, Verdict: "regressed", Summary: long}); len([]rune(got)) != len("regressed: ")+70 || !strings.HasSuffix(got, "…") {
		t.Fatalf("long summary: got %q; want it cut to 70 runes with …", got)
	}
}

func TestPrintImpactPending(t *testing.T) {
	var out bytes.Buffer
	err := printImpact(&out, changes.ImpactAnswer{DeployID: "web-1", Impact: changes.Impact{Status: changes.ImpactPending, Attempts: 2},
		Message: "pending: due at 2024-05-01T12:15:30Z; the last attempt failed: storage down"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "deploy web-1: impact analysis pending: due at 2024-05-01T12:15:30Z; the last attempt failed: storage down\nattempts: 2\n"; got != want {
		t.Fatalf("got %q; want %q", got, want)
	}
	err = printImpact(&out, changes.ImpactAnswer{DeployID: "x", Impact: changes.Impact{Status: changes.ImpactDone}, Report: []byte(`{"window":5}`)})
	if err == nil || !strings.Contains(err.Error(), "cannot decode the impact report") {
		t.Fatalf("bad report: got %v; want a decode error", err)
	}
}
