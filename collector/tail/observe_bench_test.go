package tail

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/telltale-dev/telltale/samples"
)

// benchBatch is a typical remote-write request: nSeries series of one
// sample each, spread over 100 jobs, with series keys and refs as the
// writer has them once its cache is warm.
func benchBatch(nSeries int) (*samples.Batch, []storage.SeriesRef) {
	var b samples.Batch
	refs := make([]storage.SeriesRef, 0, nSeries)
	for i := range nSeries {
		b.StartSeries([]byte("k" + strconv.Itoa(i)))
		b.AddLabel("__name__", "http_requests_total")
		b.AddLabel("job", "job-"+strconv.Itoa(i%100))
		b.AddLabel("instance", "host-"+strconv.Itoa(i)+":9100")
		b.AddLabel("code", "200")
		b.AddSample(1_700_000_000_000, float64(i))
		refs = append(refs, storage.SeriesRef(i+1))
	}
	return &b, refs
}

// BenchmarkObserve measures what the tail adds to each committed write:
// Observe's cost per sample of a 1000-series write with 0, 10 and 100
// clients. "one_job" clients each watch one job (1% of the series, the
// usual use); "all" clients watch every series (the worst case: every
// sample is copied into every client's queue). Queues are emptied between
// writes, as client goroutines would, inside the timing.
func BenchmarkObserve(b *testing.B) {
	const nSeries = 1000
	for _, match := range []string{"one_job", "all"} {
		for _, clients := range []int{0, 10, 100} {
			if match == "all" && clients == 0 {
				continue
			}
			b.Run(fmt.Sprintf("match=%s/clients=%d", match, clients), func(b *testing.B) {
				h := New(Options{QueueSize: 1 << 12, MaxSamplesPerMessage: 256, Now: time.Now})
				subs := make([]*subscriber, clients)
				for i := range subs {
					sel := fmt.Sprintf(`http_requests_total{job="job-%d"}`, i%100)
					if match == "all" {
						sel = `{__name__=~".+"}`
					}
					ms, err := h.opts.ParseSelector(sel)
					if err != nil {
						b.Fatal(err)
					}
					subs[i] = h.newSubscriber([]string{sel}, [][]*labels.Matcher{ms}, 0)
					h.register(subs[i])
				}
				batch, refs := benchBatch(nSeries)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if h.Active() { // as the writer does
						h.Observe(batch, refs)
					}
					for _, s := range subs {
						for len(s.queue) > 0 {
							h.putItem(<-s.queue)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nSeries), "ns/sample")
			})
		}
	}
}
