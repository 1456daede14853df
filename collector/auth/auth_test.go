package auth

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHasScope(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yml")
	os.WriteFile(path, []byte(`tokens:
  - {name: alice, token: "alice-token-0123456789", scopes: [deploy, read]}
  - {name: bob, token: "bob-token-0123456789ab", scopes: [read]}
  - {name: root, token: "root-token-0123456789a", scopes: [admin]}
`), 0o600)
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := func(name string, want bool) {
		t.Helper()
		if got := c.HasScope(name, ScopeDeploy); got != want {
			t.Fatalf("HasScope(%q, deploy): got %v; want %v", name, got, want)
		}
	}
	f("alice", true)
	f("bob", false)
	f("root", true)
	f("nobody", false)
	open, _ := Load("", nil)
	if !open.HasScope("anyone", ScopeDeploy) {
		t.Fatal("without tokens HasScope: got false; want true (auth is off)")
	}
}
