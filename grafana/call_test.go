package grafana

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gapi "github.com/grafana/grafana-api-golang-client"
)

// health is a call that reads GET /api/health.
func health(api *gapi.Client) error {
	_, err := api.Health()
	return err
}

// conn is a client of url for the tests of call.
func conn(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, "t", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCallOK(t *testing.T) {
	var gotAuth, gotPath string
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		w.Write([]byte(`{"database":"ok","version":"11.0.0"}`))
	})
	// Transport left nil: http.DefaultTransport.
	c, err := New(url, "glsa_x", WithTransport(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.call(t.Context(), "health", "", health); err != nil {
		t.Fatalf("got %v; want no error", err)
	}
	if gotAuth != "Bearer glsa_x" || gotPath != "/api/health" {
		t.Fatalf("got Authorization %q on %q; want Bearer glsa_x on /api/health", gotAuth, gotPath)
	}
}

func TestCallStatusError(t *testing.T) {
	f := func(code int, body, wantMessage, wantStatus, wantErr string) {
		t.Helper()
		url := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			w.Write([]byte(body))
		})
		err := conn(t, url).call(t.Context(), "get health", "", health)
		se, ok := errors.AsType[*StatusError](err)
		if !ok {
			t.Fatalf("HTTP %d %q: got %v; want a *StatusError", code, body, err)
		}
		if se.Op != "get health" || se.Code != code || se.Message != wantMessage || se.Status != wantStatus {
			t.Fatalf("HTTP %d %q: got %+v; want op get health, code %d, message %q, status %q", code, body, se, code, wantMessage, wantStatus)
		}
		if err.Error() != wantErr {
			t.Fatalf("HTTP %d %q: got %q; want %q", code, body, err, wantErr)
		}
	}
	// 401, 403 and 412 add what the sentinel they match says to do.
	f(401, `{"message":"Unauthorized"}`, "Unauthorized", "", "grafana get health: HTTP 401: Unauthorized; "+ErrUnauthorized.Error())
	f(412, `{"message":"The dashboard has been changed by someone else","status":"version-mismatch"}`,
		"The dashboard has been changed by someone else", "version-mismatch",
		"grafana get health: HTTP 412: The dashboard has been changed by someone else; "+ErrVersionConflict.Error())
	f(412, `{"status":"name-exists"}`, "", "name-exists", "grafana get health: HTTP 412; "+ErrNameExists.Error())
	f(502, "  <html>bad gateway</html>\n", "<html>bad gateway</html>", "", "grafana get health: HTTP 502: <html>bad gateway</html>")
	f(500, "", "", "", "grafana get health: HTTP 500")
	long := strings.Repeat("x", 10<<10)
	f(500, long, long[:maxMessage]+"…", "", "grafana get health: HTTP 500: "+long[:maxMessage]+"…")
}

// An error body of more than maxRecordedBody is cut before it is parsed:
// a JSON message past the cut is not found.
func TestCallKeepsBodyStart(t *testing.T) {
	body := `{"message":"` + strings.Repeat("m", maxRecordedBody) + `"}`
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(body))
	})
	err := conn(t, url).call(t.Context(), "op", "", health)
	se, ok := errors.AsType[*StatusError](err)
	if !ok {
		t.Fatalf("got %v; want a *StatusError", err)
	}
	if want := body[:maxMessage] + "…"; se.Message != want {
		t.Fatalf("got message of %d bytes; want the first %d bytes of the body and …", len(se.Message), maxMessage)
	}
}

func TestCallFailures(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	slow := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})

	err := conn(t, slow, WithTimeout(50*time.Millisecond)).call(t.Context(), "get health", "", health)
	if err == nil || !strings.Contains(err.Error(), "grafana get health at "+slow) || !strings.Contains(err.Error(), "is Grafana running") {
		t.Fatalf("timeout: got %v; want an error naming the call, the URL and a hint", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = conn(t, slow, WithTimeout(0)).call(ctx, "get health", "", health)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("context deadline: got %v; want context.DeadlineExceeded", err)
	}

	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	err = conn(t, srv.URL).call(t.Context(), "get health", "", health)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "is Grafana running") {
		t.Fatalf("closed server: got %v; want connection refused with a hint", err)
	}

	// The error fn returns counts when Grafana answered 2xx.
	ok := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })
	boom := errors.New("boom")
	err = conn(t, ok).call(t.Context(), "op", "", func(*gapi.Client) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("fn error: got %v; want it wrapped", err)
	}
}

// The transport given is the one used, with the call's context on every
// request.
func TestCallTransport(t *testing.T) {
	type key struct{}
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{}`)) })
	var seen int
	rt := roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.Context().Value(key{}) == "v" {
			seen++
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	ctx := context.WithValue(t.Context(), key{}, "v")
	if err := conn(t, url, WithTransport(rt)).call(ctx, "op", "", health); err != nil {
		t.Fatal(err)
	}
	if seen != 1 {
		t.Fatalf("got %d requests with the call's context; want 1", seen)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestParseURL(t *testing.T) {
	f := func(in, want, wantErr string) {
		t.Helper()
		got, err := parseURL(in)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("parseURL(%q): got %q, %v; want an error containing %q", in, got, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Fatalf("parseURL(%q): got %q, %v; want %q", in, got, err, want)
		}
	}
	f("http://grafana:3000", "http://grafana:3000", "")
	f("https://g.example/grafana//", "https://g.example/grafana", "")
	f("grafana:3000", "", "set it like http://grafana:3000")
	f("ftp://grafana", "", "not an absolute http(s) URL")
	f("http://", "", "not an absolute http(s) URL")
	f("http://a b", "", "not an absolute http(s) URL")
}

// FuzzParseBody: any error body gives, without panicking, a bounded
// message that is either the start of the body or taken from a JSON object.
func FuzzParseBody(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.body")
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/*.body")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, status := parseBody(body)
		// JSON decoding may grow an invalid byte into U+FFFD (3 bytes).
		if n := len(msg) + len(status); n > 3*len(body) && n > maxMessage+len("…") {
			t.Fatalf("got %d bytes of message from a %d-byte body; want it bounded", n, len(body))
		}
		trimmed := strings.TrimSpace(string(body))
		fromBody := status == "" && (msg == trimmed || len(trimmed) > maxMessage && msg == trimmed[:maxMessage]+"…")
		if !fromBody && !(json.Valid(body) && strings.HasPrefix(trimmed, "{")) {
			t.Fatalf("body %q: got message %q, status %q; want the start of the body or fields of a JSON object", body, msg, status)
		}
	})
}
