package console_test

import (
	"context"
	"encoding/json"
	"flag"
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

var updateScreenshots = flag.Bool("update-screenshots", os.Getenv("TELLTALE_UPDATE_SCREENSHOTS") != "",
	"write the console screenshots to testdata/screenshots (or set TELLTALE_UPDATE_SCREENSHOTS=1)")

// chromium returns the browser to drive: $TELLTALE_CHROMIUM, or chromium on
// the PATH. Without one the test is skipped, except under CI=true where a
// missing browser is a broken setup and fails.
func chromium(t *testing.T) string {
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

// browser is one headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	log []string // console messages and exceptions of the page
}

const viewW, viewH = 1440, 1000

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium(t)
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
		chromedp.WindowSize(viewW, viewH),
	)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx}
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			t.Logf("browser console:\n%s", strings.Join(b.log, "\n"))
			b.mu.Unlock()
		}
		cancel()
		cancelAlloc()
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
	b.do(chromedp.EmulateViewport(viewW, viewH))
	return b
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// open loads url afresh (a full page load, not a fragment change).
func (b *browser) open(url string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url))
}

// eval runs a JavaScript expression and decodes its JSON value into T.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript expression is truthy.
func (b *browser) waitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[json.RawMessage](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		state, _ := chromedp.Run(b.ctx, chromedp.Evaluate[json.RawMessage](`JSON.stringify({loads: window.__telltale && __telltale.loads, panels: window.__telltale && __telltale.panels, errors: window.__telltale && __telltale.errors, live: window.__telltale && __telltale.live})`))
		b.t.Fatalf("waiting for %s (%s): %v\npage state: %s", what, expr, err, state)
	}
}

// screenshot writes the viewport (or the full page) to
// testdata/screenshots/<name>.png when -update-screenshots is set.
func (b *browser) screenshot(name string, full bool) {
	b.t.Helper()
	if !*updateScreenshots {
		return
	}
	var png []byte
	var err error
	if full {
		png, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	} else {
		png, err = chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	}
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join("testdata", "screenshots", name+".png")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s (%d KiB)", p, len(png)/1024)
}

// ready waits for the console's next complete load after `after` loads.
func (b *browser) ready(after int) {
	b.t.Helper()
	b.waitFor("the console to finish loading", fmt.Sprintf(`window.__telltale && __telltale.ready && __telltale.loads > %d`, after), 45*time.Second)
}

// pageProblems returns CSP violations and script errors the page recorded.
func (b *browser) pageProblems() []string {
	b.t.Helper()
	return eval[[]string](b, `[...__telltale.csp.map(c => 'CSP violation: ' + c), ...__telltale.errors]`)
}
