package query

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/annotations"
)

// writeSuccess writes Prometheus' success envelope. PromQL results are
// encoded by hand (appendValue): encoding/json through MarshalJSON methods
// costs several allocations per point, and dashboards ask for many points.
func writeSuccess(w http.ResponseWriter, data any, warns annotations.Annotations) {
	buf := make([]byte, 0, 4096)
	buf = append(buf, `{"status":"success","data":`...)
	var err error
	buf, err = appendData(buf, data)
	if err != nil {
		writeError(w, &apiError{typ: errInternal, err: err}, 0)
		return
	}
	buf = appendWarnings(buf, warns)
	buf = append(buf, '}', '\n')
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf)
}

func appendWarnings(buf []byte, warns annotations.Annotations) []byte {
	if len(warns) == 0 {
		return buf
	}
	ws, is := warns.AsStrings("", 10, 10)
	if len(ws) > 0 {
		buf = append(buf, `,"warnings":`...)
		buf = appendStrings(buf, ws)
	}
	if len(is) > 0 {
		buf = append(buf, `,"infos":`...)
		buf = appendStrings(buf, is)
	}
	return buf
}

func appendStrings(buf []byte, ss []string) []byte {
	buf = append(buf, '[')
	for i, s := range ss {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendQuote(buf, s)
	}
	return append(buf, ']')
}

func appendData(buf []byte, data any) ([]byte, error) {
	switch v := data.(type) {
	case promql.Vector:
		buf = append(buf, `{"resultType":"vector","result":[`...)
		for i, s := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"metric":`...)
			buf = appendLabels(buf, s.Metric)
			if s.H != nil {
				hb, err := json.Marshal(promql.HPoint{T: s.T, H: s.H})
				if err != nil {
					return buf, err
				}
				buf = append(buf, `,"histogram":`...)
				buf = append(buf, hb...)
			} else {
				buf = append(buf, `,"value":`...)
				buf = appendPoint(buf, s.T, s.F)
			}
			buf = append(buf, '}')
		}
		return append(buf, `]}`...), nil
	case promql.Matrix:
		buf = append(buf, `{"resultType":"matrix","result":[`...)
		for i, s := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"metric":`...)
			buf = appendLabels(buf, s.Metric)
			if len(s.Floats) > 0 {
				buf = append(buf, `,"values":[`...)
				for j, p := range s.Floats {
					if j > 0 {
						buf = append(buf, ',')
					}
					buf = appendPoint(buf, p.T, p.F)
				}
				buf = append(buf, ']')
			}
			if len(s.Histograms) > 0 {
				hb, err := json.Marshal(s.Histograms)
				if err != nil {
					return buf, err
				}
				buf = append(buf, `,"histograms":`...)
				buf = append(buf, hb...)
			}
			buf = append(buf, '}')
		}
		return append(buf, `]}`...), nil
	case promql.Scalar:
		buf = append(buf, `{"resultType":"scalar","result":`...)
		buf = appendPoint(buf, v.T, v.V)
		return append(buf, '}'), nil
	case promql.String:
		buf = append(buf, `{"resultType":"string","result":[`...)
		buf = appendTimestamp(buf, v.T)
		buf = append(buf, ',')
		buf = strconv.AppendQuote(buf, v.V)
		return append(buf, `]}`...), nil
	case []labels.Labels:
		buf = append(buf, '[')
		for i, ls := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendLabels(buf, ls)
		}
		return append(buf, ']'), nil
	case []string:
		return appendStrings(buf, v), nil
	}
	b, err := json.Marshal(data)
	return append(buf, b...), err
}

func appendLabels(buf []byte, ls labels.Labels) []byte {
	buf = append(buf, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, l.Name)
		buf = append(buf, ':')
		buf = appendJSONString(buf, l.Value)
	})
	return append(buf, '}')
}

// appendJSONString quotes s as a JSON string. strconv.AppendQuote is not
// JSON (it emits \x escapes), so fall back to encoding/json for anything
// beyond printable ASCII without quotes or backslashes.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func appendPoint(buf []byte, t int64, v float64) []byte {
	buf = append(buf, '[')
	buf = appendTimestamp(buf, t)
	buf = append(buf, ',', '"')
	buf = appendFloat(buf, v)
	return append(buf, '"', ']')
}

// appendTimestamp writes milliseconds as seconds with up to three decimals,
// exactly as Prometheus does.
func appendTimestamp(buf []byte, t int64) []byte {
	if t < 0 {
		buf = append(buf, '-')
		t = -t
	}
	buf = strconv.AppendInt(buf, t/1000, 10)
	if f := t % 1000; f != 0 {
		buf = append(buf, '.')
		if f < 100 {
			buf = append(buf, '0')
		}
		if f < 10 {
			buf = append(buf, '0')
		}
		buf = strconv.AppendInt(buf, f, 10)
	}
	return buf
}

func appendFloat(buf []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(buf, "NaN"...)
	case math.IsInf(f, 1):
		return append(buf, "+Inf"...)
	case math.IsInf(f, -1):
		return append(buf, "-Inf"...)
	}
	return strconv.AppendFloat(buf, f, 'f', -1, 64)
}

// writeError writes Prometheus' error envelope. status 0 means the status
// that goes with the error type.
func writeError(w http.ResponseWriter, e *apiError, status int) {
	if status == 0 {
		switch e.typ {
		case errBadData:
			status = http.StatusBadRequest
		case errExec:
			status = http.StatusUnprocessableEntity
		case errCanceled:
			status = 499
		case errTimeout:
			status = http.StatusServiceUnavailable
		case errNotFound:
			status = http.StatusNotFound
		case errNotAccept:
			status = http.StatusNotAcceptable
		default:
			status = http.StatusInternalServerError
		}
	}
	b, _ := json.Marshal(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", string(e.typ), e.err.Error()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func sortStrings(s []string) { slices.Sort(s) }
