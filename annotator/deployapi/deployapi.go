// Package deployapi holds the wire types of Telltale's deploy API
// (/api/v1/deploys): the deploy object, its delivery state, the response
// envelope and the statuses. The server (annotator/deploys, via the deploy
// log) and the client (annotator/client, used by the annotator CLI) share
// them, so the JSON cannot drift apart. It has no dependencies, so the CLI
// stays small.
package deployapi

import (
	"encoding/json"
	"time"
)

// Statuses of a deploy.
const (
	StatusRunning    = "running"
	StatusSuccess    = "success"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
	StatusRolledBack = "rolled_back"
)

// Delivery states of a target.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Deploy is one deploy event: the API's deploy object.
type Deploy struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Env     string `json:"env"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Who     string `json:"who"`
	Message string `json:"message"`
	Link    string `json:"link"`
	// Time is when the deploy started (or happened, for a point event).
	Time time.Time `json:"time"`
	// EndTime is when a long deploy finished; nil while it runs and for a
	// point event.
	EndTime *time.Time `json:"end_time,omitempty"`
	// Status is one of the Status constants.
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// Seq is the deploy log's insertion number: it orders deploys that
	// share a Time. Not part of the JSON.
	Seq int64 `json:"-"`
	// GrafanaAnnotationID is the Grafana annotation of the deploy, 0 if
	// none yet. In the JSON it is Delivery.Grafana.AnnotationID.
	GrafanaAnnotationID int64 `json:"-"`

	// Delivery is where the deploy has been delivered; nil when no
	// delivery target is configured.
	Delivery *Delivery `json:"delivery,omitempty"`

	// Impact is the state of the deploy's impact analysis, with the
	// verdict and one-line summary once done; nil when the deploy has no
	// analysis (recorded while impact analysis was off).
	Impact *Impact `json:"impact,omitempty"`
}

// Impact analysis states.
const (
	ImpactPending = "pending" // waiting for the after window to pass, or retrying
	ImpactDone    = "done"    // analysed: Verdict and Summary are set
	ImpactFailed  = "failed"  // given up (storage errors for too long); see LastError
)

// Impact is the state of a deploy's impact analysis: what the deploy did
// to its service's key signals (request rate, error ratio, latency, CPU,
// memory), comparing the window after the deploy with the one before.
type Impact struct {
	// Status is one of the Impact constants.
	Status string `json:"status"`
	// DueAt is when a pending analysis runs (next): the deploy time plus
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

// ImpactAnswer is the data of GET /api/v1/deploys/{id}/impact.
type ImpactAnswer struct {
	DeployID string `json:"deploy_id"`
	Impact
	// Message says the state in words: "pending: due at <time>",
	// "done: <summary>", "failed: <error>".
	Message string `json:"message"`
	// Report is the full analysis (the JSON of annotator/impact.Report:
	// per signal the before and after medians, change, p-values and
	// verdict); null until done.
	Report json.RawMessage `json:"report,omitempty"`
}

// Delivery is the outcome of a deploy's deliveries, per target.
type Delivery struct {
	Series   *TargetDelivery  `json:"series,omitempty"`
	Grafana  *TargetDelivery  `json:"grafana,omitempty"`
	Webhooks []TargetDelivery `json:"webhooks,omitempty"`
}

// TargetDelivery is the delivery state of one deploy to one target.
type TargetDelivery struct {
	// Name names a webhook; empty for other targets.
	Name string `json:"name,omitempty"`
	// Status is one of the Delivery constants.
	Status string `json:"status"`
	// Attempts counts delivery attempts over all events of the deploy.
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	// NextAttempt is when a pending delivery is tried next.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	// AnnotationID is the Grafana annotation id (grafana target only).
	AnnotationID int64 `json:"annotation_id,omitempty"`
}

// Response is the envelope of every answer, as in the Prometheus HTTP API:
// {"status":"success","data":...} or
// {"status":"error","errorType":"bad_data","error":"..."}.
type Response[T any] struct {
	Status    string `json:"status"`
	Data      T      `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

// CreateRequest is the body of POST /api/v1/deploys. Only Service is
// required; Time and EndTime are RFC3339 strings.
type CreateRequest struct {
	ID      string `json:"id,omitempty"`
	Service string `json:"service"`
	Env     string `json:"env,omitempty"`
	Version string `json:"version,omitempty"`
	Commit  string `json:"commit,omitempty"`
	Who     string `json:"who,omitempty"`
	Message string `json:"message,omitempty"`
	Link    string `json:"link,omitempty"`
	Time    string `json:"time,omitempty"`
	EndTime string `json:"end_time,omitempty"`
	Status  string `json:"status,omitempty"`
}

// ChangeRequest is the body of PATCH /api/v1/deploys/{id}.
type ChangeRequest struct {
	EndTime string `json:"end_time,omitempty"`
	Status  string `json:"status,omitempty"`
}
