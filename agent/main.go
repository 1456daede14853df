// Command telltale-agent runs on every host: it collects the host's metrics
// (node_exporter's names), scrapes the local apps' /metrics endpoints and
// pushes everything to the Telltale collector over Prometheus remote write,
// keeping it in a bounded on-disk spool while the collector is unreachable.
// See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the usage is printed, and asking for it is no error
		}
		fmt.Fprintln(os.Stderr, "telltale-agent:", err)
		os.Exit(2)
	}
}

// run parses the flags, checks the configuration and runs the agent until
// ctx is done.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	if cfg.printVersion {
		fmt.Fprintln(stderr, "telltale-agent", version)
		return nil
	}
	if cfg.instance == "" {
		cfg.instance = hostname()
	}
	if cfg.checkConfig {
		fmt.Fprintf(stderr, "configuration OK: collector %s, interval %s, instance %s, %d labels, %d scrape jobs (%d static targets, %d service discovery configs), spool %s (max %d bytes)\n",
			cfg.collector, cfg.interval, cfg.instance, len(cfg.labels), len(cfg.jobs), staticTargets(cfg.jobs), len(cfg.discovery), cfg.spoolDir, cfg.spoolMaxBytes)
		return nil
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.logLevel))
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	for _, d := range cfg.deprecated {
		logger.Warn("deprecated flag", "component", "agent", "fix", d)
	}
	return runAgent(ctx, cfg, logger)
}
