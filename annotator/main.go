// Command annotator records changes in Telltale from CI pipelines and
// terminals: `annotator deploy`, `annotator run -- ./deploy.sh`, `annotator
// note`, `annotator incident open|close`, `annotator switch`, and lists
// them with `annotator deploys` and `annotator changes -q ...`. Run
// `annotator -h` for the flags, environment variables and exit codes. The
// code lives in annotator/cli.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/telltale-dev/telltale/annotator/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := cli.Run(ctx, args, cli.IO{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
	if !cli.Silent(err) {
		fmt.Fprintf(stderr, "annotator: %v\n", err)
	}
	return err
}
