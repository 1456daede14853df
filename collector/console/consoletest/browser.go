// Package consoletest drives the web console in a real headless Chromium
// (Debian's chromium package, through chromedp) for end-to-end tests: the
// console's own tests and the first-run test that follows the README.
//
// Chromium returns the browser to use and skips the test without one,
// except under CI=true, where a missing browser fails the test. Every wait
// is for a condition in the page (WaitFor, Ready), never a fixed time.
package consoletest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium returns the browser to drive: $TELLTALE_CHROMIUM, or chromium on
// the PATH. Without one the test is skipped, except under CI=true where a
// missing browser is a broken setup and fails.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TELLTALE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const how = "install it with `apt-get update && apt-get install -y chromium` (Debian; .ci/run does this) or point TELLTALE_CHROMIUM at a Chrome/Chromium binary"
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium not found and CI=true: the browser tests must run in CI; %s", how)
	}
	t.Skipf("chromium not found: %s", how)
	return ""
}

// Browser is one headless Chromium tab, closed when the test ends.
type Browser struct {
	t   testing.TB
	ctx context.Context
	mu  sync.Mutex
	log []string // console messages and exceptions of the page
}

// Viewport size of every Browser, in CSS pixels.
const ViewW, ViewH = 1440, 1000

// NewBrowser starts Chromium (see Chromium) with one tab. When the test
// failed, the page's console messages and exceptions are logged.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	path := Chromium(t)
	// Not t.TempDir: Chromium's helpers may still write there for a moment
	// after the browser is gone, and TempDir's cleanup fails on that.
	dir, err := os.MkdirTemp("", "telltale-console-chromium")
	if err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(ViewW, ViewH),
	)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			t.Logf("browser console:\n%s", strings.Join(b.log, "\n"))
			b.mu.Unlock()
		}
		cancel()
		cancelAlloc()
		// Chromium's helpers may hold files a moment after exiting.
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := chromedp.Listen(ctx, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			line = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			line = "exception: " + (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error()
		default:
			return
		}
		b.mu.Lock()
		b.log = append(b.log, line)
		b.mu.Unlock()
	}); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	b.Do(chromedp.EmulateViewport(ViewW, ViewH))
	return b
}

// Do runs chromedp actions, failing the test on error (60 s at most).
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// Open loads url afresh (a full page load, not a fragment change).
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.Do(chromedp.Navigate(url))
}

// Eval runs a JavaScript expression (awaiting a promise) and decodes its
// JSON value into T.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor waits until the JavaScript expression is truthy; after timeout
// it fails the test with the console's state (loads, panels, errors).
func (b *Browser) WaitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[json.RawMessage](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		state, _ := chromedp.Run(b.ctx, chromedp.Evaluate[json.RawMessage](`JSON.stringify({loads: window.__telltale && __telltale.loads, panels: window.__telltale && __telltale.panels, errors: window.__telltale && __telltale.errors, live: window.__telltale && __telltale.live})`))
		b.t.Fatalf("waiting for %s (%s): %v\npage state: %s", what, expr, err, state)
	}
}

// Ready waits for the console's next complete load after `after` loads.
func (b *Browser) Ready(after int) {
	b.t.Helper()
	b.WaitFor("the console to finish loading", fmt.Sprintf(`window.__telltale && __telltale.ready && __telltale.loads > %d`, after), 45*time.Second)
}

// PageProblems returns CSP violations and script errors the page recorded.
func (b *Browser) PageProblems() []string {
	b.t.Helper()
	return Eval[[]string](b, `[...__telltale.csp.map(c => 'CSP violation: ' + c), ...__telltale.errors]`)
}

// Screenshot writes the viewport (or the full page) as a PNG to path.
func (b *Browser) Screenshot(path string, full bool) {
	b.t.Helper()
	var png []byte
	var err error
	if full {
		png, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	} else {
		png, err = chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	}
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s (%d KiB)", path, len(png)/1024)
}
