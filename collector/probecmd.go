package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runProbe is `collector probe [-timeout 5s] URL`: GET URL and exit 0 on a
// 2xx answer, 1 otherwise. It is the container healthcheck of
// docker-compose.yml (the distroless image has no shell, curl or wget):
//
//	telltale-collector probe http://127.0.0.1:9470/readyz
func runProbe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 5*time.Second, "how long the request may take")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: collector probe [-timeout 5s] URL\n\nGET URL; exit 0 on a 2xx answer (a container healthcheck, e.g. http://127.0.0.1:9470/readyz).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("probe: want exactly one URL, e.g. http://127.0.0.1:9470/readyz")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("probe: %s answered %s: %s", fs.Arg(0), resp.Status, body)
	}
	return nil
}
