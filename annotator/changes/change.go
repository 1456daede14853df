package changes

import (
	"encoding/json"
	"strings"
	"time"
)

// Kinds of change with a meaning the collector knows. Any other kind that
// matches [a-z][a-z0-9_]{0,31} is accepted and flows everywhere these do
// (a new kind needs no code).
const (
	KindDeploy   = "deploy"   // a new version of a service went out
	KindSwitch   = "switch"   // a contingency switch (feature flag) was flipped; Subject names it
	KindConfig   = "config"   // a configuration changed; Subject names what (a file, a key)
	KindIncident = "incident" // an incident: open (running) until closed; a region
	KindNote     = "note"     // anything else worth a mark on the graphs
	KindAlert    = "alert"    // an alert fired (running) and resolved; recorded by the rules engine
)

// Kinds lists the known kinds, in the order people read them.
var Kinds = []string{KindDeploy, KindSwitch, KindConfig, KindIncident, KindNote, KindAlert}

// Statuses of a change. A change is open (a region still going) while its
// status is StatusRunning and it has no EndTime; any other status is final.
const (
	StatusRunning    = "running"
	StatusSuccess    = "success"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
	StatusRolledBack = "rolled_back"
	StatusResolved   = "resolved"
)

// statuses are the accepted statuses, in the order error messages list them.
var statuses = []string{StatusRunning, StatusSuccess, StatusFailed, StatusCancelled, StatusRolledBack, StatusResolved}

// Delivery states of a target.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Change is one change: the API's change object (and, for kind deploy, the
// deploy object of /api/v1/deploys, which is the same JSON). The log fills
// every field except Delivery.
type Change struct {
	ID string `json:"id"`
	// Kind is one of the Kind constants or any other [a-z][a-z0-9_]{0,31}.
	Kind string `json:"kind"`
	// Service is the service the change affects ([A-Za-z0-9._-], required).
	Service string `json:"service"`
	// Env is the environment; "" means every env of the service: such a
	// change marks the graphs of every env (the dashboards match it with
	// env=~"$env|").
	Env string `json:"env"`
	// Subject is what the change is about within its kind: the switch
	// name, the config file, the incident key; "" for none. Recording a
	// change with a Subject closes the open change (status running, no
	// end) of the same kind, service, env and subject: a switch flipped
	// back ends the region of its previous flip.
	Subject string `json:"subject,omitempty"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Who     string `json:"who"`
	// Message is what changed and why, free text up to MaxMessageBytes.
	Message string `json:"message"`
	// Link is an absolute http(s) URL of the change (PR, pipeline run,
	// ticket); "" for none.
	Link string `json:"link"`
	// Fields are free-form key/value pairs (at most MaxFields; keys
	// [a-z_][a-z0-9_]*), e.g. a switch's state and default. Searched by
	// full text, never turned into labels.
	Fields map[string]string `json:"fields,omitempty"`
	// Time is when the change happened (or started, for a region).
	Time time.Time `json:"time"`
	// EndTime is when a region ended; nil while it runs and for a point.
	EndTime *time.Time `json:"end_time,omitempty"`
	// Status is one of the Status constants.
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// Seq is the log's insertion number: it orders changes that share a
	// Time. Not part of the JSON.
	Seq int64 `json:"-"`
	// GrafanaAnnotationID is the Grafana annotation of the change, 0 if
	// none yet. In the JSON it is Delivery.Grafana.AnnotationID.
	GrafanaAnnotationID int64 `json:"-"`

	// Delivery is where the change has been delivered; nil when no
	// delivery target is configured.
	Delivery *Delivery `json:"delivery,omitempty"`
	// Impact is the state of the change's impact analysis, with the
	// verdict and one-line summary once done; nil when the change has no
	// analysis (its kind is not analysed, or analysis was off).
	Impact *Impact `json:"impact,omitempty"`
}

// Open reports whether c is a region still going: status running, no end.
func (c *Change) Open() bool { return c.Status == StatusRunning && c.EndTime == nil }

// Title is a change in a few words: "deploy web v1.2.3", "switch
// slow_checkout on (demo)", "incident checkout-down (shop)", "note demo".
func (c *Change) Title() string {
	var b strings.Builder
	b.WriteString(c.Kind)
	if c.Subject == "" {
		b.WriteString(" " + c.Service)
	} else {
		b.WriteString(" " + c.Subject)
	}
	if st := c.Fields["state"]; st != "" {
		b.WriteString(" " + st)
	}
	if c.Version != "" {
		b.WriteString(" " + c.Version)
	}
	if c.Subject != "" {
		b.WriteString(" (" + c.Service + ")")
	}
	return b.String()
}

// Noun is how messages name a change of kind: "deploy" for deploys
// (the deploy API's word), else "change".
func Noun(kind string) string {
	if kind == KindDeploy {
		return "deploy"
	}
	return "change"
}

// Impact analysis states.
const (
	ImpactPending = "pending" // waiting for the after window to pass, or retrying
	ImpactDone    = "done"    // analysed: Verdict and Summary are set
	ImpactFailed  = "failed"  // given up (storage errors for too long); see LastError
)

// Impact is the state of a change's impact analysis: what the change did
// to its service's key signals (request rate, error ratio, latency, CPU,
// memory), comparing the window after it with the one before.
type Impact struct {
	// Status is one of the Impact constants.
	Status string `json:"status"`
	// DueAt is when a pending analysis runs (next): the change time plus
	// the window plus a grace period, or a retry's time.
	DueAt *time.Time `json:"due_at,omitempty"`
	// Verdict is regressed, changed, improved, unchanged or
	// not_enough_data (done only).
	Verdict string `json:"verdict,omitempty"`
	// Summary is one line for people, e.g. "error ratio 0.4% → 2.1% ▲
	// regressed; no significant change in 5 signals" (done only).
	Summary string `json:"summary,omitempty"`
	// Regressions counts the signals that regressed or changed (done
	// only).
	Regressions int `json:"regressions"`
	// ComputedAt is when the analysis ran (done only).
	ComputedAt *time.Time `json:"computed_at,omitempty"`
	// Attempts counts analysis attempts; LastError is the last failure.
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// ImpactAnswer is the data of GET /api/v1/changes/{id}/impact (and
// /api/v1/deploys/{id}/impact).
type ImpactAnswer struct {
	// DeployID is the change's id (the name is the deploy API's).
	DeployID string `json:"deploy_id"`
	// Kind is the change's kind ("" from collectors that analysed
	// deploys only).
	Kind string `json:"kind,omitempty"`
	Impact
	// Message says the state in words: "pending: due at <time>",
	// "done: <summary>", "failed: <error>".
	Message string `json:"message"`
	// Report is the full analysis (the JSON of annotator/impact.Report:
	// per signal the before and after medians, change, p-values and
	// verdict); null until done.
	Report json.RawMessage `json:"report,omitempty"`
}

// Delivery is the outcome of a change's deliveries, per target.
type Delivery struct {
	Series   *TargetDelivery  `json:"series,omitempty"`
	Grafana  *TargetDelivery  `json:"grafana,omitempty"`
	Webhooks []TargetDelivery `json:"webhooks,omitempty"`
	// Others are the targets added through Options.Targets (chat ...),
	// named.
	Others []TargetDelivery `json:"others,omitempty"`
}

// TargetDelivery is the delivery state of one change to one target.
type TargetDelivery struct {
	// Name names a webhook or other target; empty for series and grafana.
	Name string `json:"name,omitempty"`
	// Status is one of the Delivery constants.
	Status string `json:"status"`
	// Attempts counts delivery attempts over all events of the change.
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	// NextAttempt is when a pending delivery is tried next.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	// AnnotationID is the Grafana annotation id (grafana target only).
	AnnotationID int64 `json:"annotation_id,omitempty"`
}

// Response is the envelope of every answer, as in the Prometheus HTTP API:
// {"status":"success","data":...,"warnings":[...]} or
// {"status":"error","errorType":"bad_data","error":"..."}.
type Response[T any] struct {
	Status    string `json:"status"`
	Data      T      `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
	// Warnings tell about an accepted request that may not do what was
	// meant, e.g. a change whose service has no data, so it marks no
	// graph of the Service dashboard.
	Warnings []string `json:"warnings,omitempty"`
}

// CreateRequest is the body of POST /api/v1/changes (and, without Kind,
// Subject and Fields, of POST /api/v1/deploys), as clients send it. Only
// Kind and Service are required; Time and EndTime are RFC3339 strings.
type CreateRequest struct {
	ID      string            `json:"id,omitempty"`
	Kind    string            `json:"kind,omitempty"`
	Service string            `json:"service"`
	Env     string            `json:"env,omitempty"`
	Subject string            `json:"subject,omitempty"`
	Version string            `json:"version,omitempty"`
	Commit  string            `json:"commit,omitempty"`
	Who     string            `json:"who,omitempty"`
	Message string            `json:"message,omitempty"`
	Link    string            `json:"link,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
	Time    string            `json:"time,omitempty"`
	EndTime string            `json:"end_time,omitempty"`
	Status  string            `json:"status,omitempty"`
}

// PatchRequest is the body of PATCH /api/v1/changes/{id}.
type PatchRequest struct {
	EndTime string `json:"end_time,omitempty"`
	Status  string `json:"status,omitempty"`
}

// Filter selects changes for List. Zero fields do not filter.
type Filter struct {
	// Kinds keeps changes of any of these kinds.
	Kinds []string
	// Service keeps the changes of one service.
	Service string
	// Env keeps the changes of one env; with EnvlessToo also the changes
	// without env (they mark every env).
	Env        string
	EnvlessToo bool
	// Subject keeps the changes about one subject (a switch name ...).
	Subject string
	// From and To bound Time, inclusive. With Overlap they bound the span
	// instead: a region [Time, EndTime] (an open one runs to now) is kept
	// when it overlaps [From, To].
	From, To time.Time
	Overlap  bool
	// OpenOnly keeps open changes (status running, no end).
	OpenOnly bool
	// Text is a full-text query over the words of the service, env,
	// subject, version, commit, who, message, link and fields: every word
	// must occur (as a word or a word's start), e.g. "checkout timeout".
	Text string
	// Limit caps the number of changes returned; it must be > 0.
	Limit int
}
