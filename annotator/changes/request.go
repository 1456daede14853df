package changes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Input limits. They bound what becomes a label value of the change series
// (kind, service, env, subject, version, commit, who, status) and what is
// stored.
const (
	maxKindLen    = 32
	maxServiceLen = 64
	maxEnvLen     = 64
	maxSubjectLen = 128
	maxVersionLen = 128
	maxCommitLen  = 64
	maxWhoLen     = 128
	maxLinkLen    = 2048
	maxIDLen      = 128
	// MaxMessageBytes limits "message" (4 KiB); put longer text behind "link".
	MaxMessageBytes = 4 << 10
	// MaxFields limits the entries of "fields"; MaxFieldKeyLen and
	// MaxFieldValueBytes their keys and values.
	MaxFields          = 16
	MaxFieldKeyLen     = 64
	MaxFieldValueBytes = 256
	// MaxFuture is how far ahead of the server clock "time" and "end_time"
	// may be.
	MaxFuture = time.Hour
)

const (
	labelCharset   = "[A-Za-z0-9._-]"
	idCharset      = "[A-Za-z0-9._:-]"
	subjectCharset = "[A-Za-z0-9._:/-]"
	kindPattern    = "[a-z][a-z0-9_]*"
	fieldKeyRule   = "[a-z_][a-z0-9_]*"
)

// RequestError is a rejected request: Status is the HTTP status, Field the
// JSON field at fault ("" for the body as a whole), Reason the
// telltale_changes_rejected_total reason, and the message says what to do.
type RequestError struct {
	Status int
	Field  string
	Reason string
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

// BadField returns a 400 RequestError for field with a message that says
// what to do.
func BadField(field, reason, format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Field: field, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// dialect is what differs between POST /api/v1/changes and the deploy API
// it grew from: the noun in messages, whether the body names the kind, and
// the fields it may carry.
type dialect struct {
	noun   string // "change" or "deploy"
	kind   string // fixed kind, or "" when the body carries "kind"
	fields string // allowed fields, for the unknown-field message
}

var (
	changeDialect = dialect{noun: "change", fields: "id, kind, service, env, subject, version, commit, who, message, link, fields, time, end_time, status"}
	deployDialect = dialect{noun: "deploy", kind: KindDeploy, fields: "id, service, env, version, commit, who, message, link, time, end_time, status"}
)

// changeBody is the JSON body of POST /api/v1/changes.
type changeBody struct {
	ID      string            `json:"id"`
	Kind    string            `json:"kind"`
	Service string            `json:"service"`
	Env     string            `json:"env"`
	Subject string            `json:"subject"`
	Version string            `json:"version"`
	Commit  string            `json:"commit"`
	Who     string            `json:"who"`
	Message string            `json:"message"`
	Link    string            `json:"link"`
	Fields  map[string]string `json:"fields"`
	Time    *string           `json:"time"`
	EndTime *string           `json:"end_time"`
	Status  string            `json:"status"`
}

// deployBody is the JSON body of POST /api/v1/deploys: a change body
// without kind, subject and fields.
type deployBody struct {
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

// patchBody is the JSON body of PATCH /api/v1/changes/{id}.
type patchBody struct {
	EndTime *string `json:"end_time"`
	Status  string  `json:"status"`
}

// Request is a decoded and validated create request.
type Request struct {
	ID      string // "" = the server picks one
	Kind    string
	Service string
	Env     string
	Subject string
	Version string
	Commit  string
	Who     string
	Message string
	Link    string
	Fields  map[string]string
	// Time is the change time; HasTime is false when the client left it
	// out (then Time is the server's now).
	Time    time.Time
	HasTime bool
	EndTime *time.Time
	// Status is "" when the client left it out.
	Status string
}

// Patch is a decoded and validated PATCH request.
type Patch struct {
	EndTime *time.Time
	Status  string // "" = unchanged
}

// DecodeJSON decodes one JSON object from r into v as strictly as a
// change body: valid UTF-8, no repeated key, at most MaxJSONDepth deep, no
// field outside allowed (named in the error), nothing after the object.
// The caller bounds r. Errors are *RequestError.
func DecodeJSON(r io.Reader, v any, allowed string) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeStrict(body, v, changeDialect, allowed)
}

// readBody reads r whole (the HTTP layer bounds it) and runs checkJSON.
func readBody(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		if mbe := maxBytes(err); mbe != nil {
			return nil, mbe
		}
		return nil, BadField("", "bad_body", "cannot read request body: %v", err)
	}
	if rerr := checkJSON(body, MaxJSONDepth); rerr != nil {
		return nil, rerr
	}
	return body, nil
}

// decodeStrict decodes exactly one JSON object from body into v, rejecting
// unknown fields, and maps decoding errors to RequestErrors.
func decodeStrict(body []byte, v any, d dialect, allowed string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	example := fmt.Sprintf(`{"service":"api"%s}`, map[bool]string{true: `,"kind":"note"`, false: ""}[d.kind == ""])
	err := dec.Decode(v)
	if err == nil {
		// exactly one value: anything but trailing whitespace is an error
		if _, err2 := dec.Token(); err2 != io.EOF {
			return BadField("", "bad_json", "request body has data after the JSON object: send exactly one object like %s", example)
		}
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return BadField("", "bad_json", "request body is empty: send a JSON object like %s", example)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		switch {
		case field == "":
			return BadField("", "bad_json", "request body must be a JSON object like %s, got a JSON %s", example, typeErr.Value)
		case field == "time" || field == "end_time":
			return BadField(field, "bad_time", "%q must be an RFC3339 string like \"2024-05-01T12:00:00Z\", got a JSON %s (unix times are not accepted)", field, typeErr.Value)
		case field == "fields":
			return BadField(field, "bad_fields", "\"fields\" must be a JSON object of strings like {\"state\":\"on\"}, got a JSON %s", typeErr.Value)
		case strings.HasPrefix(field, "fields."):
			return BadField("fields", "bad_fields", "\"fields\" value %q must be a JSON string, got a JSON %s", Clip(strings.TrimPrefix(field, "fields.")), typeErr.Value)
		}
		return BadField(field, "bad_json", "%q must be a JSON %s, got a JSON %s", field, jsonType(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return BadField("", "bad_json", "request body is not valid JSON (%v): send a JSON object like %s", err, example)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return BadField(strings.Trim(name, `"`), "unknown_field", "unknown field %s: allowed fields are %s", name, allowed)
	}
	return BadField("", "bad_json", "cannot decode request body: %v", err)
}

// jsonType names the JSON type that decodes into t.
func jsonType(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16,
		reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "number"
	}
	return "value"
}

func maxBytes(err error) *RequestError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return BodyTooLarge(mbe.Limit)
	}
	return nil
}

// BodyTooLarge is the 413 of a body over limit bytes.
func BodyTooLarge(limit int64) *RequestError {
	return &RequestError{Status: http.StatusRequestEntityTooLarge, Reason: "body_too_large",
		Msg: fmt.Sprintf("request body exceeds %d bytes: a change is small; shorten \"message\" (limit %d bytes) and put details behind \"link\"", limit, MaxMessageBytes)}
}

// DecodeRequest reads and validates a create request of POST
// /api/v1/changes. now is the server clock: the default time and the base
// of the MaxFuture check. Errors are *RequestError.
func DecodeRequest(r io.Reader, now time.Time) (Request, error) {
	return decodeRequest(r, now, changeDialect)
}

// DecodeDeploy reads and validates a create request of POST
// /api/v1/deploys: a change of kind deploy, without kind, subject and
// fields in the body. Errors are *RequestError.
func DecodeDeploy(r io.Reader, now time.Time) (Request, error) {
	return decodeRequest(r, now, deployDialect)
}

func decodeRequest(r io.Reader, now time.Time, d dialect) (Request, error) {
	body, err := readBody(r)
	if err != nil {
		return Request{}, err
	}
	var in changeBody
	if d.kind == "" {
		err = decodeStrict(body, &in, d, d.fields)
	} else {
		var db deployBody
		err = decodeStrict(body, &db, d, d.fields)
		in = changeBody{ID: db.ID, Kind: d.kind, Service: db.Service, Env: db.Env, Version: db.Version, Commit: db.Commit,
			Who: db.Who, Message: db.Message, Link: db.Link, Time: db.Time, EndTime: db.EndTime, Status: db.Status}
	}
	if err != nil {
		return Request{}, err
	}
	req := Request{
		ID: in.ID, Kind: in.Kind, Service: in.Service, Env: in.Env, Subject: in.Subject, Version: in.Version, Commit: in.Commit,
		Who: in.Who, Message: in.Message, Link: in.Link, Fields: in.Fields, Status: in.Status,
	}
	if len(req.Fields) == 0 {
		req.Fields = nil
	}
	if err := req.validate(in.Time, in.EndTime, now, d); err != nil {
		return Request{}, err
	}
	return req, nil
}

// Validate checks a request built in Go (the Record API) the way
// DecodeRequest checks one from JSON; Time must be set by the caller.
func (req *Request) Validate(now time.Time) error {
	var t, end *string
	if !req.Time.IsZero() {
		s := req.Time.Format(time.RFC3339Nano)
		t = &s
	}
	if req.EndTime != nil {
		s := req.EndTime.Format(time.RFC3339Nano)
		end = &s
	}
	return req.validate(t, end, now, changeDialect)
}

func (req *Request) validate(t, end *string, now time.Time, d dialect) error {
	if req.ID != "" && !validID(req.ID) {
		return BadField("id", "bad_id", "\"id\" %q must be 1-%d characters of %s: derive it from your CI run, e.g. \"gh-123456-1-api\"", Clip(req.ID), maxIDLen, idCharset)
	}
	if req.Kind == "" {
		return BadField("kind", "missing_kind", "missing \"kind\": one of %s (or your own, %s), e.g. {\"kind\":\"note\",\"service\":\"api\"}", strings.Join(Kinds, ", "), kindPattern)
	}
	if !validKind(req.Kind) {
		return BadField("kind", "bad_kind", "\"kind\" %q must be 1-%d characters of %s: use one of %s or your own lower-case word", Clip(req.Kind), maxKindLen, kindPattern, strings.Join(Kinds, ", "))
	}
	if req.Service == "" {
		return BadField("service", "missing_service", "missing \"service\": name the %s service, e.g. {\"service\":\"api\"}", map[string]string{"deploy": "deployed", "change": "changed"}[d.noun])
	}
	if err := checkLabel("service", req.Service, maxServiceLen); err != nil {
		return err
	}
	if req.Env != "" {
		if err := checkLabel("env", req.Env, maxEnvLen); err != nil {
			return err
		}
	}
	if req.Subject != "" && !validSubject(req.Subject) {
		return BadField("subject", "bad_subject", "\"subject\" %q must be 1-%d characters of %s: name the switch, file or key, e.g. \"slow_checkout\"", Clip(req.Subject), maxSubjectLen, subjectCharset)
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
		return BadField("message", "message_too_long", "\"message\" is %d bytes, limit %d (4 KiB): shorten it and put details behind \"link\"", len(req.Message), MaxMessageBytes)
	}
	if !utf8.ValidString(req.Message) {
		return BadField("message", "bad_utf8", "\"message\" is not valid UTF-8")
	}
	if req.Link != "" {
		if err := checkLink(req.Link); err != nil {
			return err
		}
	}
	if err := checkFields(req.Fields); err != nil {
		return err
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
			// No start given: a change that already ended starts no later
			// than its end. (For an existing id the stored start is checked
			// when the patch is applied.)
			req.Time = e
		}
		if e.Before(req.Time) {
			return BadField("end_time", "bad_time", "\"end_time\" %s is before \"time\" %s: a %s cannot end before it starts", e.Format(time.RFC3339Nano), req.Time.Format(time.RFC3339Nano), d.noun)
		}
		req.EndTime = &e
	}
	if err := checkStatus(req.Status); err != nil {
		return err
	}
	if req.Status == StatusRunning && req.EndTime != nil {
		return BadField("status", "bad_status", "\"status\" is \"running\" but \"end_time\" is set: a finished %s's status is one of %s", d.noun, strings.Join(statuses[1:], ", "))
	}
	return nil
}

// DecodePatch reads and validates a PATCH request body.
func DecodePatch(r io.Reader, now time.Time) (Patch, error) {
	body, err := readBody(r)
	if err != nil {
		return Patch{}, err
	}
	var in patchBody
	if err := decodeStrict(body, &in, changeDialect, "end_time, status (PATCH changes only these; record a new change for anything else)"); err != nil {
		return Patch{}, err
	}
	var p Patch
	if in.EndTime != nil && *in.EndTime != "" {
		e, err := parseTime("end_time", *in.EndTime, now)
		if err != nil {
			return Patch{}, err
		}
		e = e.UTC().Truncate(time.Millisecond)
		p.EndTime = &e
	}
	if err := checkStatus(in.Status); err != nil {
		return Patch{}, err
	}
	p.Status = in.Status
	if p.EndTime == nil && p.Status == "" {
		return Patch{}, BadField("", "bad_json", "nothing to change: send \"end_time\" (RFC3339) and/or \"status\" (one of %s)", strings.Join(statuses, ", "))
	}
	if p.Status == StatusRunning && p.EndTime != nil {
		return Patch{}, BadField("status", "bad_status", "\"status\" is \"running\" but \"end_time\" is set: a finished change's status is one of %s", strings.Join(statuses[1:], ", "))
	}
	return p, nil
}

func parseTime(field, v string, now time.Time) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, BadField(field, "bad_time", "%q %q is not an RFC3339 timestamp: send it like \"2024-05-01T12:00:00Z\" (or \"2024-05-01T14:00:00+02:00\"), or leave it out", field, Clip(v))
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, BadField(field, "bad_time", "%q %q is out of range: send a time after 1970", field, Clip(v))
	}
	if d := t.Sub(now); d > MaxFuture {
		return time.Time{}, BadField(field, "bad_time", "%q %s is %s in the future (limit %s): check the sender's clock, or leave %q out to use the server's time", field, t.Format(time.RFC3339), d.Round(time.Second), MaxFuture, field)
	}
	return t, nil
}

func checkStatus(s string) error {
	if s == "" || slices.Contains(statuses, s) {
		return nil
	}
	return BadField("status", "bad_status", "\"status\" %q is not one of %s", Clip(s), strings.Join(statuses, ", "))
}

func checkLabel(field, v string, max int) error {
	if len(v) > max {
		return BadField(field, "too_long", "%q is %d bytes, limit %d: shorten it", field, len(v), max)
	}
	if !validLabelValue(v, max) {
		return BadField(field, "bad_label", "%q %q has characters outside %s: use letters, digits, '.', '_' or '-' (it becomes a label and a Grafana tag)", field, Clip(v), labelCharset)
	}
	return nil
}

// validChars reports whether v is 1-max bytes, each a letter, a digit or
// one of extra.
func validChars(v string, max int, extra string) bool {
	if v == "" || len(v) > max {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

func validLabelValue(v string, max int) bool { return validChars(v, max, "._-") }

// ValidLabel reports whether v may be a service or env: 1-64 characters
// of [A-Za-z0-9._-] (it becomes a label value and a Grafana tag).
func ValidLabel(v string) bool   { return validLabelValue(v, maxServiceLen) }
func validID(v string) bool      { return validChars(v, maxIDLen, "._:-") }
func validSubject(v string) bool { return validChars(v, maxSubjectLen, "._:/-") }

// validKind: [a-z][a-z0-9_]{0,31}.
func validKind(v string) bool {
	if v == "" || len(v) > maxKindLen || v[0] < 'a' || v[0] > 'z' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validFieldKey(k string) bool {
	if k == "" || len(k) > MaxFieldKeyLen || !('a' <= k[0] && k[0] <= 'z' || k[0] == '_') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func checkFields(f map[string]string) error {
	if len(f) > MaxFields {
		return BadField("fields", "bad_fields", "\"fields\" has %d entries, limit %d: keep the few that identify the change and put the rest in \"message\"", len(f), MaxFields)
	}
	for _, k := range slices.Sorted(maps.Keys(f)) {
		if !validFieldKey(k) {
			return BadField("fields", "bad_fields", "\"fields\" key %q must be 1-%d characters of %s", Clip(k), MaxFieldKeyLen, fieldKeyRule)
		}
		if err := checkText("fields."+k, f[k], MaxFieldValueBytes); err != nil {
			err.(*RequestError).Field = "fields"
			err.(*RequestError).Reason = "bad_fields"
			return err
		}
	}
	return nil
}

// checkText checks a free-form value that becomes a label value or field:
// bounded, valid UTF-8, no control characters.
func checkText(field, v string, max int) error {
	if len(v) > max {
		return BadField(field, "too_long", "%q is %d bytes, limit %d: shorten it", field, len(v), max)
	}
	if !utf8.ValidString(v) {
		return BadField(field, "bad_utf8", "%q is not valid UTF-8", field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return BadField(field, "bad_value", "%q contains a control character (%U): send a single line of text", field, r)
		}
	}
	return nil
}

func checkLink(v string) error {
	if len(v) > maxLinkLen {
		return BadField("link", "bad_link", "\"link\" is %d bytes, limit %d: link to a shorter URL", len(v), maxLinkLen)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return BadField("link", "bad_link", "\"link\" %q is not an absolute http(s) URL: send e.g. \"https://ci.example.com/runs/42\"", Clip(v))
	}
	return nil
}

// Clip shortens v for an error message.
func Clip(v string) string {
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
	in := changeBody{ID: req.ID, Kind: req.Kind, Service: req.Service, Env: req.Env, Subject: req.Subject, Version: req.Version,
		Commit: req.Commit, Who: req.Who, Message: req.Message, Link: req.Link, Fields: req.Fields, Status: req.Status}
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

// Change is the change a new request records: its fields, status
// success when none was given.
func (req Request) Change() Change {
	c := Change{
		ID: req.ID, Kind: req.Kind, Service: req.Service, Env: req.Env, Subject: req.Subject, Version: req.Version, Commit: req.Commit,
		Who: req.Who, Message: req.Message, Link: req.Link, Fields: maps.Clone(req.Fields), Time: req.Time, EndTime: req.EndTime, Status: req.Status,
	}
	if c.Status == "" {
		c.Status = StatusSuccess
	}
	return c
}

// Differs names the identity fields in which req and the stored c differ
// ("" when req is a retry of c).
func (req Request) Differs(c Change) string {
	var diff []string
	add := func(name, a, b string) {
		if a != b {
			diff = append(diff, name)
		}
	}
	add("kind", req.Kind, c.Kind)
	add("service", req.Service, c.Service)
	add("env", req.Env, c.Env)
	add("subject", req.Subject, c.Subject)
	add("version", req.Version, c.Version)
	add("commit", req.Commit, c.Commit)
	add("who", req.Who, c.Who)
	add("message", req.Message, c.Message)
	add("link", req.Link, c.Link)
	if !maps.Equal(req.Fields, c.Fields) && (len(req.Fields) > 0 || len(c.Fields) > 0) {
		diff = append(diff, "fields")
	}
	if req.HasTime && !req.Time.Equal(c.Time) {
		diff = append(diff, "time")
	}
	return strings.Join(diff, ", ")
}
