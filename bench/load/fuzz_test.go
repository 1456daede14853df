package load

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeAnswer feeds arbitrary bytes to the Prometheus API answer
// decoder: it must return an answer or an error, never panic, and a decoded
// vector sums or fails cleanly, and so do its series and a label-values
// list.
func FuzzDecodeAnswer(f *testing.F) {
	files, err := filepath.Glob("testdata/answers/*.json")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata/answers: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeAnswer(body)
		if err != nil {
			if r != nil {
				t.Fatalf("got an answer and an error %v", err)
			}
			return
		}
		_, _ = r.vectorSum()
		_, ss, _ := r.result()
		for _, s := range ss {
			for _, p := range s.Values {
				_, _ = sampleValue(p)
			}
		}
		var vals []string
		_ = json.Unmarshal(r.Data, &vals) // a label-values answer
	})
}
