package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang/snappy"

	"github.com/telltale-dev/telltale/samples"
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
	f := func(body []byte, encoding string, enc bodyEncoding, want []byte, wantErr error) {
		t.Helper()
		var bufs bodyBuffers
		base := h.inflight.used.Load() // what other requests hold
		w, r := postBody(body, encoding)
		got, release, err := h.readBody(w, r, &bufs, enc, batchFactor)
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
	f(text, "", gzipOrIdentity, text, nil)
	f(gz(text), "gzip", gzipOrIdentity, text, nil)
	f(snappy.Encode(nil, text), "snappy", snappyBody, text, nil)
	f(snappy.Encode(nil, text), "", snappyBody, text, nil)
	f(text, "br", gzipOrIdentity, nil, ErrUnsupportedMediaType)
	f(text, "gzip", snappyBody, nil, ErrUnsupportedMediaType)
	f(bytes.Repeat([]byte("x"), 1001), "", gzipOrIdentity, nil, ErrTooLarge)
	f(gz(make([]byte, 4001)), "gzip", gzipOrIdentity, nil, ErrTooLarge)                             // the trailer says so
	f(append(gz(make([]byte, 4001)), gz([]byte("x"))...), "gzip", gzipOrIdentity, nil, ErrTooLarge) // it hides it
	f(snappy.Encode(nil, make([]byte, 4001)), "snappy", snappyBody, nil, ErrTooLarge)
	f([]byte("not gzip"), "gzip", gzipOrIdentity, nil, ErrInvalid)
	// Over the in-flight budget while another request holds most of it.
	h.inflight.used.Store(19000)
	f(gz(make([]byte, 3000)), "gzip", gzipOrIdentity, nil, ErrOverloaded)
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
		encoding, enc := [...]string{"", "gzip", "snappy"}[kind%3], [...]bodyEncoding{gzipOrIdentity, gzipOrIdentity, snappyBody}[kind%3]
		var bufs bodyBuffers
		w, r := postBody(body, encoding)
		got, release, err := h.readBody(w, r, &bufs, enc, batchFactor)
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

func TestTrimAndResetBatch(t *testing.T) {
	small := bodyBuffers{Raw: make([]byte, 0, 1<<10), Decoded: make([]byte, 0, 1<<10)}
	small.trim()
	if cap(small.Raw) != 1<<10 || cap(small.Decoded) != 1<<10 {
		t.Fatalf("small buffers: got caps %d, %d; want both kept", cap(small.Raw), cap(small.Decoded))
	}
	big := bodyBuffers{Raw: make([]byte, 0, 8<<20+1), Decoded: make([]byte, 0, 32<<20+1)}
	big.trim()
	if big.Raw != nil || big.Decoded != nil {
		t.Fatalf("big buffers: got caps %d, %d; want both dropped", cap(big.Raw), cap(big.Decoded))
	}

	var b samples.Batch
	b.StartSeries([]byte("k"))
	b.AddLabel("__name__", "up")
	b.AddSample(1, 1)
	resetBatch(&b)
	if len(b.Series) != 0 || len(b.Labels) != 0 || b.Len() != 0 || cap(b.Samples) == 0 {
		t.Fatalf("small batch: got %d series, %d samples, cap %d; want empty with its capacity kept", len(b.Series), b.Len(), cap(b.Samples))
	}
	b.Samples = make([]samples.Sample, 0, 1<<20+1)
	resetBatch(&b)
	if cap(b.Samples) != 0 {
		t.Fatalf("big batch: got samples cap %d; want dropped", cap(b.Samples))
	}
}
