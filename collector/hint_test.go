package main

import (
	"strings"
	"testing"
)

func TestNextSteps(t *testing.T) {
	f := func(base string, want ...string) {
		t.Helper()
		got := nextSteps(base)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Fatalf("nextSteps(%q) =\n%s\nwant it to contain %q", base, got, w)
			}
		}
	}
	f("http://127.0.0.1:9470",
		"open      http://127.0.0.1:9470/",
		"go run ./instrument/demo -collector http://127.0.0.1:9470\n",
		"go run ./annotator deploy -service demo -env dev -version v1.2.3")
	f("http://127.0.0.1:9555",
		"go run ./annotator deploy -collector http://127.0.0.1:9555 -service demo -env dev")
	f("http://0.0.0.0:9470", "open      http://127.0.0.1:9470/", "go run ./annotator deploy -service demo")
	f("https://[::]:9443", "open      https://127.0.0.1:9443/")
}
