// Package secret reads the credentials Telltale's programs take from files
// or the environment: bearer tokens, passwords, signing secrets.
//
// Promises:
//   - The value is the file's content without surrounding white space, so
//     the newline an editor or `echo` adds never ends up in a header.
//   - A file that holds only white space is an error wrapping ErrEmpty,
//     never an empty credential sent silently.
//   - Every error names the setting (flag or YAML key) the caller passes
//     and says the fix: make the file readable or fix the path, or put the
//     named credential in it.
//   - The file is read on every call, so a rotated credential is picked up
//     by the next call; callers that read per request may rely on that.
//
// It depends on the standard library only, so the agent and the instrument
// library may import it.
package secret

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrEmpty is wrapped by the error for a file that holds no secret.
var ErrEmpty = errors.New("is empty")

// Read returns the secret in file. setting names the flag or key that gave
// the file (e.g. "-token-file"); what names the credential that belongs in
// it (e.g. "the collector's bearer token"). Both appear in the errors.
func Read(file, setting, what string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w: make the file readable by this program's user or fix the path", setting, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s %w: put %s in it", setting, file, ErrEmpty, what)
	}
	return s, nil
}

// FileOrEnv returns Read(file, setting, what) when file is set, else the
// environment variable env without surrounding white space, "" when that
// is unset too (the caller decides whether a missing secret is an error).
func FileOrEnv(file, env, setting, what string) (string, error) {
	if file != "" {
		return Read(file, setting, what)
	}
	return strings.TrimSpace(os.Getenv(env)), nil
}
