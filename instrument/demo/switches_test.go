package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telltale-dev/telltale/instrument"
)

func newTestBoard() (*switchboard, *instrument.Registry) {
	reg := instrument.NewRegistry(instrument.RegistryOptions{})
	return newSwitchboard(reg, slog.New(slog.DiscardHandler)), reg
}

// seriesLine returns the registry's exposition line for series, or "".
func seriesLine(reg *instrument.Registry, s string) string {
	for line := range strings.Lines(string(reg.AppendPrometheus(nil))) {
		if strings.HasPrefix(line, s+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func TestSwitchUpdate(t *testing.T) {
	b, reg := newTestBoard()
	on, off := true, false
	rate, lat := 0.5, 100
	f := func(name string, want string) {
		t.Helper()
		if got := seriesLine(reg, name); got != name+" "+want {
			t.Errorf("got %q; want %q", got, name+" "+want)
		}
	}
	f(`telltale_switch_on{switch="slow_checkout"}`, "0")
	f(`telltale_switch_flips_total{switch="slow_checkout"}`, "0")

	s, err := b.update("slow_checkout", switchUpdate{Enabled: &on, ErrorRate: &rate, LatencyMs: &lat}, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Enabled || s.ErrorRate != 0.5 || s.LatencyMs != 100 {
		t.Errorf("got %+v; want enabled, 0.5, 100ms", s)
	}
	f(`telltale_switch_on{switch="slow_checkout"}`, "1")
	f(`demo_switch_error_rate{switch="slow_checkout"}`, "0.5")
	f(`demo_switch_latency_seconds{switch="slow_checkout"}`, "0.1")
	f(`telltale_switch_flips_total{switch="slow_checkout"}`, "1")

	// changing only the rate is not a flip
	rate = 0.1
	if _, err := b.update("slow_checkout", switchUpdate{ErrorRate: &rate}, "", false); err != nil {
		t.Fatal(err)
	}
	f(`telltale_switch_flips_total{switch="slow_checkout"}`, "1")
	if s, _ := b.get("slow_checkout"); !s.Enabled || s.LatencyMs != 100 || s.ErrorRate != 0.1 {
		t.Errorf("partial update: got %+v; want enabled, 0.1, 100ms kept", s)
	}
	if _, err := b.update("slow_checkout", switchUpdate{Enabled: &off}, "", false); err != nil {
		t.Fatal(err)
	}
	f(`telltale_switch_flips_total{switch="slow_checkout"}`, "2")
	f(`telltale_switch_on{switch="slow_checkout"}`, "0")
}

func TestSwitchUpdateErrors(t *testing.T) {
	b, _ := newTestBoard()
	f := func(name string, u switchUpdate, wantInErr string) {
		t.Helper()
		_, err := b.update(name, u, "", false)
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("update(%q, %+v): got %v; want an error mentioning %q", name, u, err, wantInErr)
		}
	}
	bad, neg, big := 1.5, -1, 70_000
	on := true
	f("nope", switchUpdate{Enabled: &on}, "use one of recommendations, search, slow_checkout")
	f("search", switchUpdate{ErrorRate: &bad}, "error_rate=1.5")
	f("search", switchUpdate{LatencyMs: &neg}, "latency_ms=-1")
	f("search", switchUpdate{LatencyMs: &big}, "latency_ms=70000")
}

func TestDecodeSwitchUpdate(t *testing.T) {
	f := func(body, wantInErr string) {
		t.Helper()
		_, err := decodeSwitchUpdate(strings.NewReader(body))
		switch {
		case wantInErr == "" && err != nil:
			t.Errorf("decode(%q): got %v; want no error", body, err)
		case wantInErr != "" && (err == nil || !strings.Contains(err.Error(), wantInErr)):
			t.Errorf("decode(%q): got %v; want an error mentioning %q", body, err, wantInErr)
		}
	}
	f(`{"enabled":true}`, "")
	f(`{"error_rate":0.2,"latency_ms":300}`, "")
	f(`{"enabld":true}`, `unknown field "enabld"`)
	f(`{}`, "sets nothing")
	f(`{"enabled":"yes"}`, "cannot parse")
	f(`{"enabled":true} {"enabled":false}`, "data after the JSON object")
	f(`{"enabled":true,"enabled":false}`, `key "enabled" appears twice`)
	f(`{"on":true,"enabled":false}`, "on and enabled differently")
	f(`{"on":false,"reason":"back to normal","who":"bob"}`, "")
	f("{\"on\":true,\"reason\":\"\xff\"}", "not valid UTF-8")
	f(``, "cannot parse")
}

func FuzzDecodeSwitchUpdate(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		u, err := decodeSwitchUpdate(bytes.NewReader(body))
		if err != nil {
			return
		}
		if u.Enabled == nil && u.ErrorRate == nil && u.LatencyMs == nil {
			t.Fatalf("accepted an update that sets nothing: %q", body)
		}
		// an accepted body re-encodes to one that decodes the same
		again, err := decodeSwitchUpdate(bytes.NewReader(mustJSON(t, u)))
		if err != nil {
			t.Fatalf("round trip of %q failed: %v", body, err)
		}
		if !equalUpdate(u, again) {
			t.Fatalf("round trip of %q: got %+v; want %+v", body, again, u)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equalUpdate(a, b switchUpdate) bool {
	eq := func(x, y any) bool { return mustJSONString(x) == mustJSONString(y) }
	return eq(a.Enabled, b.Enabled) && eq(a.ErrorRate, b.ErrorRate) && eq(a.LatencyMs, b.LatencyMs)
}

func mustJSONString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSwitchesHTTP(t *testing.T) {
	b, reg := newTestBoard()
	mux := http.NewServeMux()
	b.register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	f := func(method, path, body string, wantCode int, wantInBody string) {
		t.Helper()
		code, out := do(method, path, body)
		if code != wantCode || !strings.Contains(out, wantInBody) {
			t.Errorf("%s %s %s: got %d %s; want %d containing %q", method, path, body, code, out, wantCode, wantInBody)
		}
	}
	f("GET", "/switches", "", 200, `"slow_checkout":{"enabled":false`)
	f("POST", "/switches/slow_checkout", `{"enabled":true,"latency_ms":50}`, 200, `"enabled":true,"error_rate":0.2,"latency_ms":50`)
	f("GET", "/switches/slow_checkout", "", 200, `"enabled":true`)
	f("POST", "/switches/slow_checkout", `{"enabled":1}`, 400, "cannot parse switch update")
	f("POST", "/switches/nope", `{"enabled":true}`, 404, "unknown switch")
	f("GET", "/switches/nope", "", 404, "use one of")
	f("POST", "/switches/search", `{"error_rate":2}`, 400, "error_rate=2 is out of range")
	if got := seriesLine(reg, `telltale_switch_flips_total{switch="slow_checkout"}`); !strings.HasSuffix(got, " 1") {
		t.Errorf("flips after one POST that flipped: got %q; want 1", got)
	}
}

// TestShopSwitches: the switches change what the endpoints answer.
func TestShopSwitches(t *testing.T) {
	b, reg := newTestBoard()
	mux := http.NewServeMux()
	(&shop{sw: b, reg: reg}).register(mux)
	get := func(method, path, body string) int {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code
	}
	if code := get("GET", "/api/search?q=x", ""); code != 200 && code != 500 {
		t.Errorf("search on: got %d; want 200 (or a rare 500)", code)
	}
	off := false
	b.update("search", switchUpdate{Enabled: &off}, "", false)
	if code := get("GET", "/api/search?q=x", ""); code != http.StatusServiceUnavailable {
		t.Errorf("search off: got %d; want 503", code)
	}

	on, always, none := true, 1.0, 0
	b.update("slow_checkout", switchUpdate{Enabled: &on, ErrorRate: &always, LatencyMs: &none}, "", false)
	for range 5 {
		if code := get("POST", "/api/checkout", `{"kind":"book","qty":1}`); code != 500 {
			t.Errorf("checkout with error_rate 1: got %d; want 500", code)
		}
	}
	b.update("slow_checkout", switchUpdate{Enabled: &off}, "", false)
	ok := 0
	for range 20 {
		if get("POST", "/api/checkout", `{"kind":"book","qty":2}`) == 200 {
			ok++
		}
	}
	if ok < 15 {
		t.Errorf("checkout with the switch off: %d of 20 succeeded; want nearly all (1%% errors)", ok)
	}
	if got := seriesLine(reg, `demo_orders_placed_total{kind="book"}`); got != `demo_orders_placed_total{kind="book"} `+itoa(2*ok) {
		t.Errorf("orders: got %q; want %d", got, 2*ok)
	}
	if code := get("POST", "/api/checkout", `{"qty":1}`); code != 400 {
		t.Errorf("checkout without kind: got %d; want 400", code)
	}
	if code := get("GET", "/api/products/0", ""); code != 404 {
		t.Errorf("product 0: got %d; want 404", code)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
