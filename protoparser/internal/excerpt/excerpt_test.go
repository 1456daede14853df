package excerpt

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := Quote([]byte(in)); got != want {
			t.Fatalf("Quote(%q): got %s; want %s", in, got, want)
		}
	}
	f("", `""`)
	f(`up{job="a"} 1`, `"up{job=\"a\"} 1"`)
	f("a\tb\x00\xff", `"a\tb\x00\xff"`)
	f(strings.Repeat("x", MaxLen), `"`+strings.Repeat("x", MaxLen)+`"`)
	f(strings.Repeat("x", MaxLen)+"yz", `"`+strings.Repeat("x", MaxLen)+`"...`)
}
