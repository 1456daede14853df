// Command bench reproduces Telltale's performance numbers side by side with
// the systems users would pick instead (VictoriaMetrics, Prometheus,
// node_exporter) on the machine it runs on, in one command:
//
//	go run ./bench install                 # peers into ~/.cache/telltale/bin (Prometheus: -peers prometheus, ~15 min)
//	go run ./bench run                     # every scenario, 3 rounds, writes bench/RESULTS.md and bench/results.png
//	go run ./bench run -scenarios ingest -peers vm -rounds 1
//	go run ./bench report                  # rewrite RESULTS.md and the chart from bench/results.json
//
// See bench/README.md for what each scenario measures.
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
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the usage is printed, and asking for it is no error
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const usage = `Usage: go run ./bench <command> [flags]

Commands:
  run      run the scenarios against Telltale and the peers, write RESULTS.md, results.json and the chart
  install  install the peers with go install into the binary cache
  report   rewrite RESULTS.md and the chart from a results.json

Run "go run ./bench <command> -h" for the flags of a command.
`

// run dispatches to the subcommand named by args[0].
func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command: want run, install or report")
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stderr)
	case "install":
		return installCommand(ctx, args[1:], stderr)
	case "report":
		return reportCommand(args[1:], stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q: want run, install or report", args[0])
}
