// Package ingest is the collector's write path: every HTTP write endpoint
// and the Writer they all write through.
//
// The Writer (writer.go) validates a decoded samples.Batch against the
// limits, resolves each series to a storage reference (cached by the
// series key so a series seen before skips label building and hashing),
// appends all samples in one storage transaction and commits it, then
// tells observers (the live tail).
//
// Promise: Write returns nil only after every sample, histogram and
// exemplar of the batch is committed. Invalid parts of a batch (a series
// over a limit, a sample out of order ...) are rejected by name and the
// valid rest is committed, as Prometheus and Mimir do: the error is then a
// *PartialError (400), so a sender neither retries the rejected part nor
// loses the good one. On storage trouble (503) nothing is committed.
//
// The endpoints, one file each, decode with protoparser/<format>:
//
//	remotewrite.go  POST /api/v1/write               Prometheus remote write 1.0 and 2.0
//	textimport.go   POST /api/v1/import/prometheus   Prometheus text exposition
//	influx.go       POST /write, /api/v2/write       InfluxDB line protocol (Telegraf)
//	otlp.go         POST /v1/metrics                 OTLP/HTTP metrics
//
// They all run one prelude (Handlers.serve in http.go): count the request,
// check its method, Content-Type and parameters, read the body under the
// size limits and the in-flight byte budget before taking an insert slot
// (body.go), decode, write, count, answer. A format supplies only what
// differs (a request type: check, decode, answer, failure body); errors map
// to HTTP status in one place, StatusOf.
package ingest
