package tail

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Message types: the "type" field of every message.
const (
	TypeSubscribed = "subscribed"
	TypeSamples    = "samples"
	TypeDeploy     = "deploy"
	TypeChange     = "change"
	TypeNotice     = "notice"
)

// Notice kinds: the "notice" field of a notice message.
const (
	NoticeDropped = "dropped"
	NoticeThinned = "thinned"
)

// Close codes the server uses, with the reason in the close frame's text.
const (
	CloseShutdown   = 1001 // websocket "going away": the server is stopping; reconnect later
	CloseSlowClient = 1008 // websocket "policy violation": the client fell too far behind
)

// Message is one message of the live-tail protocol (see the package doc), as
// the server sends it and clients decode it. Which fields are set depends on
// Type.
type Message struct {
	Type string `json:"type"`
	// Time is the server's time in milliseconds since the Unix epoch: when
	// the message was made, for samples when their write was committed.
	Time int64 `json:"time"`

	// Selectors, MaxRate (samples/s, 0 means unlimited), QueueSize and
	// MaxSamplesPerMessage describe a subscription (type subscribed).
	Selectors            []string `json:"selectors,omitempty"`
	MaxRate              float64  `json:"max_rate,omitempty"`
	QueueSize            int      `json:"queue_size,omitempty"`
	MaxSamplesPerMessage int      `json:"max_samples_per_message,omitempty"`

	// Samples are the matching samples of one write (type samples).
	Samples []Sample `json:"samples,omitempty"`

	// Deploy is the deploy event as the change log recorded it (type deploy).
	Deploy json.RawMessage `json:"deploy,omitempty"`
	// Change is a change of another kind as the change log recorded it
	// (type change).
	Change json.RawMessage `json:"change,omitempty"`

	// Notice is the kind of a notice (NoticeDropped, NoticeThinned), Text a
	// sentence for people.
	Notice          string `json:"notice,omitempty"`
	DroppedMessages int64  `json:"dropped_messages,omitempty"`
	DroppedSamples  int64  `json:"dropped_samples,omitempty"`
	ThinnedSamples  int64  `json:"thinned_samples,omitempty"`
	Text            string `json:"text,omitempty"`
}

// Sample is one sample of a samples message: a float V or, when H is not
// nil, a native histogram (the server then sends no "v").
type Sample struct {
	// Labels is the series' label set, __name__ included.
	Labels map[string]string `json:"labels"`
	// T is the sample's timestamp in milliseconds since the Unix epoch.
	T int64 `json:"t"`
	V Value `json:"v"`
	// H is a native histogram sample, as Prometheus' HTTP API renders one.
	H *Histogram `json:"h,omitempty"`
}

// Histogram is a native histogram sample as Prometheus' HTTP API renders
// it (util/jsonutil.MarshalHistogram): the observation count and sum, and
// the buckets that are not empty.
type Histogram struct {
	Count   Value    `json:"count"`
	Sum     Value    `json:"sum"`
	Buckets []Bucket `json:"buckets,omitempty"`
}

// Bucket is one bucket of a Histogram, on the wire the array
// [boundaries, "lower", "upper", "count"].
type Bucket struct {
	// Boundaries says which bounds are inside the bucket: 0 upper only
	// (lower, upper], 1 lower only [lower, upper), 2 neither, 3 both (the
	// zero bucket).
	Boundaries   int
	Lower, Upper Value
	Count        Value
}

// MarshalJSON implements json.Marshaler.
func (b Bucket) MarshalJSON() ([]byte, error) {
	dst := append([]byte{'['}, strconv.Itoa(b.Boundaries)...)
	for _, v := range []Value{b.Lower, b.Upper, b.Count} {
		dst = appendValue(append(dst, ','), float64(v))
	}
	return append(dst, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Bucket) UnmarshalJSON(raw []byte) error {
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return fmt.Errorf("histogram bucket %s is not an array: %w", truncate(string(raw), 64), err)
	}
	if len(parts) != 4 {
		return fmt.Errorf("histogram bucket %s has %d elements; want 4: [boundaries, lower, upper, count]", truncate(string(raw), 64), len(parts))
	}
	if err := json.Unmarshal(parts[0], &b.Boundaries); err != nil || b.Boundaries < 0 || b.Boundaries > 3 {
		return fmt.Errorf("histogram bucket boundaries %s: want 0, 1, 2 or 3", truncate(string(parts[0]), 64))
	}
	for i, v := range []*Value{&b.Lower, &b.Upper, &b.Count} {
		if err := v.UnmarshalJSON(parts[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// Value is a sample value. On the wire it is a JSON string as in the
// Prometheus HTTP API ("1.5", "NaN", "+Inf", "-Inf"), so every float64
// survives; decoding also accepts a JSON number.
type Value float64

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) {
	return appendValue(nil, float64(v)), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *Value) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("sample value %s is not a number: %w", b, err)
	}
	*v = Value(f)
	return nil
}

func appendValue(dst []byte, f float64) []byte {
	dst = append(dst, '"')
	switch {
	case math.IsInf(f, 1):
		dst = append(dst, "+Inf"...)
	case math.IsInf(f, -1):
		dst = append(dst, "-Inf"...)
	case math.IsNaN(f):
		dst = append(dst, "NaN"...)
	default:
		dst = strconv.AppendFloat(dst, f, 'g', -1, 64)
	}
	return append(dst, '"')
}

// SeriesString renders labels as name{a="b", ...} with labels sorted, the
// way PromQL prints a series.
func SeriesString(ls map[string]string) string {
	names := make([]string, 0, len(ls))
	for n := range ls {
		if n != "__name__" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var sb strings.Builder
	sb.WriteString(ls["__name__"])
	sb.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(n)
		sb.WriteByte('=')
		sb.WriteString(strconv.Quote(ls[n]))
	}
	sb.WriteByte('}')
	return sb.String()
}
