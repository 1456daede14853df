package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/tail"
)

// FuzzPrinter: any message a server (or something pretending to be one)
// sends decodes or fails cleanly, and printing it never panics, writes one
// line per sample, and puts no control characters on the terminal.
func FuzzPrinter(f *testing.F) {
	file, err := os.Open("../testdata/messages.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f.Add(sc.Text())
	}
	file.Close()
	f.Fuzz(func(t *testing.T, in string) {
		var m tail.Message
		if err := json.Unmarshal([]byte(in), &m); err != nil {
			return
		}
		var out, errOut bytes.Buffer
		p := &Printer{Out: &out, Err: &errOut, Location: time.UTC}
		if err := p.Print(m); err != nil {
			t.Fatalf("Print: %v", err)
		}
		all := out.String() + errOut.String()
		for _, r := range all {
			if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Fatalf("control character %U in output %q of %s", r, all, in)
			}
		}
		if m.Type == tail.TypeSamples {
			if got := strings.Count(out.String(), "\n"); got != len(m.Samples) {
				t.Fatalf("%d samples printed as %d lines: %q", len(m.Samples), got, out.String())
			}
		}
	})
}
