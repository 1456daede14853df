// Command demo is a small shop service instrumented with package
// instrument: endpoints of different latency and error rate, a built-in
// load loop, and contingency switches (instrument switches) whose flips
// are recorded at the collector as switch changes and show on the
// dashboards. It pushes to a collector or serves /metrics.
//
//	go run ./instrument/demo -collector http://127.0.0.1:9470 -listen 127.0.0.1:8080
//	curl -d '{"on":true,"reason":"try a bad deploy","who":"me"}' 127.0.0.1:8080/switches/slow_checkout
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/telltale-dev/telltale/instrument"
	"github.com/telltale-dev/telltale/secret"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the usage is printed, and asking for it is no error
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// buildVersion is set by release builds: -ldflags "-X main.buildVersion=v1.2.3"
// (the Dockerfile does); "" takes the version from the Go build info.
var buildVersion = ""

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	collector := fs.String("collector", "", "collector base URL to push to, e.g. http://127.0.0.1:9470; empty: no push, scrape /metrics instead")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve the shop API, /switches and /metrics on")
	service := fs.String("service", "demo", "service label")
	env := fs.String("env", "dev", "env label")
	version := fs.String("version", buildVersion, "version label of telltale_build_info (default: the Go build info's version, \"devel\" for go run)")
	commit := fs.String("commit", "", "commit label of telltale_build_info (default: from the build)")
	tokenFile := fs.String("token-file", "", "file holding the collector's bearer token (write scope)")
	interval := fs.Duration("interval", 10*time.Second, "push interval")
	load := fs.Float64("load", 10, "requests per second the built-in load loop sends to the shop; 0 turns it off")
	switchTokens := fs.String("switch.tokens-file", "", "file of the tokens that may flip switches at POST /switches/<name>, one \"name token\" per line (the name is recorded as who); empty: flips need no token")
	switchURL := fs.String("switch.url", "", "URL of /switches as the collector reaches it, announced so the console and `annotator switch` can flip switches (default: http://<listen address>/switches)")
	dryRun := fs.Bool("dry-run", false, "check the flags and the token files, then exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: all settings are flags, see -help", fs.Args())
	}
	if *load < 0 || *load > 10_000 {
		return fmt.Errorf("-load=%v is out of range: use requests per second from 0 (off) to 10000", *load)
	}
	if *interval <= 0 {
		return fmt.Errorf("-interval=%s must be positive, e.g. 10s", *interval)
	}
	var token string
	if *tokenFile != "" {
		var err error
		if token, err = secret.Read(*tokenFile, "-token-file", "the collector token"); err != nil {
			return err
		}
	}
	var tokens map[string]string
	if *switchTokens != "" {
		t, err := readSwitchTokens(*switchTokens)
		if err != nil {
			return err
		}
		tokens = t
	}
	base := slog.New(slog.NewTextHandler(stderr, nil))
	log := base.With("component", "demo")
	opts := instrument.Options{
		Collector: *collector, Service: *service, Env: *env, Version: *version, Commit: *commit,
		Token: token, Interval: *interval, Logger: base, // instrument adds its own component
		SwitchTokens: tokens, SwitchURL: *switchURL,
	}
	if *dryRun {
		return opts.Validate()
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on -listen=%s: %w", *listen, err)
	}
	if opts.SwitchURL == "" {
		// The listen address, as a collector on this host reaches it: an
		// unspecified address (0.0.0.0, ::) is not one to dial.
		addr := ln.Addr().(*net.TCPAddr)
		host := addr.IP.String()
		if addr.IP.IsUnspecified() {
			host = "127.0.0.1"
		}
		opts.SwitchURL = "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)) + "/switches"
	}
	reg := instrument.Default()
	mux := http.NewServeMux()
	sw := newSwitchboard(reg, log) // declares the switches before Start announces them
	sw.register(mux)
	(&shop{sw: sw, reg: reg}).register(mux)
	mux.Handle("GET /metrics", reg.Handler())
	// Not ctx: the pusher must outlive the shutdown below, and stop pushes
	// what it counted.
	stop, err := reg.Start(context.WithoutCancel(ctx), opts)
	if err != nil {
		ln.Close()
		return err
	}
	defer stop()
	srv := &http.Server{Handler: instrument.Middleware(mux), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "collector", *collector, "load_rps", *load)

	loadDone := make(chan struct{})
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	go func() {
		defer close(loadDone)
		if *load > 0 {
			newLoadGen(reg, "http://"+ln.Addr().String(), *load).run(loadCtx)
		}
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("server stopped: %w", err)
	}
	log.Info("shutting down")
	stopLoad()
	<-loadDone
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("cannot drain requests: %w", err)
	}
	return nil
}
