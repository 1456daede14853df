package secret

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := func(file, want string, wantErr ...string) {
		t.Helper()
		got, err := Read(file, "-token-file", "the bearer token")
		if len(wantErr) == 0 {
			if err != nil || got != want {
				t.Fatalf("Read(%s): got %q, %v; want %q", file, got, err, want)
			}
			return
		}
		if err == nil {
			t.Fatalf("Read(%s): got %q; want an error with %q", file, got, wantErr)
		}
		for _, w := range wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("Read(%s): got error %q; want it to contain %q", file, err, w)
			}
		}
	}
	f(write("tok", "s3cret\n"), "s3cret")
	f(write("spaced", "  s3cret \r\n\n"), "s3cret")
	f(write("inner", "a b"), "a b") // inner white space is part of the secret
	f(write("empty", ""), "", "-token-file", "is empty", "put the bearer token in it")
	f(write("blank", " \n\t\n"), "", "is empty")
	f(filepath.Join(dir, "missing"), "", "cannot read -token-file", "no such file", "fix the path")

	if _, err := Read(write("e2", "\n"), "x", "y"); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty file: got %v; want ErrEmpty", err)
	}
}

func TestReadSeesRotation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tok")
	for _, tok := range []string{"first", "second"} {
		if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := Read(p, "-token-file", "a token"); err != nil || got != tok {
			t.Fatalf("Read after writing %q: got %q, %v; want %q", tok, got, err, tok)
		}
	}
}

func TestFileOrEnv(t *testing.T) {
	t.Setenv("TELLTALE_TEST_SECRET", " from-env\n")
	p := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(p, []byte("from-file\n"), 0o600)
	f := func(file, want string) {
		t.Helper()
		got, err := FileOrEnv(file, "TELLTALE_TEST_SECRET", "-token-file", "a token")
		if err != nil || got != want {
			t.Fatalf("FileOrEnv(%q): got %q, %v; want %q", file, got, err, want)
		}
	}
	f(p, "from-file") // the file wins
	f("", "from-env")
	t.Setenv("TELLTALE_TEST_SECRET", "")
	f("", "") // neither: the caller decides
	if _, err := FileOrEnv(filepath.Join(t.TempDir(), "missing"), "TELLTALE_TEST_SECRET", "-token-file", "a token"); err == nil {
		t.Fatal("FileOrEnv with a missing file: got nil; want an error, not the environment's value")
	}
}
