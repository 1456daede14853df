package changes

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// readFixtures returns the files of testdata/<dir>/*.json by base name.
func readFixtures(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no testdata/%s/*.json: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// readRequests returns the deploy request fixtures.
func readRequests(tb testing.TB) map[string][]byte { return readFixtures(tb, "requests") }

// TestDecodeTestdata: the good fixtures decode, the bad-* ones do not.
func TestDecodeTestdata(t *testing.T) {
	for name, b := range readRequests(t) {
		_, err := DecodeDeploy(bytes.NewReader(b), t0)
		if bad := strings.HasPrefix(name, "bad-"); bad != (err != nil) {
			t.Errorf("%s: got error %v; want error: %v", name, err, bad)
		}
	}
}

func TestDecodeDefaults(t *testing.T) {
	req, err := DecodeDeploy(strings.NewReader(`{"service":"api","time":"","end_time":null,"status":""}`), t0.Add(123456*time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	if req.HasTime || !req.Time.Equal(t0) || req.EndTime != nil || req.Status != "" {
		t.Fatalf("got %+v; want time = now truncated to ms, no end, no status", req)
	}
	if d := req.Change(); d.Status != StatusSuccess {
		t.Fatalf("default status: got %q; want success", d.Status)
	}
}

// checkRequest asserts what every accepted request promises.
func checkRequest(t *testing.T, req Request) {
	t.Helper()
	if !validLabelValue(req.Service, maxServiceLen) || (req.Env != "" && !validLabelValue(req.Env, maxEnvLen)) {
		t.Fatalf("accepted unsafe service/env %q/%q", req.Service, req.Env)
	}
	if req.ID != "" && !validID(req.ID) {
		t.Fatalf("accepted bad id %q", req.ID)
	}
	if len(req.Version) > maxVersionLen || len(req.Commit) > maxCommitLen || len(req.Who) > maxWhoLen || len(req.Message) > MaxMessageBytes || len(req.Link) > maxLinkLen {
		t.Fatalf("accepted oversized field: %+v", req)
	}
	for _, v := range []string{req.Version, req.Commit, req.Who} {
		if !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\n\r\t") {
			t.Fatalf("accepted label value with control characters: %q", v)
		}
	}
	if req.Link != "" {
		u, err := url.Parse(req.Link)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("accepted link %q", req.Link)
		}
	}
	if req.Status != "" && checkStatus(req.Status) != nil {
		t.Fatalf("accepted status %q", req.Status)
	}
	if req.Time.IsZero() || req.Time.Sub(t0) > MaxFuture || req.Time.Location() != time.UTC {
		t.Fatalf("accepted time %v", req.Time)
	}
	if req.EndTime != nil && req.EndTime.Before(req.Time) {
		t.Fatalf("accepted end %v before time %v", req.EndTime, req.Time)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, b := range readRequests(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeDeploy(bytes.NewReader(data), t0)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status != 400 || re.Reason == "" || re.Msg == "" {
				t.Fatalf("got error %#v; want a *RequestError with status 400, a reason and a message", err)
			}
			return
		}
		checkRequest(t, req)
		// Round trip: what we accepted re-encodes to the same request.
		enc := encodeRequest(req)
		again, err := DecodeRequest(bytes.NewReader(enc), t0)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if again.ID != req.ID || again.Service != req.Service || again.Env != req.Env || again.Version != req.Version ||
			again.Commit != req.Commit || again.Who != req.Who || again.Message != req.Message || again.Link != req.Link ||
			again.Status != req.Status || again.HasTime != req.HasTime || !again.Time.Equal(req.Time) || !sameTime(again.EndTime, req.EndTime) {
			t.Fatalf("round trip:\ngot  %+v\nwant %+v", again, req)
		}
	})
}

func FuzzDecodePatch(f *testing.F) {
	f.Add([]byte(`{"end_time":"2024-05-01T12:00:00Z"}`))
	f.Add([]byte(`{"status":"failed"}`))
	f.Add([]byte(`{"status":"running","end_time":"2024-05-01T12:00:00Z"}`))
	f.Add([]byte(`{"version":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodePatch(bytes.NewReader(data), t0)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status != 400 || re.Msg == "" {
				t.Fatalf("got error %#v; want a 400 *RequestError", err)
			}
			return
		}
		if c.EndTime == nil && c.Status == "" {
			t.Fatalf("accepted an empty change")
		}
		if c.Status != "" && checkStatus(c.Status) != nil || c.Status == StatusRunning && c.EndTime != nil {
			t.Fatalf("accepted change %+v", c)
		}
	})
}

func BenchmarkDecodeRequest(b *testing.B) {
	data := readRequests(b)["full.json"]
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeDeploy(bytes.NewReader(data), t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
