package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat/matrix/matrixtest"
	"github.com/telltale-dev/telltale/collector/chart"
	"github.com/telltale-dev/telltale/collector/collectortest"
)

const renderToken = "ci-token-0123456789abcdef"

// renderCollector starts the collector with a deploy-scoped token and
// extra args, pushes in-flight requests of web in prod every 15 s over
// the last 40 minutes, and records a deploy of web v2.0.0 20 minutes ago
// (returned).
func renderCollector(t *testing.T, args ...string) (*collectortest.Instance, time.Time) {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens.yml")
	os.WriteFile(tokens, []byte(`tokens:
  - {name: ci, token: "`+renderToken+`", scopes: [deploy, read, write]}
`), 0o600)
	in := collectortest.Start(t, append([]string{"-auth.tokens-file", tokens, "-impact.enabled=false"}, args...)...)
	hdr := map[string]string{"Authorization": "Bearer " + renderToken, "Content-Type": "application/json"}
	now := time.Now()
	var body strings.Builder
	for ts := now.Add(-40 * time.Minute); ts.Before(now); ts = ts.Add(15 * time.Second) {
		fmt.Fprintf(&body, "http_requests_in_flight{service=\"web\",env=\"prod\"} %g %d\n", 5+3*math.Sin(float64(ts.Unix())/300), ts.UnixMilli())
	}
	if code, resp := in.Post(t.Context(), "/api/v1/import/prometheus", []byte(body.String()), hdr); code/100 != 2 {
		t.Fatalf("push samples: %d %s", code, resp)
	}
	deployAt := now.Add(-20 * time.Minute).Truncate(time.Second)
	dep := fmt.Sprintf(`{"id":"d-render","service":"web","env":"prod","version":"v2.0.0","who":"alice","time":%q}`, deployAt.UTC().Format(time.RFC3339))
	if code, resp := in.Post(t.Context(), "/api/v1/deploys", []byte(dep), hdr); code != 201 {
		t.Fatalf("POST deploy: %d %s", code, resp)
	}
	return in, deployAt
}

func sameRGBA(c color.Color, want color.RGBA) bool {
	r, g, b, a := c.RGBA()
	wr, wg, wb, wa := want.RGBA()
	return r == wr && g == wg && b == wb && a == wa
}

// plotSpan finds the plot's x extent in a chart: the x axis is the row
// with the most pixels of the axis colour (markers may cross it), from its
// first such pixel to its last.
func plotSpan(img image.Image) (minX, maxX int) {
	b := img.Bounds()
	best := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		n, first, last := 0, -1, -1
		for x := b.Min.X; x < b.Max.X; x++ {
			if sameRGBA(img.At(x, y), chart.Axis) {
				n++
				if first < 0 {
					first = x
				}
				last = x
			}
		}
		if n > best {
			best, minX, maxX = n, first, last+1
		}
	}
	return minX, maxX
}

// markerColumns returns the columns holding a vertical run of at least
// 50 pixels of col: the change markers.
func markerColumns(img image.Image, col color.RGBA) []int {
	b := img.Bounds()
	var out []int
	for x := b.Min.X; x < b.Max.X; x++ {
		run := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			if sameRGBA(img.At(x, y), col) {
				run++
				if run == 50 {
					out = append(out, x)
					break
				}
			} else {
				run = 0
			}
		}
	}
	return out
}

// xOf is the column of t on a plot spanning [minX, maxX) for [start, end],
// as the chart package places it.
func xOf(t, start, end time.Time, minX, maxX int) int {
	f := float64(t.UnixMilli()-start.UnixMilli()) / float64(end.UnixMilli()-start.UnixMilli())
	return minX + int(math.Round(f*float64(maxX-minX-1)))
}

// countColour counts the pixels of col.
func countColour(img image.Image, col color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if sameRGBA(img.At(x, y), col) {
				n++
			}
		}
	}
	return n
}

// TestRenderE2E: GET /api/v1/render on the collector binary draws a
// PromQL query and a built-in panel as PNG of the asked size, with the
// series in the first palette colour and the deploy recorded before as a
// marker column at its time; an empty result says no data; bad input is
// a 400 naming the parameter; no token is a 401; every request is
// counted.
func TestRenderE2E(t *testing.T) {
	in, deployAt := renderCollector(t)
	end := time.Now().Truncate(time.Second)
	start := end.Add(-time.Hour)
	get := func(q url.Values, token string) (int, string, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, in.URL+"/api/v1/render?"+q.Encode(), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	for _, q := range []url.Values{
		{"query": {`http_requests_in_flight{service="web"}`}},
		{"panel": {"In flight"}, "var-service": {"web"}, "var-env": {"prod"}},
	} {
		q.Set("start", fmt.Sprint(start.Unix()))
		q.Set("end", fmt.Sprint(end.Unix()))
		q.Set("width", "640")
		q.Set("height", "320")
		code, ct, body := get(q, renderToken)
		if code != 200 || ct != "image/png" {
			t.Fatalf("render %v: %d %s %.300s", q, code, ct, body)
		}
		img, err := png.Decode(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("render %v: not a PNG: %v", q, err)
		}
		if b := img.Bounds(); b.Dx() != 640 || b.Dy() != 320 {
			t.Fatalf("render %v: %v; want 640x320", q, b)
		}
		if n := countColour(img, chart.Palette[0]); n < 100 {
			t.Fatalf("render %v: %d pixels of the series colour; want its line", q, n)
		}
		minX, maxX := plotSpan(img)
		want := xOf(deployAt, start, end, minX, maxX)
		cols := markerColumns(img, chart.Marker)
		if len(cols) == 0 || cols[0] != want {
			t.Fatalf("render %v: marker columns %v (plot %d..%d); want the deploy's at %d", q, cols, minX, maxX, want)
		}
	}
	code, _, body := get(url.Values{"query": {"no_such_metric"}, "range": {"30m"}}, renderToken)
	if img, err := png.Decode(bytes.NewReader(body)); code != 200 || err != nil || countColour(img, chart.Palette[0]) != 0 || countColour(img, chart.Text) < 40 {
		t.Fatalf("render of no data: %d %v; want a PNG without lines, with its no data text", code, err)
	}
	for _, tc := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{}, "give exactly one of query=<PromQL> and panel=<panel title>"},
		{url.Values{"query": {"up"}, "width": {"9000"}}, "width=\"9000\": want a whole number from 300 to 2000"},
		{url.Values{"query": {"up"}, "step": {"1s"}, "range": {"30d"}}, "step 1s gives 2592000 points per series, limit 11000"},
		{url.Values{"query": {"up"}, "start": {"yesterday"}}, "start=\"yesterday\": want RFC3339"},
		{url.Values{"panel": {"No such panel"}}, "is not a panel title of the built-in dashboards"},
		{url.Values{"panel": {"Deploy history"}}, "is not a time series"},
		{url.Values{"query": {"rate(x[5m]"}}, "query bad_data"},
	} {
		code, _, body := get(tc.q, renderToken)
		if code != 400 || !strings.Contains(string(body), tc.want) {
			t.Fatalf("render %v: %d %q; want 400 with %q", tc.q, code, body, tc.want)
		}
	}
	if code, _, _ := get(url.Values{"query": {"up"}}, ""); code != 401 {
		t.Fatalf("render without a token: %d; want 401", code)
	}
	for outcome, want := range map[string]float64{"ok": 3, "bad_request": 6, "query_error": 1} {
		name := fmt.Sprintf(`telltale_render_requests_total{source="http",outcome=%q}`, outcome)
		if got := renderMetric(t, in, name); got != want {
			t.Fatalf("%s: got %g; want %g", name, got, want)
		}
	}
}

// TestChatGraphMatrixE2E: the collector binary with -chat.matrix on a
// homeserver that follows the client-server API (matrixtest): "!graph
// In flight service=web" is answered with the panel's console link and an
// m.image whose upload is the panel's PNG, with the deploy recorded before
// as a marker column where its time falls in the last hour.
func TestChatGraphMatrixE2E(t *testing.T) {
	fake := &matrixtest.Server{Token: "syt_bot", UserID: "@telltale:test", Aliases: map[string]string{"#ops:test": "!ops:test"}, LimitUploads: 1}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	t.Setenv("TELLTALE_MATRIX_TOKEN", "syt_bot")
	in, deployAt := renderCollector(t, "-chat.matrix", hs.URL+"/#ops:test")

	// The bot hears what is said after its first sync: ask until it
	// answers.
	deadline := time.Now().Add(60 * time.Second)
	for !hasSent(fake, "m.notice", "commands: !deploys") {
		if time.Now().After(deadline) {
			t.Fatalf("the bot never answered !help; it sent %+v", fake.Sent())
		}
		fake.Say("!ops:test", "@alice:test", "!help")
		waitSent(fake, 500*time.Millisecond)
	}
	asked := time.Now()
	fake.Say("!ops:test", "@alice:test", "!graph In flight service=web")
	for !hasSent(fake, "m.image", "") {
		if time.Now().After(asked.Add(60 * time.Second)) {
			t.Fatalf("no m.image after !graph; sent %+v", fake.Sent())
		}
		waitSent(fake, time.Second)
	}
	answered := time.Now()
	var ev matrixtest.Event
	for _, e := range fake.Sent() {
		if e.MsgType == "m.image" {
			ev = e
		}
	}
	if !hasSent(fake, "m.notice", "In flight (dashboard Service): "+in.URL+"/#/d/telltale-service") {
		t.Fatalf("no text answer with the console link; sent %+v", fake.Sent())
	}
	m, ok := fake.Media(ev.URL)
	if !ok || m.ContentType != "image/png" {
		t.Fatalf("m.image url %q: upload %v %q; want an image/png upload", ev.URL, ok, m.ContentType)
	}
	img, err := png.Decode(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("the upload is not a PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != chart.DefaultWidth || b.Dy() != chart.DefaultHeight || ev.Info.W != b.Dx() || ev.Info.H != b.Dy() || ev.Info.Size != len(m.Data) || ev.Info.MimeType != "image/png" {
		t.Fatalf("image %v, info %+v, %d bytes; want %dx%d described by its info", b, ev.Info, len(m.Data), chart.DefaultWidth, chart.DefaultHeight)
	}
	if !strings.HasPrefix(ev.Body, "In flight (Service) service=web") {
		t.Fatalf("m.image body %q; want the panel's title and variables", ev.Body)
	}
	if n := countColour(img, chart.Palette[0]); n < 100 {
		t.Fatalf("%d pixels of the series colour; want the panel's line", n)
	}
	// The chart ends when the command ran: between asked and answered.
	minX, maxX := plotSpan(img)
	lo := xOf(deployAt, answered.Add(-time.Hour), answered, minX, maxX)
	hi := xOf(deployAt, asked.Add(-time.Hour), asked, minX, maxX)
	cols := markerColumns(img, chart.Marker)
	if len(cols) == 0 || cols[0] < lo || cols[0] > hi {
		t.Fatalf("marker columns %v (plot %d..%d); want the deploy's within %d..%d", cols, minX, maxX, lo, hi)
	}
	if fake.RateLimited() != 1 || fake.Uploads() != 2 {
		t.Fatalf("uploads %d, rate-limited %d; want the first limited and the second taken", fake.Uploads(), fake.RateLimited())
	}
	if got := renderMetric(t, in, `telltale_chat_images_total{network="matrix",outcome="sent"}`); got != 1 {
		t.Fatalf("telltale_chat_images_total sent: %g; want 1", got)
	}
}

func renderMetric(t *testing.T, in *collectortest.Instance, name string) float64 {
	t.Helper()
	v, err := collectortest.MetricAtAuth(t.Context(), in.URL+"/metrics", renderToken, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func hasSent(fake *matrixtest.Server, msgtype, sub string) bool {
	for _, e := range fake.Sent() {
		if e.MsgType == msgtype && strings.Contains(e.Body, sub) {
			return true
		}
	}
	return false
}

// waitSent waits until the bot sends something or at most d.
func waitSent(fake *matrixtest.Server, d time.Duration) {
	n := len(fake.Sent())
	for end := time.Now().Add(d); time.Now().Before(end) && len(fake.Sent()) == n; {
		time.Sleep(10 * time.Millisecond)
	}
}
