// Package auth checks bearer tokens with scopes. Tokens come from a YAML
// file (-auth.tokens-file); each has a name (for logs and metrics) and a
// set of scopes. Checks happen before a request body is read and compare
// token hashes in constant time.
//
// With no tokens configured every request is allowed: that is the
// loopback-only default, and the collector warns loudly when it listens
// elsewhere without tokens.
package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"gopkg.in/yaml.v3"
)

// Scope is a permission a token can hold.
type Scope string

// The scopes. Admin implies all others.
const (
	ScopeWrite  Scope = "write"
	ScopeRead   Scope = "read"
	ScopeDeploy Scope = "deploy"
	ScopeAdmin  Scope = "admin"
)

var knownScopes = []Scope{ScopeWrite, ScopeRead, ScopeDeploy, ScopeAdmin}

// File is the YAML layout of -auth.tokens-file:
//
//	tokens:
//	  - name: ci
//	    token: "s3cret-ci-token"
//	    scopes: [deploy]
//	  - name: grafana
//	    token: "another-token"
//	    scopes: [read]
type File struct {
	Tokens []TokenConfig `yaml:"tokens"`
}

// TokenConfig is one token of the tokens file.
type TokenConfig struct {
	Name   string  `yaml:"name"`
	Token  string  `yaml:"token"`
	Scopes []Scope `yaml:"scopes"`
}

type token struct {
	name   string
	hash   [sha256.Size]byte
	scopes []Scope
}

// Checker checks requests against the configured tokens. Its methods are
// safe for concurrent use.
type Checker struct {
	tokens []token
	set    *metrics.Set
}

// MinTokenLen is the shortest token accepted, so a guessable token is
// refused at start.
const MinTokenLen = 16

// Load reads the tokens file at path; an empty path disables auth.
func Load(path string, set *metrics.Set) (*Checker, error) {
	if set == nil {
		set = metrics.NewSet()
	}
	c := &Checker{set: set}
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read -auth.tokens-file: %w", err)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cannot parse -auth.tokens-file %q: %w; want a top-level \"tokens:\" list of {name, token, scopes}", path, err)
	}
	if len(f.Tokens) == 0 {
		return nil, fmt.Errorf("-auth.tokens-file %q has no tokens; add at least one {name, token, scopes} or drop the flag", path)
	}
	seen := map[string]bool{}
	for i, t := range f.Tokens {
		where := fmt.Sprintf("-auth.tokens-file %q: tokens[%d]", path, i)
		if t.Name == "" {
			return nil, fmt.Errorf("%s: missing name; give each token a name for logs and metrics", where)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%s: name %q used twice; names must be unique", where, t.Name)
		}
		seen[t.Name] = true
		if len(t.Token) < MinTokenLen {
			return nil, fmt.Errorf("%s (%s): token is %d characters, want at least %d; generate one with: openssl rand -hex 32", where, t.Name, len(t.Token), MinTokenLen)
		}
		if len(t.Scopes) == 0 {
			return nil, fmt.Errorf("%s (%s): no scopes; want some of write, read, deploy, admin", where, t.Name)
		}
		for _, s := range t.Scopes {
			if !slices.Contains(knownScopes, s) {
				return nil, fmt.Errorf("%s (%s): unknown scope %q; want write, read, deploy or admin", where, t.Name, s)
			}
		}
		c.tokens = append(c.tokens, token{name: t.Name, hash: sha256.Sum256([]byte(t.Token)), scopes: t.Scopes})
	}
	return c, nil
}

// Enabled reports whether any token is configured.
func (c *Checker) Enabled() bool { return len(c.tokens) > 0 }

// HasScope reports whether the token named name exists and holds scope
// (or admin): how a chat user mapped to a token name is checked (the chat
// bot has no bearer token to show). With no tokens configured it is true,
// as every request is allowed then.
func (c *Checker) HasScope(name string, scope Scope) bool {
	if len(c.tokens) == 0 {
		return true
	}
	for _, t := range c.tokens {
		if t.name == name {
			return slices.Contains(t.scopes, scope) || slices.Contains(t.scopes, ScopeAdmin)
		}
	}
	return false
}

// Errors returned by Check; HTTP maps them to 401 and 403.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Check returns the token name when r carries a token with scope, or an
// error wrapping ErrUnauthenticated or ErrForbidden that says what to do.
func (c *Checker) Check(r *http.Request, scope Scope) (string, error) {
	if len(c.tokens) == 0 {
		return "", nil
	}
	raw := bearer(r)
	if raw == "" {
		if r.URL.Query().Has("access_token") {
			return "", fmt.Errorf("%w: ?access_token= is only accepted on websocket upgrades (URLs end up in logs); send Authorization: Bearer <token>", ErrUnauthenticated)
		}
		return "", fmt.Errorf("%w: this endpoint needs a bearer token with scope %q; send Authorization: Bearer <token>", ErrUnauthenticated, scope)
	}
	h := sha256.Sum256([]byte(raw))
	var found *token
	for i := range c.tokens {
		// Compare every token, so the time taken does not tell which matched.
		if subtle.ConstantTimeCompare(h[:], c.tokens[i].hash[:]) == 1 {
			found = &c.tokens[i]
		}
	}
	if found == nil {
		return "", fmt.Errorf("%w: unknown token; check the token against -auth.tokens-file", ErrUnauthenticated)
	}
	if slices.Contains(found.scopes, scope) || slices.Contains(found.scopes, ScopeAdmin) {
		return found.name, nil
	}
	return found.name, fmt.Errorf("%w: token %q lacks scope %q; add it to the token's scopes in -auth.tokens-file", ErrForbidden, found.name, scope)
}

// bearer returns the bearer token of r. Browsers cannot set headers on a
// websocket, so a websocket upgrade may carry it as ?access_token=;
// nowhere else, because URLs end up in access logs and browser history.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return r.URL.Query().Get("access_token")
	}
	return ""
}

// Require wraps next so it runs only for requests with a token holding
// scope; others get 401 or 403 with a message, before the body is read.
func (c *Checker) Require(scope Scope, next http.Handler) http.Handler {
	if len(c.tokens) == 0 {
		return next
	}
	denied401 := c.set.GetOrCreateCounter(`telltale_auth_denied_total{scope="` + string(scope) + `",reason="unauthenticated"}`)
	denied403 := c.set.GetOrCreateCounter(`telltale_auth_denied_total{scope="` + string(scope) + `",reason="forbidden"}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := c.Check(r, scope); err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, ErrForbidden) {
				status = http.StatusForbidden
				denied403.Inc()
			} else {
				denied401.Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="telltale"`)
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(status)
			fmt.Fprintln(w, err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}
