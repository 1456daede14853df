package deploys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/telltale-dev/telltale/annotator/deployapi"
)

// Input limits. They bound what becomes a label value of the deploy series
// (service, env, version, commit, who, status) and what is stored.
const (
	maxServiceLen = 64
	maxEnvLen     = 64
	maxVersionLen = 128
	maxCommitLen  = 64
	maxWhoLen     = 128
	maxLinkLen    = 2048
	maxIDLen      = 128
	// MaxMessageBytes limits "message" (4 KiB); put longer text behind "link".
	MaxMessageBytes = 4 << 10
	// MaxFuture is how far ahead of the server clock "time" and "end_time"
	// may be.
	MaxFuture = time.Hour
)

// Statuses of a deploy.
const (
	StatusRunning    = deployapi.StatusRunning
	StatusSuccess    = deployapi.StatusSuccess
	StatusFailed     = deployapi.StatusFailed
	StatusCancelled  = deployapi.StatusCancelled
	StatusRolledBack = deployapi.StatusRolledBack
)

var statuses = []string{StatusRunning, StatusSuccess, StatusFailed, StatusCancelled, StatusRolledBack}

const labelCharset = "[A-Za-z0-9._-]"
const idCharset = "[A-Za-z0-9._:-]"

const createFields = "id, service, env, version, commit, who, message, link, time, end_time, status"

// RequestError is a rejected request: Status is the HTTP status, Field the
// JSON field at fault ("" for the body as a whole), Reason the
// telltale_deploys_rejected_total reason, and the message says what to do.
type RequestError struct {
	Status int
	Field  string
	Reason string
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

func badField(field, reason, format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Field: field, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// createRequest is the JSON body of POST /api/v1/deploys.
type createRequest struct {
	ID      string  `json:"id"`
	Service string  `json:"service"`
	Env     string  `json:"env"`
	Version string  `json:"version"`
	Commit  string  `json:"commit"`
	Who     string  `json:"who"`
	Message string  `json:"message"`
	Link    string  `json:"link"`
	Time    *string `json:"time"`
	EndTime *string `json:"end_time"`
	Status  string  `json:"status"`
}

// patchRequest is the JSON body of PATCH /api/v1/deploys/{id}.
type patchRequest struct {
	EndTime *string `json:"end_time"`
	Status  string  `json:"status"`
}

// Request is a decoded and validated create request.
type Request struct {
	ID      string // "" = the server picks one
	Service string
	Env     string
	Version string
	Commit  string
	Who     string
	Message string
	Link    string
	// Time is the deploy time; HasTime is false when the client left it out
	// (then Time is the server's now).
	Time    time.Time
	HasTime bool
	EndTime *time.Time
	// Status is "" when the client left it out.
	Status string
}

// Change is a decoded and validated PATCH request.
type Change struct {
	EndTime *time.Time
	Status  string // "" = unchanged
}

// decodeStrict decodes exactly one JSON object from r into v, rejecting
// unknown fields, and maps decoding errors to RequestErrors.
func decodeStrict(r io.Reader, v any, allowed string) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// exactly one value: anything but trailing whitespace is an error
		if _, err2 := dec.Token(); err2 != io.EOF {
			if mbe := maxBytes(err2); mbe != nil {
				return mbe
			}
			return badField("", "bad_json", "request body has data after the JSON object: send exactly one object like {\"service\":\"api\"}")
		}
		return nil
	}
	if mbe := maxBytes(err); mbe != nil {
		return mbe
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return badField("", "bad_json", "request body is empty: send a JSON object like {\"service\":\"api\",\"version\":\"1.2.3\"}")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return badField("", "bad_json", "request body must be a JSON object like {\"service\":\"api\"}, got a JSON %s", typeErr.Value)
		}
		if field == "time" || field == "end_time" {
			return badField(field, "bad_time", "%q must be an RFC3339 string like \"2024-05-01T12:00:00Z\", got a JSON %s (unix times are not accepted)", field, typeErr.Value)
		}
		return badField(field, "bad_json", "%q must be a JSON string, got a JSON %s", field, typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return badField("", "bad_json", "request body is not valid JSON (%v): send a JSON object like {\"service\":\"api\",\"version\":\"1.2.3\"}", err)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return badField(strings.Trim(name, `"`), "unknown_field", "unknown field %s: allowed fields are %s", name, allowed)
	}
	return badField("", "bad_json", "cannot decode request body: %v", err)
}

func maxBytes(err error) *RequestError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyTooLarge(mbe.Limit)
	}
	return nil
}

func bodyTooLarge(limit int64) *RequestError {
	return &RequestError{Status: http.StatusRequestEntityTooLarge, Reason: "body_too_large",
		Msg: fmt.Sprintf("request body exceeds %d bytes: a deploy event is small; shorten \"message\" (limit %d bytes) and put details behind \"link\"", limit, MaxMessageBytes)}
}

// DecodeRequest reads and validates a create request (the JSON body of POST
// /api/v1/deploys). now is the server clock: the default time and the base
// of the MaxFuture check. Errors are *RequestError.
func DecodeRequest(r io.Reader, now time.Time) (Request, error) {
	var in createRequest
	if err := decodeStrict(r, &in, createFields); err != nil {
		return Request{}, err
	}
	req := Request{
		ID: in.ID, Service: in.Service, Env: in.Env, Version: in.Version, Commit: in.Commit,
		Who: in.Who, Message: in.Message, Link: in.Link, Status: in.Status,
	}
	if err := req.validate(in.Time, in.EndTime, now); err != nil {
		return Request{}, err
	}
	return req, nil
}

func (req *Request) validate(t, end *string, now time.Time) error {
	if req.ID != "" && !validID(req.ID) {
		return badField("id", "bad_id", "\"id\" %q must be 1-%d characters of %s: derive it from your CI run, e.g. \"gh-123456-1-api\"", clip(req.ID), maxIDLen, idCharset)
	}
	if req.Service == "" {
		return badField("service", "missing_service", "missing \"service\": name the deployed service, e.g. {\"service\":\"api\"}")
	}
	if err := checkLabel("service", req.Service, maxServiceLen); err != nil {
		return err
	}
	if req.Env != "" {
		if err := checkLabel("env", req.Env, maxEnvLen); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"version", req.Version, maxVersionLen}, {"commit", req.Commit, maxCommitLen}, {"who", req.Who, maxWhoLen}} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	if len(req.Message) > MaxMessageBytes {
		return badField("message", "message_too_long", "\"message\" is %d bytes, limit %d (4 KiB): shorten it and put details behind \"link\"", len(req.Message), MaxMessageBytes)
	}
	if req.Link != "" {
		if err := checkLink(req.Link); err != nil {
			return err
		}
	}
	var err error
	req.Time = now
	if t != nil && *t != "" {
		if req.Time, err = parseTime("time", *t, now); err != nil {
			return err
		}
		req.HasTime = true
	}
	req.Time = req.Time.UTC().Truncate(time.Millisecond)
	if end != nil && *end != "" {
		e, err := parseTime("end_time", *end, now)
		if err != nil {
			return err
		}
		e = e.UTC().Truncate(time.Millisecond)
		if !req.HasTime && e.Before(req.Time) {
			// No start given: a deploy that already ended starts no later
			// than its end. (For an existing id the stored start is checked
			// when the change is applied.)
			req.Time = e
		}
		if e.Before(req.Time) {
			return badField("end_time", "bad_time", "\"end_time\" %s is before \"time\" %s: a deploy cannot end before it starts", e.Format(time.RFC3339Nano), req.Time.Format(time.RFC3339Nano))
		}
		req.EndTime = &e
	}
	if err := checkStatus(req.Status); err != nil {
		return err
	}
	if req.Status == StatusRunning && req.EndTime != nil {
		return badField("status", "bad_status", "\"status\" is \"running\" but \"end_time\" is set: a finished deploy's status is one of success, failed, cancelled, rolled_back")
	}
	return nil
}

// DecodeChange reads and validates a PATCH request body.
func DecodeChange(r io.Reader, now time.Time) (Change, error) {
	var in patchRequest
	if err := decodeStrict(r, &in, "end_time, status (PATCH changes only these; create a new deploy for anything else)"); err != nil {
		return Change{}, err
	}
	var c Change
	if in.EndTime != nil && *in.EndTime != "" {
		e, err := parseTime("end_time", *in.EndTime, now)
		if err != nil {
			return Change{}, err
		}
		e = e.UTC().Truncate(time.Millisecond)
		c.EndTime = &e
	}
	if err := checkStatus(in.Status); err != nil {
		return Change{}, err
	}
	c.Status = in.Status
	if c.EndTime == nil && c.Status == "" {
		return Change{}, badField("", "bad_json", "nothing to change: send \"end_time\" (RFC3339) and/or \"status\" (one of %s)", strings.Join(statuses, ", "))
	}
	if c.Status == StatusRunning && c.EndTime != nil {
		return Change{}, badField("status", "bad_status", "\"status\" is \"running\" but \"end_time\" is set: a finished deploy's status is one of success, failed, cancelled, rolled_back")
	}
	return c, nil
}

func parseTime(field, v string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badField(field, "bad_time", "%q %q is not an RFC3339 timestamp: send it like \"2024-05-01T12:00:00Z\" (or \"2024-05-01T14:00:00+02:00\"), or leave it out", field, clip(v))
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, badField(field, "bad_time", "%q %q is out of range: send a time after 1970", field, clip(v))
	}
	if d := t.Sub(now); d > MaxFuture {
		return time.Time{}, badField(field, "bad_time", "%q %s is %s in the future (limit %s): check the sender's clock, or leave %q out to use the server's time", field, t.Format(time.RFC3339), d.Round(time.Second), MaxFuture, field)
	}
	return t, nil
}

func checkStatus(s string) error {
	if s == "" {
		return nil
	}
	for _, v := range statuses {
		if s == v {
			return nil
		}
	}
	return badField("status", "bad_status", "\"status\" %q is not one of %s", clip(s), strings.Join(statuses, ", "))
}

func checkLabel(field, v string, max int) error {
	if len(v) > max {
		return badField(field, "too_long", "%q is %d bytes, limit %d: shorten it", field, len(v), max)
	}
	if !validLabelValue(v, max) {
		return badField(field, "bad_label", "%q %q has characters outside %s: use letters, digits, '.', '_' or '-' (it becomes a label and a Grafana tag)", field, clip(v), labelCharset)
	}
	return nil
}

func validLabelValue(v string, max int) bool {
	if v == "" || len(v) > max {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validID(v string) bool {
	if v == "" || len(v) > maxIDLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}

// checkText checks a free-form value that becomes a label value: bounded,
// valid UTF-8, no control characters.
func checkText(field, v string, max int) error {
	if len(v) > max {
		return badField(field, "too_long", "%q is %d bytes, limit %d: shorten it", field, len(v), max)
	}
	if !utf8.ValidString(v) {
		return badField(field, "bad_value", "%q is not valid UTF-8", field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return badField(field, "bad_value", "%q contains a control character (%U): send a single line of text", field, r)
		}
	}
	return nil
}

func checkLink(v string) error {
	if len(v) > maxLinkLen {
		return badField("link", "bad_link", "\"link\" is %d bytes, limit %d: link to a shorter URL", len(v), maxLinkLen)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return badField("link", "bad_link", "\"link\" %q is not an absolute http(s) URL: send e.g. \"https://ci.example.com/runs/42\"", clip(v))
	}
	return nil
}

// clip shortens v for an error message.
func clip(v string) string {
	const max = 80
	if len(v) <= max {
		return v
	}
	i := max
	for i > 0 && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i] + "…"
}

// encodeRequest is the inverse of DecodeRequest for a valid request (the
// fuzz target's round trip).
func encodeRequest(req Request) []byte {
	in := createRequest{ID: req.ID, Service: req.Service, Env: req.Env, Version: req.Version, Commit: req.Commit,
		Who: req.Who, Message: req.Message, Link: req.Link, Status: req.Status}
	if req.HasTime {
		t := req.Time.Format(time.RFC3339Nano)
		in.Time = &t
	}
	if req.EndTime != nil {
		e := req.EndTime.Format(time.RFC3339Nano)
		in.EndTime = &e
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(in)
	return buf.Bytes()
}
