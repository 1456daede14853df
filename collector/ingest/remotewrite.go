package ingest

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"strconv"

	"github.com/telltale-dev/telltale/protoparser/remotewrite"
	"github.com/telltale-dev/telltale/samples"
)

// Content types of remote write 1.0 and 2.0.
const (
	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"
)

// RemoteWrite serves POST /api/v1/write: Prometheus remote write 1.0 and
// 2.0, snappy-compressed protobuf, float samples, native histograms and
// exemplars. It answers 204 once every sample is committed; when part of
// the request is invalid it commits the rest and answers 400 naming what
// was rejected (Writer.Write). Remote write 2.0 answers carry the
// X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written counts
// of what was stored, on 204 and 400 alike.
func (h *Handlers) RemoteWrite(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, &h.remoteWrite)
}

// rwRequest is one remote write request.
type rwRequest struct {
	plainText
	body    bodyBuffers
	batch   samples.Batch
	version int
}

func (q *rwRequest) reset() {
	q.body.trim()
	resetBatch(&q.batch)
}

func (q *rwRequest) buffers() *bodyBuffers { return &q.body }

func (q *rwRequest) check(r *http.Request) (err error) {
	q.version, err = remoteWriteVersion(r.Header.Get("Content-Type"))
	return err
}

func (q *rwRequest) decode(_ context.Context, data []byte) (*samples.Batch, error) {
	var err error
	if q.version == 2 {
		_, err = remotewrite.DecodeV2(data, &q.batch)
	} else {
		_, err = remotewrite.DecodeV1(data, &q.batch)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &q.batch, nil
}

func (q *rwRequest) answer(w http.ResponseWriter, written Written, err error) error {
	if q.version == 2 {
		// What was stored, also when part of the request was rejected
		// (remote write 2.0 spec: the sender trusts these counts).
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(written.Samples))
		w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(written.Histograms))
		w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(written.Exemplars))
	}
	return noContent{}.answer(w, written, err)
}

// remoteWriteVersion maps a Content-Type to the remote write version.
func remoteWriteVersion(ct string) (int, error) {
	if ct == "" {
		return 1, nil // remote write 1.0 senders predating the header
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, fmt.Errorf("%w: cannot parse Content-Type %q: %v", ErrUnsupportedMediaType, ct, err)
	}
	if mt != "application/x-protobuf" {
		return 0, fmt.Errorf("%w: Content-Type %q; remote write needs application/x-protobuf (proto=%s or %s)", ErrUnsupportedMediaType, ct, protoV1, protoV2)
	}
	switch params["proto"] {
	case "", protoV1:
		return 1, nil
	case protoV2:
		return 2, nil
	}
	return 0, fmt.Errorf("%w: proto=%q in Content-Type; supported: %s (remote write 1.0) and %s (2.0)", ErrUnsupportedMediaType, params["proto"], protoV1, protoV2)
}
