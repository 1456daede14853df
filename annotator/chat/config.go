package chat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/changes"
)

// Config is the YAML file of -chat.config: the networks, where changes go
// (routes) and who may flip switches from chat (users). Unknown keys are
// errors.
//
//	networks:
//	  - name: ops                       # default: the network's kind
//	    irc: ircs://telltale@irc.example.org:6697/#ops?sasl=plain
//	    password_file: /etc/telltale/irc-password
//	    channels: ["#deploys"]           # joined besides the URL's
//	  - matrix: https://matrix.example.org/#ops:example.org
//	    token_file: /etc/telltale/matrix-token
//	  - slack: "#ops"                     # bot token; or a webhook URL
//	    token_file: /etc/telltale/slack-token
//	routes:                               # none for a network: all to its first channel
//	  - network: ops
//	    channel: "#deploys"
//	    kinds: [deploy]
//	    services: [web, "api-*"]
//	    envs: [prod]
//	users:
//	  - token: alice                      # a token name of -auth.tokens-file
//	    irc: ["alice!*@10.0.0.*"]
//	    matrix: ["@alice:example.org"]
//	    slack: ["U024BE7LH"]
type Config struct {
	Networks []NetworkConfig `yaml:"networks"`
	Routes   []Route         `yaml:"routes"`
	Users    []User          `yaml:"users"`
	// DefaultService is the service of a !note that names none
	// (default "ops").
	DefaultService string `yaml:"default_service"`
}

// Network kinds.
const (
	KindIRC    = "irc"
	KindMatrix = "matrix"
	KindSlack  = "slack"
)

// NetworkConfig is one network. Exactly one of IRC, Matrix and Slack is
// set; the collector builds the network from it (see the leaf packages for
// the URL forms).
type NetworkConfig struct {
	// Name names the network in routes, the outbox (target chat:<name>),
	// metrics and logs; default its kind. Keep it stable: pending messages
	// are found by it after a restart.
	Name   string `yaml:"name"`
	IRC    string `yaml:"irc"`
	Matrix string `yaml:"matrix"`
	Slack  string `yaml:"slack"`
	// PasswordFile holds the IRC SASL (or server) password.
	PasswordFile string `yaml:"password_file"`
	// TokenFile holds the Matrix access token or the Slack bot token.
	TokenFile string `yaml:"token_file"`
	// SigningSecretFile holds the Slack app's signing secret, which turns
	// on the bot's Events API endpoint.
	SigningSecretFile string `yaml:"signing_secret_file"`
	// Channels are joined besides the URL's channel (IRC channels, Matrix
	// rooms, Slack channel ids).
	Channels []string `yaml:"channels"`
	// Every and Linger override the network's pacing (see Limits).
	Every  time.Duration `yaml:"every"`
	Linger time.Duration `yaml:"linger"`
}

// Kind is the network's kind: KindIRC, KindMatrix or KindSlack.
func (n NetworkConfig) Kind() string { k, _ := n.KindURL(); return k }

// KindURL is the network's kind and its URL (or channel, for a Slack bot).
func (n NetworkConfig) KindURL() (kind, url string) {
	switch {
	case n.IRC != "":
		return KindIRC, n.IRC
	case n.Matrix != "":
		return KindMatrix, n.Matrix
	}
	return KindSlack, n.Slack
}

// Route sends the changes it matches to a channel. Empty lists match
// everything; services and envs take path.Match patterns ("api-*").
type Route struct {
	// Network is the network's name; "" means every network.
	Network string `yaml:"network"`
	// Channel is where matching changes go; "" means the network's first
	// channel.
	Channel  string   `yaml:"channel"`
	Kinds    []string `yaml:"kinds"`
	Services []string `yaml:"services"`
	Envs     []string `yaml:"envs"`
	// Events are recorded, finished and impact (default all).
	Events []string `yaml:"events"`
}

// User maps chat users to a token of -auth.tokens-file: a user whose
// token has the deploy scope may use !switch. IRC nicks are not
// authenticated by IRC itself: match nick!user@host masks whose host only
// that person has, or use a network with services and cloaks.
type User struct {
	// Token is a token name of -auth.tokens-file.
	Token string `yaml:"token"`
	// Who is recorded as who of the user's actions; default the chat name.
	Who    string   `yaml:"who"`
	IRC    []string `yaml:"irc"`
	Matrix []string `yaml:"matrix"`
	Slack  []string `yaml:"slack"`
}

// LoadConfig reads and checks the YAML file at path.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read -chat.config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("-chat.config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a chat config strictly (unknown keys are errors) and
// checks it. A config without networks is valid: flags may add them.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w; see the chat section of the README for the keys", err)
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return &c, nil
}

var events = []string{changelog.EventRecorded, changelog.EventFinished, changelog.EventImpact}

// Check validates the config and fills the defaults (network names,
// default_service).
func (c *Config) Check() error {
	if c.DefaultService == "" {
		c.DefaultService = "ops"
	}
	if !changes.ValidLabel(c.DefaultService) {
		return fmt.Errorf("default_service %q: want 1-64 characters of [A-Za-z0-9._-]", c.DefaultService)
	}
	names := map[string]bool{}
	for i := range c.Networks {
		n := &c.Networks[i]
		set := 0
		for _, v := range []string{n.IRC, n.Matrix, n.Slack} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			return fmt.Errorf("networks[%d]: set exactly one of irc, matrix and slack (got %d)", i, set)
		}
		kind := n.Kind()
		if n.Name == "" {
			n.Name = kind
		}
		if !validName(n.Name) {
			return fmt.Errorf("networks[%d]: name %q: want 1-32 characters of [a-z0-9_-]", i, n.Name)
		}
		if names[n.Name] {
			return fmt.Errorf("networks[%d]: name %q is used twice: give each network of the same kind a name", i, n.Name)
		}
		names[n.Name] = true
		if n.Every < 0 || n.Linger < 0 {
			return fmt.Errorf("networks[%d] (%s): every and linger must not be negative", i, n.Name)
		}
	}
	for i, r := range c.Routes {
		where := fmt.Sprintf("routes[%d]", i)
		for _, k := range r.Kinds {
			if !changes.ValidLabel(k) {
				return fmt.Errorf("%s: kind %q is not a change kind (e.g. %s)", where, k, strings.Join(changes.Kinds, ", "))
			}
		}
		for _, e := range r.Events {
			if !slices.Contains(events, e) {
				return fmt.Errorf("%s: event %q: want %s", where, e, strings.Join(events, ", "))
			}
		}
	}
	for i, u := range c.Users {
		if u.Token == "" {
			return fmt.Errorf("users[%d]: missing token: name the -auth.tokens-file token whose scopes the user gets", i)
		}
		if len(u.IRC)+len(u.Matrix)+len(u.Slack) == 0 {
			return fmt.Errorf("users[%d] (%s): no irc, matrix or slack identity", i, u.Token)
		}
		for _, m := range u.IRC {
			if !strings.Contains(m, "!") || !strings.Contains(m, "@") {
				return fmt.Errorf("users[%d] (%s): irc mask %q: want nick!user@host (globs allowed), e.g. \"alice!*@10.0.0.5\": a bare nick is not authenticated on IRC", i, u.Token, m)
			}
		}
	}
	return nil
}

// CheckRoutes checks that every route names a configured network; call it
// once flags have added their networks.
func (c *Config) CheckRoutes() error {
	for i, r := range c.Routes {
		if r.Network != "" && !slices.ContainsFunc(c.Networks, func(n NetworkConfig) bool { return n.Name == r.Network }) {
			var names []string
			for _, n := range c.Networks {
				names = append(names, n.Name)
			}
			return fmt.Errorf("routes[%d]: network %q is not configured (networks: %s)", i, r.Network, strings.Join(names, ", "))
		}
	}
	return nil
}

func validName(n string) bool {
	if n == "" || len(n) > 32 {
		return false
	}
	for _, r := range n {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// channels returns the channels of network net (first: its default) that
// event ev of change c goes to.
func (c *Config) channels(net string, defaults []string, ch changes.Change, ev string) []string {
	var out []string
	routed := false
	for _, r := range c.Routes {
		if r.Network != "" && r.Network != net {
			continue
		}
		routed = true
		if !r.matches(ch, ev) {
			continue
		}
		to := r.Channel
		if to == "" && len(defaults) > 0 {
			to = defaults[0]
		}
		if to != "" && !slices.Contains(out, to) {
			out = append(out, to)
		}
	}
	if !routed && len(defaults) > 0 {
		out = append(out, defaults[0])
	}
	return out
}

func (r Route) matches(c changes.Change, ev string) bool {
	return (len(r.Kinds) == 0 || slices.Contains(r.Kinds, c.Kind)) &&
		(len(r.Events) == 0 || slices.Contains(r.Events, ev)) &&
		matchAny(r.Services, c.Service) && (len(r.Envs) == 0 || c.Env == "" || matchAny(r.Envs, c.Env))
}

func matchAny(patterns []string, v string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if glob(p, v) {
			return true
		}
	}
	return false
}

// user returns the mapping of a speaker on a network of kind, if any.
func (c *Config) user(kind, id string) (User, bool) {
	for _, u := range c.Users {
		var ids []string
		switch kind {
		case KindIRC:
			for _, m := range u.IRC {
				if glob(strings.ToLower(m), strings.ToLower(id)) {
					return u, true
				}
			}
			continue
		case KindMatrix:
			ids = u.Matrix
		case KindSlack:
			ids = u.Slack
		}
		if slices.Contains(ids, id) {
			return u, true
		}
	}
	return User{}, false
}
