package query

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"net/url"
	"testing"
)

// TestResponseEncoding: answers are encoded as Prometheus' handler encodes
// them for each Accept-Encoding (gzip, deflate or none: the first it knows
// wins, parameters are not understood), and decode to the same bytes as
// the plain answer, errors included.
func TestResponseEncoding(t *testing.T) {
	_, srv := newTestAPI(t, Options{})
	for _, path := range []string{
		"/api/v1/query?" + url.Values{"query": {"vector(1) + on() group_left vector(2)"}, "time": {"1000"}}.Encode(),
		"/api/v1/query_range?" + url.Values{"query": {`label_replace(vector(time()), "x", "y", "", "")`}, "start": {"0"}, "end": {"3600"}, "step": {"15"}}.Encode(),
		"/api/v1/query?query=sum(", // 400, a body all the same
		"/api/v1/labels",
	} {
		plain, plainStatus := fetch(t, srv.URL+path)
		for _, c := range []struct{ accept, want string }{
			{"", ""},
			{"gzip", "gzip"},
			{"gzip, deflate, br, zstd", "gzip"}, // browsers
			{"br, gzip", "gzip"},
			{"deflate, gzip", "deflate"},
			{"gzip;q=1.0", ""}, // Prometheus does not read parameters
			{"identity", ""},
		} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			if c.accept != "" {
				req.Header.Set("Accept-Encoding", c.accept)
			}
			resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := resp.Header.Get("Content-Encoding"); got != c.want {
				t.Errorf("%s with Accept-Encoding %q: Content-Encoding %q; want %q", path, c.accept, got, c.want)
				continue
			}
			var body []byte
			switch c.want {
			case "gzip":
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Fatalf("%s: not gzip: %v", path, err)
				}
				body, err = io.ReadAll(zr)
				if err != nil {
					t.Fatalf("%s: bad gzip: %v", path, err)
				}
			case "deflate":
				zr, err := zlib.NewReader(bytes.NewReader(raw)) // HTTP deflate is zlib
				if err != nil {
					t.Fatalf("%s: not deflate: %v", path, err)
				}
				body, err = io.ReadAll(zr)
				if err != nil {
					t.Fatalf("%s: bad deflate: %v", path, err)
				}
			default:
				body = raw
			}
			if resp.StatusCode != plainStatus || !bytes.Equal(body, plain) {
				t.Errorf("%s with Accept-Encoding %q: got %d %q; want %d %q", path, c.accept, resp.StatusCode, body, plainStatus, plain)
			}
		}
	}
}

// fetch returns the plain answer to GET url.
func fetch(t *testing.T, u string) ([]byte, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("GET %s with identity: Content-Encoding %q", u, resp.Header.Get("Content-Encoding"))
	}
	return b, resp.StatusCode
}
