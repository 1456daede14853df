package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang/snappy"
)

func postBody(body []byte, encoding string) (*httptest.ResponseRecorder, *http.Request) {
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if encoding != "" {
		r.Header.Set("Content-Encoding", encoding)
	}
	return httptest.NewRecorder(), r
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func TestReadBody(t *testing.T) {
	h := NewHandlers(NewWriter(nil, Options{}), HTTPOptions{MaxBodyBytes: 1000, MaxDecodedBytes: 4000, MaxInflightBytes: 20000})
	f := func(body []byte, encoding string, enc BodyEncoding, want []byte, wantErr error) {
		t.Helper()
		var bufs BodyBuffers
		base := h.inflight.used.Load() // what other requests hold
		w, r := postBody(body, encoding)
		got, release, err := h.ReadBody(w, r, &bufs, enc, BatchFactor)
		if !errors.Is(err, wantErr) || (wantErr == nil && !bytes.Equal(got, want)) {
			t.Fatalf("got %q, %v; want %q, %v", got, err, want, wantErr)
		}
		if h.inflight.used.Load() <= base && err == nil && len(want) > 0 {
			t.Fatalf("nothing reserved while the body is held")
		}
		release()
		if n := h.inflight.used.Load() - base; n != 0 {
			t.Fatalf("%d bytes still reserved after release", n)
		}
	}
	text := []byte("up 1\n")
	f(text, "", GzipOrIdentity, text, nil)
	f(gz(text), "gzip", GzipOrIdentity, text, nil)
	f(snappy.Encode(nil, text), "snappy", Snappy, text, nil)
	f(snappy.Encode(nil, text), "", Snappy, text, nil)
	f(text, "br", GzipOrIdentity, nil, ErrUnsupportedMediaType)
	f(text, "gzip", Snappy, nil, ErrUnsupportedMediaType)
	f(bytes.Repeat([]byte("x"), 1001), "", GzipOrIdentity, nil, ErrTooLarge)
	f(gz(make([]byte, 4001)), "gzip", GzipOrIdentity, nil, ErrTooLarge)                             // the trailer says so
	f(append(gz(make([]byte, 4001)), gz([]byte("x"))...), "gzip", GzipOrIdentity, nil, ErrTooLarge) // it hides it
	f(snappy.Encode(nil, make([]byte, 4001)), "snappy", Snappy, nil, ErrTooLarge)
	f([]byte("not gzip"), "gzip", GzipOrIdentity, nil, ErrInvalid)
	// Over the in-flight budget while another request holds most of it.
	h.inflight.used.Store(19000)
	f(gz(make([]byte, 3000)), "gzip", GzipOrIdentity, nil, ErrOverloaded)
	h.inflight.used.Store(0)
}

// FuzzReadBody: any body in any encoding is read within the limits, and
// every reserved byte is released.
func FuzzReadBody(f *testing.F) {
	f.Add([]byte("up 1\n"), uint8(0))
	f.Add(gz([]byte("up 1\n")), uint8(1))
	f.Add(snappy.Encode(nil, []byte("up 1\n")), uint8(2))
	f.Add(append(gz(make([]byte, 5000)), gz([]byte("x"))...), uint8(1))
	h := NewHandlers(NewWriter(nil, Options{}), HTTPOptions{MaxBodyBytes: 1 << 16, MaxDecodedBytes: 1 << 16, MaxInflightBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		encoding, enc := [...]string{"", "gzip", "snappy"}[kind%3], [...]BodyEncoding{GzipOrIdentity, GzipOrIdentity, Snappy}[kind%3]
		var bufs BodyBuffers
		w, r := postBody(body, encoding)
		got, release, err := h.ReadBody(w, r, &bufs, enc, BatchFactor)
		if err == nil && len(got) > 1<<16 {
			t.Fatalf("got %d decoded bytes; limit %d", len(got), 1<<16)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
		release()
		if n := h.inflight.used.Load(); n != 0 {
			t.Fatalf("%d bytes still reserved after release", n)
		}
	})
}
