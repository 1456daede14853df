package ingest

// The Influx endpoints receive InfluxDB line protocol over HTTP, as Telegraf
// and the InfluxDB client libraries send it, and write it through the
// shared ingest path:
//
//	POST /write          InfluxDB 1.x API: db, precision (rp, u, p accepted)
//	POST /api/v2/write   InfluxDB 2.x API: org, bucket, precision
//	GET|HEAD /ping       204, what clients and Telegraf probe
//	GET /health          InfluxDB 2.x health check (our own probe is /healthz)
//
// Parsing is protoparser/influx. Fields map to series the way
// VictoriaMetrics maps them: measurement_field{tags}, or measurement{tags}
// for a field named "value"; booleans become 0 and 1; string fields are
// skipped and counted (telltale_ingest_rejected_total{reason=
// "influx_string_field"}). The db query parameter becomes the label db
// (unless it is empty or the line has a db tag), as VictoriaMetrics does;
// org and bucket of the 2.x API are accepted and not stored, also as
// VictoriaMetrics does.
//
// Promises: 204 once every sample of the body is committed, as InfluxDB
// answers. A body with any bad line gets 400 and nothing of it is
// written; the message names the line number and what is wrong, in
// InfluxDB's JSON error shape ({"error": ...} for 1.x, {"code": "invalid",
// "message": ...} for 2.x), so Telegraf logs it and drops the batch instead
// of retrying. Bodies over the limits get 413 (Telegraf's influxdb_v2
// output then splits the batch), overload and storage trouble 503 with
// Retry-After. Bodies may be gzip-compressed (Content-Encoding: gzip).
//
// Influx clients authenticate differently from Telltale's bearer tokens:
// InfluxAuthCompat turns "Authorization: Token <t>" (2.x), basic auth and the u/p
// query parameters (1.x) into a bearer token before the auth check, so a
// Telltale token can be given to them as the token or the password.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	protoinflux "github.com/telltale-dev/telltale/protoparser/influx"
	"github.com/telltale-dev/telltale/samples"
)

// Paths the Influx handlers are mounted on.
const (
	InfluxPathV1     = "/write"
	InfluxPathV2     = "/api/v2/write"
	InfluxPathPing   = "/ping"
	InfluxPathHealth = "/health"
)

// ReasonInfluxStringField counts string field values skipped.
const ReasonInfluxStringField = "influx_string_field"

// InfluxOptions configure NewInflux.
type InfluxOptions struct {
	// MaxLineLen is the longest line accepted, in bytes
	// (-ingest.influx-max-line-len); 0 means the parser's default.
	MaxLineLen int
	// Version is sent as X-Influxdb-Version and in /health.
	Version string
	// Ready reports whether the collector accepts writes, for /health; nil
	// means always.
	Ready func() bool
	// Now is the clock for lines without a timestamp; nil means time.Now.
	Now func() time.Time
}

// Influx serves the Influx endpoints. It is safe for concurrent use.
type Influx struct {
	in     *Handlers
	v1, v2 endpoint // of the two API versions, which answer errors differently
	opts   InfluxOptions
}

// influxRequest is one Influx write request.
type influxRequest struct {
	noContent
	h       *Influx
	version influxAPI
	body    bodyBuffers
	batch   samples.Batch
	out     samples.Batch // the batch with the db label added, when needed
	parser  protoinflux.Parser
	extra   [1]samples.Label

	precision, db string // of the request
}

// parse parses data into st's batches and returns the batch to write,
// with the label db=<db> on every series whose line has no db tag (none
// when db is ""). The parser's ExtraLabels would replace a line's own db
// tag, but that tag must win, as in VictoriaMetrics (Telegraf's postgresql
// and mysql inputs tag each series with its database); so only a body that
// holds a db tag takes the slower path of adding the label after parsing.
func (st *influxRequest) parse(data []byte, precision string, now int64, db string, maxLineLen int) (*samples.Batch, protoinflux.Stats, error) {
	st.parser.MaxLineLen = maxLineLen
	st.parser.ExtraLabels = nil
	dbTag := db != "" && bytes.Contains(data, dbTagText)
	if db != "" && !dbTag {
		st.extra[0] = samples.Label{Name: "db", Value: db}
		st.parser.ExtraLabels = st.extra[:]
	}
	stats, err := st.parser.Parse(data, precision, now, &st.batch)
	if err != nil || !dbTag {
		return &st.batch, stats, err
	}
	addLabelIfMissing(&st.batch, &st.out, "db", db)
	return &st.out, stats, nil
}

// dbTagText is how a tag named db appears in line protocol: tag keys
// follow a comma, and no escape sequence unescapes to "db".
var dbTagText = []byte(",db=")

// addLabelIfMissing copies src to dst, adding the label name=value to every
// series that has no label of that name. dst's series keys are 0x06, the
// value (varint length-prefixed) and src's key: src's key determines its
// labels, so (value, key) determines the new ones; no other Telltale
// format's keys begin with 0x06.
func addLabelIfMissing(src, dst *samples.Batch, name, value string) {
	dst.Reset()
	dst.Metadata = append(dst.Metadata, src.Metadata...)
	for i := range src.Series {
		s := &src.Series[i]
		var key []byte
		if len(s.Key) > 0 {
			start := len(dst.KeyBuf)
			kb := append(dst.KeyBuf, 0x06)
			kb = binary.AppendUvarint(kb, uint64(len(value)))
			kb = append(kb, value...)
			kb = append(kb, s.Key...)
			dst.KeyBuf = kb
			key = kb[start:len(kb):len(kb)]
		}
		dst.StartSeries(key)
		d := &dst.Series[len(dst.Series)-1]
		ls := src.SeriesLabels(s)
		dst.Labels = append(dst.Labels, ls...)
		if !slices.ContainsFunc(ls, func(l samples.Label) bool { return l.Name == name }) {
			dst.Labels = append(dst.Labels, samples.Label{Name: name, Value: value})
		}
		d.LabelsEnd = int32(len(dst.Labels))
		dst.Samples = append(dst.Samples, src.SeriesSamples(s)...)
		d.SamplesEnd = int32(len(dst.Samples))
	}
}

// NewInflux returns the Influx handlers writing through in's Writer, with
// in's body limits and counters.
func NewInflux(in *Handlers, opts InfluxOptions) *Influx {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.Version == "" {
		opts.Version = "telltale"
	}
	h := &Influx{in: in, opts: opts}
	for _, v := range []struct {
		ep      *endpoint
		version influxAPI
	}{{&h.v1, influxV1}, {&h.v2, influxV2}} {
		*v.ep = endpoint{name: "influx", protocol: "the Influx write API", methods: []string{http.MethodPost},
			encoding: gzipOrIdentity, decodeFactor: batchFactor}
		v.ep.requests.New = func() any { return &influxRequest{h: h, version: v.version} }
	}
	return h
}

// influxAPI is the InfluxDB API version a request came in on; it decides
// the error body's shape.
type influxAPI int

const (
	influxV1 influxAPI = 1
	influxV2 influxAPI = 2
)

// WriteV1 serves POST /write, the InfluxDB 1.x write API.
func (h *Influx) WriteV1(w http.ResponseWriter, r *http.Request) { h.write(w, r, &h.v1) }

// WriteV2 serves POST /api/v2/write, the InfluxDB 2.x write API.
func (h *Influx) WriteV2(w http.ResponseWriter, r *http.Request) { h.write(w, r, &h.v2) }

func (h *Influx) write(w http.ResponseWriter, r *http.Request, ep *endpoint) {
	w.Header().Set("X-Influxdb-Version", h.opts.Version)
	h.in.serve(w, r, ep)
}

func (q *influxRequest) reset() {
	q.body.trim()
	resetBatch(&q.batch)
	resetBatch(&q.out)
}

func (q *influxRequest) buffers() *bodyBuffers { return &q.body }

func (q *influxRequest) check(r *http.Request) (err error) {
	query := r.URL.Query()
	q.db = query.Get("db")
	q.precision, err = parsePrecision(query.Get("precision"))
	return err
}

func (q *influxRequest) decode(_ context.Context, data []byte) (*samples.Batch, error) {
	b, stats, err := q.parse(data, q.precision, q.h.opts.Now().UnixMilli(), q.db, q.h.opts.MaxLineLen)
	if err != nil {
		if errors.Is(err, protoinflux.ErrLineTooLong) {
			return nil, fmt.Errorf("%w: %v (the limit is -ingest.influx-max-line-len=%d)", ErrInvalid, err, q.h.opts.MaxLineLen)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if stats.SkippedStrings > 0 {
		q.h.in.w.CountRejected(ReasonInfluxStringField, stats.SkippedStrings)
	}
	return b, nil
}

// failure answers in the shape of the API version: {"error": ...} and
// X-Influxdb-Error for 1.x, {"code": ..., "message": ...} for 2.x.
func (q *influxRequest) failure(w http.ResponseWriter, status int, err error) (string, []byte) {
	msg := err.Error()
	var body []byte
	if q.version == influxV1 {
		w.Header().Set("X-Influxdb-Error", firstLine(msg))
		body, _ = json.Marshal(struct {
			Error string `json:"error"`
		}{msg})
	} else {
		body, _ = json.Marshal(struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}{influxErrorCode(status), msg})
	}
	return "application/json; charset=utf-8", append(body, '\n')
}

// precisions maps the precision parameter of both APIs to the parser's
// units: 2.x uses ns, us, ms, s; 1.x also n, u, m, h.
var precisions = map[string]string{
	"": "ns", "n": "ns", "ns": "ns",
	"u": "us", "us": "us", "µ": "us", "µs": "us",
	"ms": "ms", "s": "s", "m": "m", "h": "h",
}

func parsePrecision(p string) (string, error) {
	if u, ok := precisions[p]; ok {
		return u, nil
	}
	return "", fmt.Errorf("%w: precision=%q is not a timestamp precision; use ns, us, ms or s (the 1.x API also takes n, u, m, h), or leave it out for nanoseconds", ErrInvalid, p)
}

// influxErrorCode is the InfluxDB 2.x error code for an HTTP status.
func influxErrorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusRequestEntityTooLarge:
		return "request too large"
	case http.StatusUnsupportedMediaType:
		return "unsupported media type"
	case http.StatusMethodNotAllowed:
		return "method not allowed"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "internal error"
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

// Ping serves GET and HEAD /ping: 204 with X-Influxdb-Version, or with
// verbose=true 200 and {"version": ...}, as InfluxDB 1.x answers.
func (h *Influx) Ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Influxdb-Version", h.opts.Version)
	w.Header().Set("X-Influxdb-Build", "OSS")
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Query().Get("verbose") == "true" && r.Method != http.MethodHead {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"version": h.opts.Version})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Health serves GET /health in InfluxDB 2.x's shape: 200 and status "pass"
// when the collector accepts writes, 503 and "fail" otherwise.
func (h *Influx) Health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	status, code, msg := "pass", http.StatusOK, "ready for writes"
	if !h.opts.Ready() {
		status, code, msg = "fail", http.StatusServiceUnavailable, "not ready: starting or shutting down"
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Name    string   `json:"name"`
		Message string   `json:"message"`
		Status  string   `json:"status"`
		Checks  []string `json:"checks"`
		Version string   `json:"version"`
		Commit  string   `json:"commit"`
	}{"telltale", msg, status, []string{}, h.opts.Version, ""})
}

// InfluxAuthCompat lets Influx clients present a Telltale token the ways they
// can: "Authorization: Token <t>" (InfluxDB 2.x clients, Telegraf's
// influxdb_v2 output), basic auth with the token as password, or the
// p=<token> query parameter (1.x clients and Telegraf's influxdb output
// with username/password). It rewrites them to "Authorization: Bearer
// <t>" for the auth check that follows; a Bearer header is left alone.
func InfluxAuthCompat(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := influxToken(r); tok != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		next.ServeHTTP(w, r)
	})
}

// influxToken returns the token of an Influx-style credential on r, or ""
// when r has none or already carries a bearer token.
func influxToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "bearer"):
		return ""
	case strings.EqualFold(scheme, "token"):
		return strings.TrimSpace(rest)
	case strings.EqualFold(scheme, "basic"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return ""
		}
		_, pass, _ := strings.Cut(string(raw), ":")
		return pass
	}
	return r.URL.Query().Get("p")
}
