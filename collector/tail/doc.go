// Package tail is the collector's live tail: "tail -f for metrics". A Hub
// watches every committed write (it implements ingest.Observer) and streams
// the samples that match each websocket client's series selectors, plus
// deploy events as they are recorded, so people can watch a deploy land in
// the numbers.
//
// # Promises
//
// The tail never slows ingest. With no client connected Active is false and
// the writer skips the hub entirely. With clients, Observe costs one cache
// lookup per series in the steady state, however many clients there are:
// which clients want a series is cached by its storage reference for all of
// them at once (a paged array for the embedded TSDB's small references, a
// bounded map beyond). It copies only matching samples (time and value;
// labels are copied once per series), never blocks and never keeps the
// batch (a native histogram sample is copied once for all clients that
// want it). JSON is built and written on each client's own goroutine, at most
// one samples message per FlushInterval. Each client has a bounded queue:
// when it is full new messages are dropped and counted, the client is told
// what it missed once it catches up (a "dropped" notice), and a client that
// stays behind is disconnected with a close frame that says why. Memory per
// client is bounded by QueueSize times MaxSamplesPerMessage queued samples
// (32 bytes each; a native histogram counts as as many samples as its
// buckets and spans take room, so histograms keep the same bound); the shared cache by 8 bytes per series reference below
// 2^22 plus MaxCachedSeries entries, and it is dropped with the last client.
//
// On Close every client gets a close frame ("server shutting down") and
// every goroutine of the hub has ended when Close returns.
//
// # Protocol
//
// A client opens a websocket to
//
//	GET /api/v1/tail?match[]=<selector>[&match[]=<selector>...][&max_rate=<samples/s>]
//
// with the read scope's bearer token when auth is on (browsers, which cannot
// set headers on websockets, pass ?access_token=<token>). Each match[] is a
// PromQL series selector such as http_requests_total{job="api"}; a series is
// streamed when it matches any of them. max_rate (optional) thins the stream
// to at most that many samples per second with a token bucket; thinned
// samples are reported in "thinned" notices.
//
// Before the upgrade the request is checked; failures are plain-text HTTP
// answers that say what to fix:
//
//	400  no match[], too many match[] (-tail.max-selectors), a selector that
//	     does not parse (the PromQL parser's message), a bad max_rate, or a
//	     request that is not a websocket upgrade
//	403  an Origin header that is not this collector's host (browsers on
//	     other sites); clients that send no Origin are allowed
//	405  a method other than GET
//	503  -tail.max-clients clients already connected, or shutting down
//
// After the upgrade the server sends text messages, each one JSON object
// with a "type" and a "time" (server time, milliseconds since the epoch):
//
//	{"type":"subscribed","time":1700000000000,"selectors":["up{job=\"api\"}"],
//	 "queue_size":256,"max_samples_per_message":256}
//	    First message: the subscription as the server understood it
//	    ("max_rate" too when set). queue_size counts queued writes (each up
//	    to max_samples_per_message samples).
//
//	{"type":"samples","samples":[
//	  {"labels":{"__name__":"up","job":"api"},"t":1700000000000,"v":"1"}],
//	 "time":1700000000123}
//	    Matching samples of committed writes, in commit order; "time" is
//	    when the last of them was committed, "t" is a sample's own
//	    timestamp in ms. "v" is a string as in the Prometheus HTTP API
//	    ("1.5", "NaN", "+Inf", "-Inf") so every float survives JSON. A
//	    client gets at most one samples message per FlushInterval (10ms):
//	    writes committed meanwhile share a message (up to 256 KiB), so a
//	    busy collector makes few syscalls per client.
//
//	{"labels":{"__name__":"latency","job":"api"},"t":1700000000000,
//	 "h":{"count":"10","sum":"20","buckets":[[0,"0.5","1","2"],[0,"1","2","8"]]}}
//	    A native histogram sample (remote write, OTLP exponential, NHCB) in
//	    a samples message has "h" instead of "v": the histogram exactly as
//	    Prometheus' HTTP API renders one in query results (its
//	    util/jsonutil.MarshalHistogram): count and sum as strings, and the
//	    buckets that are not empty as [boundaries, "lower", "upper",
//	    "count"], boundaries 0 for (lower, upper], 1 for [lower, upper), 2
//	    for (lower, upper), 3 for [lower, upper] (the zero bucket). Integer
//	    histograms are rendered as float ones, as Prometheus does.
//	    Exemplars are not streamed.
//
//	{"type":"deploy","time":1700000000456,"deploy":{"id":"...","service":"api",...}}
//	    A deploy event as the change log recorded it (created or changed).
//
//	{"type":"change","time":1700000000456,"change":{"id":"...","kind":"switch",...}}
//	    A change of another kind (switch flip, note, incident ...), the same way.
//
//	{"type":"notice","time":...,"notice":"dropped","dropped_messages":3,
//	 "dropped_samples":120,"text":"..."}
//	    The client fell behind and that many messages (with that many
//	    samples) were not sent; it comes before the first message after the
//	    gap, or on its own once the queue has drained.
//
//	{"type":"notice","time":...,"notice":"thinned","thinned_samples":40,"text":"..."}
//	    max_rate held back that many samples since the last such notice
//	    (sent at most once a second).
//
// The server pings every PingInterval and expects pongs (every websocket
// library answers them by itself); messages from the client are read and
// ignored (at most 4 KiB each). The server closes with a close frame whose
// reason says why: 1001 "server shutting down", 1008 when the client was too
// slow to keep up ("too slow: ..."). Clients should reconnect with backoff on
// 1001, 1006 and 503, and not retry 400/401/403 answers.
//
// Package tail/client implements this protocol for Go programs and the
// collector's "tail" command.
package tail
