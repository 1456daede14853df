// Command dashboards renders Telltale's shared Grafana dashboards (Go code
// in dashboards/board) to JSON with Grafana's provisioning files, and pushes
// them to a running Grafana.
//
//	go run ./dashboards generate            # writes dashboards/json and dashboards/provisioning
//	go run ./dashboards push -grafana.url http://localhost:3000 -grafana.token-file token
//
// See dashboards/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the usage is printed, and asking for it is no error
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
}

const usage = `Usage: dashboards <command> [flags]

Commands:
  generate   write the dashboard JSON and Grafana provisioning files (run from the repository root)
  push       create the Telltale folder in a Grafana and upsert the dashboards through its API

Run "dashboards <command> -h" for the command's flags.
`

// run runs one command; progress goes to stderr.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command: want generate or push")
	}
	switch args[0] {
	case "generate":
		return runGenerate(args[1:], stderr)
	case "push":
		return runPush(ctx, args[1:], stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q: want generate or push", args[0])
}
