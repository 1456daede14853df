package changes

import (
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// List limits of GET /api/v1/changes and /api/v1/deploys.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// maxKindFilters bounds the kinds one list request may name.
	maxKindFilters = 16
)

// ParseFilter reads the parameters of a list request: service, env, from,
// to and limit on both APIs; with kind "" (GET /api/v1/changes) also kind
// (repeatable, comma-separated), subject, q and open, and from and to then
// select the changes whose span overlaps them, and env also matches
// changes without env (they mark every env). With kind set (GET
// /api/v1/deploys) the filter keeps that kind only and the change-only
// parameters are errors. Errors are *RequestError naming the parameter.
func ParseFilter(q url.Values, kind string) (Filter, error) {
	f := Filter{Service: q.Get("service"), Env: q.Get("env"), Limit: DefaultListLimit}
	if f.Service != "" && !validLabelValue(f.Service, maxServiceLen) {
		return f, BadField("service", "bad_label", "service filter %q has characters outside %s", Clip(f.Service), labelCharset)
	}
	if f.Env != "" && !validLabelValue(f.Env, maxEnvLen) {
		return f, BadField("env", "bad_label", "env filter %q has characters outside %s", Clip(f.Env), labelCharset)
	}
	if kind != "" {
		f.Kinds = []string{kind}
		for _, p := range []string{"kind", "subject", "q", "open"} {
			if q.Has(p) {
				return f, BadField(p, "unknown_param", "parameter %q is not supported by GET /api/v1/%ss: use GET /api/v1/changes?%s=...", p, kind, p)
			}
		}
	} else {
		f.Overlap, f.EnvlessToo = true, true
		for _, v := range q["kind"] {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k == "" {
					continue
				}
				if !validKind(k) {
					return f, BadField("kind", "bad_kind", "kind filter %q must be %s, e.g. kind=deploy,switch", Clip(k), kindPattern)
				}
				if !slices.Contains(f.Kinds, k) {
					f.Kinds = append(f.Kinds, k)
				}
			}
		}
		if len(f.Kinds) > maxKindFilters {
			return f, BadField("kind", "bad_kind", "kind filter names %d kinds, limit %d", len(f.Kinds), maxKindFilters)
		}
		if f.Subject = q.Get("subject"); f.Subject != "" && !validSubject(f.Subject) {
			return f, BadField("subject", "bad_subject", "subject filter %q has characters outside %s", Clip(f.Subject), subjectCharset)
		}
		f.Text = strings.TrimSpace(q.Get("q"))
		if f.Text != "" {
			if _, err := SearchTerms(f.Text); err != nil {
				return f, err
			}
		}
		switch v := q.Get("open"); v {
		case "", "false", "0":
		case "true", "1":
			f.OpenOnly = true
		default:
			return f, BadField("open", "bad_param", "\"open\" %q must be true or false", Clip(v))
		}
	}
	var err error
	if f.From, err = parseQueryTime("from", q.Get("from")); err != nil {
		return f, err
	}
	if f.To, err = parseQueryTime("to", q.Get("to")); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return f, BadField("to", "bad_time", "\"to\" is before \"from\": swap them")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return f, BadField("limit", "bad_limit", "\"limit\" %q is not a positive integer: send e.g. limit=%d", Clip(v), DefaultListLimit)
		}
		if n > MaxListLimit {
			return f, BadField("limit", "bad_limit", "\"limit\" %d exceeds the maximum %d: page with \"to\" set to the oldest time you got", n, MaxListLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// parseQueryTime accepts RFC3339 or unix seconds (with fraction), like the
// Prometheus HTTP API.
func parseQueryTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0 && f < 1e11 {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	return time.Time{}, BadField(field, "bad_time", "%q %q is neither RFC3339 (2024-05-01T12:00:00Z) nor unix seconds (1714564800)", field, Clip(v))
}

// Search limits: a query has at most maxSearchTerms terms of words of at
// most maxSearchWordLen bytes each.
const (
	maxSearchTerms   = 16
	maxSearchWordLen = 64
	// MaxSearchBytes bounds the text of a search query.
	MaxSearchBytes = 512
)

// SearchTerms splits what a person types into a change search
// ("checkout timeout", "v1.2.3") into terms: one per whitespace-separated
// part, each the list of its words (runs of letters and digits, as the
// full-text index splits text). Every term must match; a term's words
// match as a phrase, the last one as a prefix. Words carry no quotes or
// operators, so nothing typed is query syntax. Errors are *RequestError
// for parameter q.
func SearchTerms(text string) ([][]string, error) {
	if len(text) > MaxSearchBytes {
		return nil, BadField("q", "bad_query", "search text is %d bytes, limit %d: search for a few words", len(text), MaxSearchBytes)
	}
	var terms [][]string
	for _, term := range strings.Fields(text) {
		words := strings.FieldsFunc(term, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if len(words) == 0 {
			continue
		}
		for _, w := range words {
			if len(w) > maxSearchWordLen {
				return nil, BadField("q", "bad_query", "search word %q is longer than %d bytes: search for a shorter word", Clip(w), maxSearchWordLen)
			}
		}
		terms = append(terms, words)
	}
	if len(terms) == 0 {
		return nil, BadField("q", "bad_query", "search text %q has no words: search for words of the change, e.g. q=checkout timeout", Clip(text))
	}
	if len(terms) > maxSearchTerms {
		return nil, BadField("q", "bad_query", "search text has %d terms, limit %d: search for fewer words", len(terms), maxSearchTerms)
	}
	return terms, nil
}
