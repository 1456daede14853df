// Package excerpt quotes the offending part of a malformed body for the
// error messages of Telltale's text parsers (protoparser/promtext,
// protoparser/influx), so every format shows bad input the same way.
//
// Quote promises a Go-quoted string (control and non-UTF-8 bytes escaped,
// so a message stays one readable line) of at most MaxLen input bytes, with
// "..." after it when the input was cut. It is meant for error paths: it
// allocates the string it returns.
package excerpt

import "fmt"

// MaxLen is the most input bytes Quote shows.
const MaxLen = 64

// Quote returns b quoted with %q, cut to MaxLen bytes and followed by "..."
// when it was longer.
func Quote(b []byte) string {
	if len(b) > MaxLen {
		return fmt.Sprintf("%q...", b[:MaxLen])
	}
	return fmt.Sprintf("%q", b)
}
