package console

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// FuzzHeaders feeds the two request headers the console parses,
// Accept-Encoding and If-None-Match, seeded from testdata/headers.txt: no
// panic, and the answers agree with simple facts about the input.
func FuzzHeaders(f *testing.F) {
	file, err := os.Open("testdata/headers.txt")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f.Add(sc.Text())
	}
	file.Close()
	const etag = `"5fccfecb2564eb5df9d8dac8"`
	f.Fuzz(func(t *testing.T, h string) {
		if acceptsGzip(h) && !strings.Contains(strings.ToLower(h), "gzip") {
			t.Errorf("acceptsGzip(%q) = true without gzip in the header", h)
		}
		if etagMatch(h, etag) && !strings.Contains(h, etag) && !strings.Contains(h, "*") {
			t.Errorf("etagMatch(%q) = true without the ETag or * in the header", h)
		}
		if !etagMatch(h+", "+etag, etag) {
			t.Errorf("etagMatch(%q) = false with the ETag appended", h+", "+etag)
		}
	})
}
