package query

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

func TestAppendTimestamp(t *testing.T) {
	f := func(ms int64, want string) {
		t.Helper()
		if got := string(appendTimestamp(nil, ms)); got != want {
			t.Errorf("appendTimestamp(%d): got %s; want %s", ms, got, want)
		}
	}
	f(0, "0")
	f(1435781451781, "1435781451.781")
	f(1435781451000, "1435781451")
	f(1435781451005, "1435781451.005")
	f(1435781451050, "1435781451.050")
	f(-1500, "-1.500")
}

func TestAppendFloat(t *testing.T) {
	f := func(v float64, want string) {
		t.Helper()
		if got := string(appendFloat(nil, v)); got != want {
			t.Errorf("appendFloat(%v): got %s; want %s", v, got, want)
		}
	}
	f(1, "1")
	f(0.25, "0.25")
	f(-7, "-7")
	f(math.NaN(), "NaN")
	f(math.Inf(1), "+Inf")
	f(math.Inf(-1), "-Inf")
	f(1e21, "1000000000000000000000")
}

// TestAppendDataMatchesEncodingJSON checks the hand-written encoder against
// Prometheus' own MarshalJSON methods for vectors, and that it is valid JSON.
func TestAppendDataMatchesEncodingJSON(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "job", "a\"b\\c", "path", "/ü<&>\n")
	vec := promql.Vector{{T: 1700000000123, F: 1.5, Metric: ls}}
	got, err := appendData(nil, vec)
	if err != nil {
		t.Fatal(err)
	}
	wantResult, _ := json.Marshal(vec)
	var g struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("invalid JSON %s: %v", got, err)
	}
	if g.ResultType != "vector" || string(g.Result) != string(wantResult) {
		t.Fatalf("got %s; want result %s", got, wantResult)
	}
	mat := promql.Matrix{{Metric: ls, Floats: []promql.FPoint{{T: 1000, F: 1}, {T: 2500, F: math.NaN()}}}}
	got, err = appendData(nil, mat)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a\"b\\c","path":"/ü\u003c\u0026\u003e\n"},"values":[[1,"1"],[2.500,"NaN"]]}]}`
	if string(got) != want {
		t.Fatalf("got %s; want %s", got, want)
	}
}
