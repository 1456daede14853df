// Package firstrun holds the first-run end-to-end tests: they do what the
// repository's README (and the agent's) tell a newcomer, with the real
// binaries, and check in a real browser what the newcomer should see.
//
// The commands are read from the README itself, so the README and the test
// cannot drift apart: the first code block under "## Run" is run line by
// line, each `go run ./<pkg> args` as the binary built from ./<pkg> with
// the same args. The only changes are the ones that let a test run beside
// whatever else uses the machine: the collector gets a free port and a
// temporary -data (so http://127.0.0.1:9470 in a command becomes that
// port's URL), the demo a free -listen port, and the annotator
// TELLTALE_COLLECTOR for the collector it would otherwise find at
// 127.0.0.1:9470. Everything else (intervals, defaults) is what a newcomer
// gets.
//
// The package has no code of its own; everything is in its tests.
package firstrun
