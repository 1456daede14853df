package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

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
