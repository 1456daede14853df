package ingest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/protoparser/promtext"
	"github.com/telltale-dev/telltale/samples"
)

// ImportPrometheus serves /api/v1/import/prometheus: Prometheus text
// exposition, plain or gzip, with optional millisecond timestamps (what
// VictoriaMetrics/metrics push sends). extra_label=name=value query params
// add labels to every series.
func (h *Handlers) ImportPrometheus(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, &h.text)
}

// textRequest is one text import request.
type textRequest struct {
	noContent
	plainText
	body   bodyBuffers
	batch  samples.Batch
	parser promtext.Parser
	now    func() time.Time // the clock of samples without a timestamp
}

func (q *textRequest) reset() {
	q.body.trim()
	resetBatch(&q.batch)
	q.parser.ExtraLabels = nil
}

func (q *textRequest) buffers() *bodyBuffers { return &q.body }

func (q *textRequest) check(r *http.Request) (err error) {
	q.parser.ExtraLabels, err = extraLabels(r)
	return err
}

func (q *textRequest) decode(_ context.Context, data []byte) (*samples.Batch, error) {
	if err := q.parser.Parse(data, q.now().UnixMilli(), &q.batch); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &q.batch, nil
}

// extraLabels parses the extra_label=name=value query parameters.
func extraLabels(r *http.Request) ([]samples.Label, error) {
	vals := r.URL.Query()["extra_label"]
	if len(vals) == 0 {
		return nil, nil
	}
	out := make([]samples.Label, 0, len(vals))
	for _, v := range vals {
		name, value, ok := strings.Cut(v, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: extra_label=%q: want extra_label=name=value", ErrInvalid, v)
		}
		out = append(out, samples.Label{Name: name, Value: value})
	}
	return out, nil
}
