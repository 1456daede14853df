package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/telltale-dev/telltale/collector/rules/slo"
)

// runSLORules is `collector slo-rules FILE`: it generates the recording
// and burn-rate alerting rules of the service level objectives in FILE
// (collector/rules/slo) and prints the rule file to stdout.
func runSLORules(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector slo-rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: collector slo-rules FILE > RULES

Generates Prometheus rules from the service level objectives in FILE
(targets per service: availability, latency threshold and target):
recording rules of each service's error and slow-request ratios and
multi-window multi-burn-rate alerts on them. Load RULES with -rules.files.

  go run ./collector slo-rules rules/slo.yml > rules/slo.rules.yml
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("slo-rules: give exactly one SLO file")
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("slo-rules: %w", err)
	}
	c, err := slo.Parse(data)
	if err != nil {
		return fmt.Errorf("slo-rules: %s: %w", fs.Arg(0), err)
	}
	out, err := c.Render(fs.Arg(0))
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
