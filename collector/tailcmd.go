package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/telltale-dev/telltale/collector/tail"
	"github.com/telltale-dev/telltale/collector/tail/client"
	"github.com/telltale-dev/telltale/secret"
)

// runTail is `collector tail`: it follows the live tail of a running
// collector and prints matching samples and deploy events as they arrive.
func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	collectorURL := fs.String("collector", "http://127.0.0.1:9470", "base URL of the collector")
	jsonOut := fs.Bool("json", false, "print each protocol message as one JSON line (for programs) instead of aligned text")
	tokenFile := fs.String("token-file", "", "file with a bearer token that has the read scope; default $TELLTALE_TOKEN")
	maxRate := fs.Float64("max-rate", 0, "ask the collector to thin the stream to this many samples per second; 0 means all")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: collector tail [flags] 'selector' ...

Prints the samples of every series matching any PromQL series selector as
the collector commits them, and deploy events as they are recorded: tail -f
for metrics. Reconnects by itself when the collector restarts.

  collector tail 'http_requests_total{job="api"}' 'up{job="api"}'
  collector tail -json '{__name__=~"http_.*"}' | jq .

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New(`tail: give at least one series selector, e.g. collector tail 'up{job="api"}'`)
	}
	token, err := secret.FileOrEnv(*tokenFile, "TELLTALE_TOKEN", "-token-file", "a token with the read scope")
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	out := bufio.NewWriter(stdout)
	p := &client.Printer{Out: out, Err: stderr, Color: wantColor(stdout)}
	handle := func(m tail.Message, raw []byte) error {
		if *jsonOut {
			out.Write(raw)
			out.WriteByte('\n')
		} else if err := p.Print(m); err != nil {
			return err
		}
		return out.Flush() // a live view: show each message at once
	}
	err = client.Follow(ctx, client.Options{
		URL: *collectorURL, Selectors: fs.Args(), MaxRate: *maxRate, Token: token,
	}, client.FollowOptions{
		OnMessage: handle,
		Logf:      func(format string, args ...any) { fmt.Fprintf(stderr, "tail: "+format+"\n", args...) },
	})
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C
	}
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	return nil
}

// wantColor reports whether w is a terminal and NO_COLOR (no-color.org) is
// unset.
func wantColor(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
