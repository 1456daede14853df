package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/telltale-dev/telltale/collector/rules"
)

// Exit codes of check-rules, promtool's.
const (
	exitFailure = 1 // a file does not load
	exitLint    = 3 // lint findings with -lint-fatal
)

// exitError ends the process with code after its message is printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// runCheckRules is `collector check-rules FILE...`: it validates rule files
// exactly as the collector loads them, printing like promtool check rules
// (Checking <file>, SUCCESS: N rules found, or FAILED: with one problem a
// line, each with its line, why and what to do) with promtool's exit codes:
// 0 all good, 1 a file does not load, 3 lint findings with -lint-fatal.
// With no FILE it checks standard input.
func runCheckRules(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("collector check-rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lint := fs.String("lint", "duplicate-rules", "lint checks: duplicate-rules or none")
	lintFatal := fs.Bool("lint-fatal", false, "exit with status 3 when a lint check finds something")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: collector check-rules [flags] FILE...

Checks Prometheus rule files as the collector loads them (-rules.files):
YAML, keys, PromQL, templates, duplicate groups, and lints for duplicate
rules. Exit status as promtool check rules: 0 good, 1 a file does not
load, 3 lint findings with -lint-fatal. With no FILE, reads standard input.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *lint != "duplicate-rules" && *lint != "none" {
		return &exitError{exitFailure, fmt.Errorf("check-rules: -lint=%q: want duplicate-rules or none", *lint)}
	}
	var results []rules.FileResult
	if fs.NArg() == 0 {
		data, err := io.ReadAll(io.LimitReader(stdin, 16<<20))
		if err != nil {
			return &exitError{exitFailure, fmt.Errorf("check-rules: cannot read standard input: %w", err)}
		}
		results = append(results, rules.CheckBytes("standard input", data, nil))
	}
	for _, f := range fs.Args() {
		results = append(results, rules.CheckFile(f, nil))
	}
	failed, linted := false, false
	for _, r := range results {
		fmt.Fprintln(stdout, "Checking", r.File)
		var shown []rules.Problem
		for _, p := range r.Problems {
			if p.Lint && *lint == "none" {
				continue
			}
			shown = append(shown, p)
		}
		if len(shown) == 0 {
			fmt.Fprintf(stdout, "  SUCCESS: %d rules found\n\n", r.Rules)
			continue
		}
		fmt.Fprintln(stderr, "  FAILED:")
		for _, p := range shown {
			fmt.Fprintln(stderr, p.String())
			if p.Lint {
				linted = true
			} else {
				failed = true
			}
		}
		fmt.Fprintln(stdout)
	}
	switch {
	case failed:
		return &exitError{exitFailure, errors.New("check-rules: some rule files do not load")}
	case linted && *lintFatal:
		return &exitError{exitLint, errors.New("check-rules: lint findings (-lint-fatal)")}
	}
	return nil
}

// exitCode is the process exit status for err.
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}
