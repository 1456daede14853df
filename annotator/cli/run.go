package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/telltale-dev/telltale/annotator/changes"
	"github.com/telltale-dev/telltale/annotator/client"
)

func runRun(ctx context.Context, args []string, sys IO) error {
	var f deployFlags
	fs := newFlagSet("run", "run -service S [flags] -- command [args...]", sys)
	f.register(fs, sys.Getenv)
	if err := parse(fs, args); err != nil {
		return err
	}
	command := fs.Args()
	if len(command) == 0 {
		return usageError("missing command: annotator run -service api -- ./deploy.sh")
	}
	req, err := f.request()
	if err != nil {
		return err
	}
	if req.ID == "" {
		req.ID = client.NewID() // the end must find the start
	}
	cl, err := f.client(sys.Getenv)
	if err != nil {
		return err
	}
	// Recording outlives a forwarded Ctrl-C: the end must still be recorded.
	rctx := context.WithoutCancel(ctx)
	start := time.Now().UTC()
	startReq := req
	startReq.Status = changes.StatusRunning
	started, startErr := cl.Create(rctx, startReq)
	for _, w := range started.Warnings {
		fmt.Fprintf(sys.Stderr, "annotator: warning: %s\n", w)
	}
	if startErr != nil {
		fmt.Fprintf(sys.Stderr, "annotator: warning: cannot record the start of deploy %s: %v; running the command anyway\n", req.ID, startErr)
	} else {
		fmt.Fprintf(sys.Stderr, "annotator: deploy %s of %s started\n", req.ID, req.Service)
	}

	code, status, runErr := execute(command, sys)
	end := time.Now().UTC()

	endReq := req
	endReq.Status = status
	if startErr != nil {
		// The start is not recorded: the end creates the deploy, so it
		// carries both times from this clock. When the start is recorded,
		// both times are left to the collector's clock (a status without
		// end_time closes a running deploy now), so clock skew between CI
		// runner and collector cannot put the end before the start, and a
		// second run in the same CI job updates the deploy instead of
		// conflicting with its start time.
		endReq.Time = start.Format(time.RFC3339Nano)
		endReq.EndTime = end.Format(time.RFC3339Nano)
	}
	if _, err := cl.Create(rctx, endReq); err != nil {
		fmt.Fprintf(sys.Stderr, "annotator: warning: cannot record the end of deploy %s: %v\n", req.ID, err)
	} else {
		fmt.Fprintf(sys.Stderr, "annotator: deploy %s finished: %s (exit code %d) after %s\n", req.ID, status, code, end.Sub(start).Round(time.Millisecond))
	}
	if code == 0 {
		return nil
	}
	return &ExitError{Code: code, Err: runErr}
}

// execute runs command with the process's stdio, forwarding signals to it,
// and returns its exit code and the deploy status that follows from it.
// err is set only when the command could not be started.
func execute(command []string, sys IO) (code int, status string, err error) {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sys.Stdin, sys.Stdout, sys.Stderr
	if err := cmd.Start(); err != nil {
		return ExitCannotRun, changes.StatusFailed, fmt.Errorf("cannot start %q: %w", command[0], err)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	var interrupted atomic.Bool
	go func() {
		for {
			select {
			case s := <-sigs:
				interrupted.Store(true)
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	code = 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		code = ExitFailure
	}
	switch {
	case code == 0:
		return 0, changes.StatusSuccess, nil
	case interrupted.Load():
		return code, changes.StatusCancelled, nil
	}
	return code, changes.StatusFailed, nil
}

// forwardedSignals are passed on to the wrapped command.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
