// Command collector is Telltale's server: it receives metrics (Prometheus
// remote write, text exposition, Influx line protocol, OTLP), stores them in
// an embedded Prometheus TSDB, serves the Prometheus query API for Grafana,
// records changes (deploys, switch flips, incidents, notes ...), streams
// a live tail and serves the web console.
//
//	go run ./collector                   # listens on 127.0.0.1:9470, data in ./telltale-data
//	go run ./collector -h                # every flag
//	go run ./collector backup DIR        # a consistent copy of the change log
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
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "collector:", err)
		os.Exit(exitCode(err))
	}
}

// run parses args, starts the collector and blocks until ctx is done and
// everything is flushed and closed.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "tail" {
		return runTail(ctx, args[1:], os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "backup" {
		return runBackup(ctx, args[1:], os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "migrate-changes" {
		return runMigrateChanges(ctx, args[1:], os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "probe" {
		return runProbe(ctx, args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "check-rules" {
		return runCheckRules(args[1:], os.Stdin, os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "slo-rules" {
		return runSLORules(args[1:], os.Stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.version {
		fmt.Fprintln(stderr, "telltale collector", buildVersion())
		return nil
	}
	logger, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return err
	}
	app, err := newApp(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return app.run(ctx)
}
