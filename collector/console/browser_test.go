package console_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/telltale-dev/telltale/collector/console/consoletest"
)

var updateScreenshots = flag.Bool("update-screenshots", os.Getenv("TELLTALE_UPDATE_SCREENSHOTS") != "",
	"write the console screenshots to testdata/screenshots (or set TELLTALE_UPDATE_SCREENSHOTS=1)")

// The console's tests drive Chromium through consoletest; these short
// names keep them readable.

const viewW, viewH = consoletest.ViewW, consoletest.ViewH

func chromium(t *testing.T) string { t.Helper(); return consoletest.Chromium(t) }

// browser is one headless Chromium tab.
type browser struct{ b *consoletest.Browser }

func newBrowser(t *testing.T) *browser { t.Helper(); return &browser{consoletest.NewBrowser(t)} }

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) { b.b.Do(actions...) }

// open loads url afresh (a full page load, not a fragment change).
func (b *browser) open(url string) { b.b.Open(url) }

// eval runs a JavaScript expression and decodes its JSON value into T.
func eval[T any](b *browser, expr string) T { return consoletest.Eval[T](b.b, expr) }

// waitFor waits until the JavaScript expression is truthy.
func (b *browser) waitFor(what, expr string, timeout time.Duration) { b.b.WaitFor(what, expr, timeout) }

// ready waits for the console's next complete load after `after` loads.
func (b *browser) ready(after int) { b.b.Ready(after) }

// pageProblems returns CSP violations and script errors the page recorded.
func (b *browser) pageProblems() []string { return b.b.PageProblems() }

// screenshot writes the viewport (or the full page) to
// testdata/screenshots/<name>.png when -update-screenshots is set.
func (b *browser) screenshot(name string, full bool) {
	if *updateScreenshots {
		b.b.Screenshot(filepath.Join("testdata", "screenshots", name+".png"), full)
	}
}
