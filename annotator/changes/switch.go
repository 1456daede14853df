package changes

import (
	"net/url"
	"strings"
	"time"
)

// Switch wire types: what apps announce to the collector's switch relay
// (POST /api/v1/switches/announce), what the relay answers (GET
// /api/v1/switches) and what a flip carries (POST
// /api/v1/switches/{service}/{name}, and the relayed POST to the app).

// Switch limits.
const (
	maxSwitchesPerApp = 256
	maxSwitchText     = 512
	maxReasonBytes    = 1 << 10
	// DefaultAnnounceInterval is how often an app announces its switches
	// unless it says otherwise; MaxAnnounceInterval the longest allowed.
	DefaultAnnounceInterval = 30 * time.Second
	MaxAnnounceInterval     = 10 * time.Minute
)

// SwitchInfo is one switch an app declares.
type SwitchInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Owner       string `json:"owner,omitempty"`
	// Protects says what turning it off protects, e.g. "the checkout
	// when the payment provider is slow".
	Protects string `json:"protects,omitempty"`
	Default  bool   `json:"default"`
	On       bool   `json:"on"`
}

// Announcement is the body of POST /api/v1/switches/announce.
type Announcement struct {
	Service  string `json:"service"`
	Env      string `json:"env,omitempty"`
	Instance string `json:"instance"`
	// URL is the app's switch endpoint: a flip of switch n is POSTed to
	// URL + "/" + n.
	URL string `json:"url"`
	// Secret is the bearer token the app accepts for relayed flips.
	Secret string `json:"secret"`
	// IntervalSeconds is how often the app announces (default 30); the
	// announcement expires after three.
	IntervalSeconds int          `json:"interval_seconds,omitempty"`
	Switches        []SwitchInfo `json:"switches"`
}

// SwitchView is one switch of one service and env as GET /api/v1/switches
// answers it, merged over the instances that announced it.
type SwitchView struct {
	Service string `json:"service"`
	Env     string `json:"env"`
	SwitchInfo
	// On is true when every instance has it on; Mixed when they disagree.
	Mixed     bool             `json:"mixed,omitempty"`
	Instances []SwitchInstance `json:"instances"`
}

// SwitchInstance is one instance's state of a switch.
type SwitchInstance struct {
	Instance string    `json:"instance"`
	On       bool      `json:"on"`
	SeenAt   time.Time `json:"seen_at"`
}

// FlipRequest is the body of POST /api/v1/switches/{service}/{name}.
type FlipRequest struct {
	On     *bool  `json:"on"`
	Reason string `json:"reason"`
	Who    string `json:"who"`
	// Env picks the env when the service announced the switch in several.
	Env string `json:"env,omitempty"`
}

// RelayedFlip is what the collector POSTs to an app's switch endpoint.
type RelayedFlip struct {
	On     bool   `json:"on"`
	Reason string `json:"reason"`
	Who    string `json:"who"`
	// ID and Time are the switch change the app records: the same for
	// every instance, so the flip is recorded once.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
}

// FlipResult is the answer of a relayed flip: per instance, whether it
// took the flip.
type FlipResult struct {
	Service  string        `json:"service"`
	Env      string        `json:"env"`
	Switch   string        `json:"switch"`
	On       bool          `json:"on"`
	ChangeID string        `json:"change_id"`
	Results  []FlipOutcome `json:"results"`
}

// FlipOutcome is one instance's answer to a relayed flip.
type FlipOutcome struct {
	Instance string `json:"instance"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

// Validate checks an announcement and fills its defaults
// (IntervalSeconds). Errors are *RequestError naming the field.
func (a *Announcement) Validate() error {
	if err := checkLabel("service", a.Service, maxServiceLen); err != nil {
		return err
	}
	if a.Env != "" {
		if err := checkLabel("env", a.Env, maxEnvLen); err != nil {
			return err
		}
	}
	if !validSubject(a.Instance) {
		return BadField("instance", "bad_label", "\"instance\" %q must be 1-%d characters of %s, e.g. \"host1:8080\"", Clip(a.Instance), maxSubjectLen, subjectCharset)
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(a.URL) > maxLinkLen {
		return BadField("url", "bad_url", "\"url\" %q is not an absolute http(s) URL of the app's switch endpoint, e.g. \"http://10.0.0.5:8080/switches\"", Clip(a.URL))
	}
	if len(a.Secret) < 16 || len(a.Secret) > 256 {
		return BadField("secret", "bad_secret", "\"secret\" must be 16-256 characters: the app's random token for relayed flips")
	}
	switch {
	case a.IntervalSeconds == 0:
		a.IntervalSeconds = int(DefaultAnnounceInterval / time.Second)
	case a.IntervalSeconds < 1 || a.IntervalSeconds > int(MaxAnnounceInterval/time.Second):
		return BadField("interval_seconds", "bad_interval", "\"interval_seconds\" %d must be 1-%d", a.IntervalSeconds, int(MaxAnnounceInterval/time.Second))
	}
	if len(a.Switches) > maxSwitchesPerApp {
		return BadField("switches", "too_many_switches", "%d switches, limit %d", len(a.Switches), maxSwitchesPerApp)
	}
	seen := map[string]bool{}
	for i, sw := range a.Switches {
		if !validSubject(sw.Name) {
			return BadField("switches", "bad_switch", "switch %d: \"name\" %q must be 1-%d characters of %s", i, Clip(sw.Name), maxSubjectLen, subjectCharset)
		}
		if seen[sw.Name] {
			return BadField("switches", "bad_switch", "switch %q is announced twice", sw.Name)
		}
		seen[sw.Name] = true
		for _, f := range []struct{ name, v string }{{"description", sw.Description}, {"owner", sw.Owner}, {"protects", sw.Protects}} {
			if err := checkText("switches."+f.name, f.v, maxSwitchText); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate checks a flip request. Errors are *RequestError naming the
// field.
func (req *FlipRequest) Validate() error {
	if req.On == nil {
		return BadField("on", "missing_on", "missing \"on\": send {\"on\":false,\"reason\":\"...\",\"who\":\"...\"}")
	}
	if strings.TrimSpace(req.Reason) == "" {
		return BadField("reason", "missing_reason", "missing \"reason\": say why the switch is flipped; it is recorded with the flip")
	}
	if len(req.Reason) > maxReasonBytes {
		return BadField("reason", "too_long", "\"reason\" is %d bytes, limit %d: put details behind a link", len(req.Reason), maxReasonBytes)
	}
	if strings.TrimSpace(req.Who) == "" {
		return BadField("who", "missing_who", "missing \"who\": name who flips the switch; it is recorded with the flip")
	}
	if err := checkText("who", req.Who, maxWhoLen); err != nil {
		return err
	}
	if req.Env != "" {
		return checkLabel("env", req.Env, maxEnvLen)
	}
	return nil
}
