package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/telltale-dev/telltale/collector/query"
	"github.com/telltale-dev/telltale/instrument"
)

// config holds every flag of the collector.
type config struct {
	listen        string
	dataDir       string
	retention     time.Duration
	oooWindow     time.Duration
	walCompress   string
	tokensFile    string
	tlsCert       string
	tlsKey        string
	hostMetrics   bool
	hostInterval  time.Duration
	hostRoot      string
	selfMetrics   bool
	selfInterval  time.Duration
	logLevel      string
	logFormat     string
	version       bool
	shutdownGrace time.Duration
	// stderr is where the startup hint for people goes (with -log.format=text).
	stderr io.Writer

	maxBodyBytes     int64
	maxDecodedBytes  int64
	maxLabels        int
	maxLabelNameLen  int
	maxLabelValueLen int
	maxFutureDrift   time.Duration
	maxConcurrent    int
	maxQueueDuration time.Duration
	influxMaxLineLen int
	otlpMaxDepth     int
	otlpMaxAttrs     int
	otlpDelta        bool
	otlpDeltaSeries  int
	otlpNHCB         bool
	maxHistBuckets   int
	maxExemplarLabel int
	maxExemplars     int64
	maxSeries        int64
	bodyReadTimeout  time.Duration
	maxInflightBytes int64
	maxHourlySeries  int64

	queryTimeout        time.Duration
	queryMaxSamples     int
	lookbackDelta       time.Duration
	queryMaxConcurrent  int
	queryMaxQueued      int
	queryMaxQueueWait   time.Duration
	queryMaxLength      int
	queryMaxDepth       int
	queryWriteTimeout   time.Duration
	corsOrigin          string
	allowedHosts        string
	queryFeatures       stringList
	queryCacheBytes     int64
	queryCacheFreshness time.Duration
	queryParallel       int
	queryMinSliceSteps  int
	queryFastPath       bool

	// flagValues is every flag's value by name, for /api/v1/status/flags.
	flagValues map[string]string

	deployDB         string
	changesPG        string        // -changes.postgres-url
	changesClaim     time.Duration // -changes.claim-timeout
	grafanaURL       string
	traceURL         string
	grafanaTokenFile string
	webhooks         stringList

	chatConfig string
	chatIRC    stringList
	chatMatrix stringList
	chatSlack  stringList

	impactEnabled bool
	impactWindow  windowFlag
	impactConfig  string

	rulesFiles          stringList
	rulesDashboards     bool
	rulesDashboardsIntv time.Duration
	rulesInterval       time.Duration
	rulesExternalURL    string
	rulesOutageTol      time.Duration
	rulesForGrace       time.Duration
	rulesResendDelay    time.Duration
	rulesChangesWindow  time.Duration
	alertmanagerURLs    stringList
	alertmanagerTimeout time.Duration
	alertWebhooks       stringList
	alertDeployWebhooks bool

	// forward mode (wire_forward.go)
	remoteWriteURLs     stringList
	remoteWriteVersion  int
	remoteWriteTenant   string
	remoteConfig        string
	queryURL            string
	queryRead           string
	queryTenant         string
	queryDropLabels     string
	engineRetention     time.Duration
	forwardQueueDir     string
	forwardQueueMax     int64
	forwardSync         time.Duration
	forwardMaxSamples   int
	forwardShutdownWait time.Duration

	// replicas over NATS (wire_fanout.go)
	natsURL           string
	natsListen        string
	natsClusterListen string
	natsRoutes        string
	natsSubject       string
	natsReplica       string

	tailMaxClients   int
	tailMaxSelectors int
	tailQueueSize    int
	tailMaxLag       time.Duration
	tailWriteTimeout time.Duration
	tailPing         time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{stderr: stderr}
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: collector [flags]\n       collector tail [-collector URL] [-json] '<selector>' ...   (live tail; collector tail -h)\n       collector backup [-data DIR] BACKUPDIR                      (samples and change log; collector backup -h)\n       collector check-rules [-lint-fatal] FILE...                 (validate rule files like promtool check rules)\n       collector slo-rules SLO-FILE > RULES                        (generate SLO recording and burn-rate alerting rules)\n       collector migrate-changes [-data DIR] -changes.postgres-url URL   (move the change log to PostgreSQL for replicas)\n\nTelltale's collector: ingest, storage, Prometheus query API, rules and alerts, change log, live tail and web console.\nOpen http://<listen>/ for the console; point Grafana's Prometheus data source at http://<listen>.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9470", "address to serve HTTP on; listening beyond loopback without -auth.tokens-file logs a warning")
	fs.StringVar(&c.dataDir, "data", "./telltale-data", "directory for the TSDB and the change log")
	fs.DurationVar(&c.retention, "retention", 15*24*time.Hour, "how long samples are kept")
	fs.DurationVar(&c.oooWindow, "storage.out-of-order-window", 6*time.Hour, "how far behind the newest sample a sample may arrive and still be stored (agents replaying a spool are hours behind); 0 turns out-of-order ingestion off")
	fs.StringVar(&c.walCompress, "storage.wal-compression", "none", "WAL compression: none, snappy (Prometheus' default: about half the WAL on disk for about 10% more ingest CPU) or zstd")
	fs.StringVar(&c.tokensFile, "auth.tokens-file", "", "YAML file of bearer tokens and their scopes (write, read, deploy, admin); empty means no auth")
	fs.StringVar(&c.tlsCert, "tls.cert-file", "", "TLS certificate file; with -tls.key-file serves HTTPS")
	fs.StringVar(&c.tlsKey, "tls.key-file", "", "TLS key file; with -tls.cert-file serves HTTPS")
	fs.BoolVar(&c.hostMetrics, "host-metrics", true, "record this host's CPU, memory, disk and network metrics in-process, like the agent does; paused while an agent records the same host (its telltale_agent_info has this host's instance)")
	fs.DurationVar(&c.hostInterval, "host-metrics.interval", 10*time.Second, "interval of the in-process host metrics")
	fs.StringVar(&c.hostRoot, "host-metrics.root", "/", "root under which /proc and /sys are read for host metrics")
	fs.BoolVar(&c.selfMetrics, "self-metrics", true, "record the collector's own metrics (what /metrics serves) into its own storage with job=\"telltale-collector\", for the Telltale dashboard; turn off when something already scrapes /metrics into this collector")
	fs.DurationVar(&c.selfInterval, "self-metrics.interval", 10*time.Second, "interval of -self-metrics")
	fs.StringVar(&c.logLevel, "log.level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log.format", "text", "log format: text or json")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 30*time.Second, "how long a graceful stop waits for in-flight requests and websocket clients")

	fs.Int64Var(&c.maxBodyBytes, "ingest.max-body-bytes", 32<<20, "largest request body accepted as sent (compressed), checked before decompressing; larger bodies get 413")
	fs.Int64Var(&c.maxDecodedBytes, "ingest.max-decoded-bytes", 128<<20, "largest request body accepted after decompression (snappy's declared length is checked before decoding); larger get 413")
	fs.DurationVar(&c.bodyReadTimeout, "ingest.body-read-timeout", time.Minute, "longest a write request's body may take to arrive; the body is read before the request takes an insert slot, so a slow sender only holds its own connection")
	fs.Int64Var(&c.maxInflightBytes, "ingest.max-inflight-bytes", 1<<30, "memory all write requests may hold together: each reserves its body, decompressed body and decoded batch (about 3-4x the decompressed size) as it reads; beyond it writes get 503 with Retry-After; 0 means no bound")
	fs.IntVar(&c.maxLabels, "ingest.max-labels-per-series", 40, "most labels a series may have, __name__ included; more gets 400")
	fs.IntVar(&c.maxLabelNameLen, "ingest.max-label-name-len", 256, "longest label name in bytes; longer gets 400")
	fs.IntVar(&c.maxLabelValueLen, "ingest.max-label-value-len", 4096, "longest label value in bytes; longer gets 400")
	fs.DurationVar(&c.maxFutureDrift, "ingest.max-future-drift", 10*time.Minute, "samples later than now plus this are rejected with 400 (a sender with a wrong clock)")
	fs.IntVar(&c.maxConcurrent, "ingest.max-concurrent-inserts", 2*runtime.GOMAXPROCS(0), "write requests processed at once; more wait up to -ingest.max-queue-duration")
	fs.DurationVar(&c.maxQueueDuration, "ingest.max-queue-duration", time.Minute, "how long a write waits for a slot before it gets 503 with Retry-After")
	fs.IntVar(&c.otlpMaxDepth, "otlp.max-attribute-depth", 16, "deepest an OTLP attribute value may nest (arrays and key-value lists of values; a plain value is 1); deeper gets 400")
	fs.IntVar(&c.otlpMaxAttrs, "otlp.max-attributes", 128, "most attributes an OTLP resource, scope, metric, data point or exemplar may have; more gets 400")
	fs.BoolVar(&c.otlpDelta, "otlp.delta-to-cumulative", true, "turn OTLP delta sums and histograms into cumulative ones per series (a running total in memory, as the OpenTelemetry deltatocumulative processor does), so rate() works on them; false rejects them")
	fs.IntVar(&c.otlpDeltaSeries, "otlp.delta-max-series", 100_000, "most OTLP delta series -otlp.delta-to-cumulative keeps a running total for; points of more get rejected")
	fs.BoolVar(&c.otlpNHCB, "otlp.histograms-as-nhcb", false, "store OTLP explicit-bucket histograms as native histograms with custom buckets (one series) instead of classic _bucket/_sum/_count series")
	fs.IntVar(&c.maxHistBuckets, "ingest.max-histogram-buckets", 512, "most buckets (positive and negative) a native histogram sample may have; more gets 400")
	fs.IntVar(&c.maxExemplarLabel, "ingest.max-exemplar-label-bytes", 128, "longest an exemplar's label names and values may be together, in characters (OpenMetrics' limit, which the TSDB enforces too); longer gets 400")
	fs.Int64Var(&c.maxSeries, "storage.max-series", 2_000_000, "most series the TSDB head may hold (each costs a few KiB of memory); a sample of a new series beyond it gets 400 naming the series, and existing series keep ingesting; 0 means no limit")
	fs.Int64Var(&c.maxHourlySeries, "storage.max-hourly-series", 0, "most new series created in the last hour (as VictoriaMetrics' -storage.maxHourlySeries): stops a label holding a request id early; beyond it new series get 400; 0 means no limit")
	fs.Int64Var(&c.maxExemplars, "storage.max-exemplars", 100_000, "exemplars kept in memory (a ring buffer, as Prometheus' storage.exemplars.max-exemplars); 0 turns exemplar storage off")
	fs.IntVar(&c.influxMaxLineLen, "ingest.influx-max-line-len", 256<<10, "longest Influx line protocol line in bytes; longer gets 400")

	fs.DurationVar(&c.queryTimeout, "query.timeout", 2*time.Minute, "longest a query may run")
	fs.IntVar(&c.queryMaxSamples, "query.max-samples", 50_000_000, "most samples a query may load into memory")
	fs.DurationVar(&c.lookbackDelta, "query.lookback-delta", 5*time.Minute, "how far back an instant selector looks for the latest sample")
	fs.IntVar(&c.queryMaxConcurrent, "query.max-concurrency", 20, "queries (and series, label and remote-read requests) run at once; more wait in a queue")
	fs.IntVar(&c.queryMaxQueued, "query.max-queue", 80, "queries that may wait for a slot; more get 503 with Retry-After at once")
	fs.DurationVar(&c.queryMaxQueueWait, "query.max-queue-duration", 30*time.Second, "how long a query waits for a slot before it gets 503 with Retry-After")
	fs.IntVar(&c.queryMaxLength, "query.max-length", 256<<10, "longest PromQL query in bytes; longer gets 400")
	fs.IntVar(&c.queryMaxDepth, "query.max-depth", 1000, "deepest PromQL nesting (brackets plus chained operators) accepted; deeper gets 400 before parsing, which is quadratic in it")
	fs.DurationVar(&c.queryWriteTimeout, "query.write-timeout", time.Minute, "how long writing a query's answer may take after it is computed; a client that stops reading is cut off after this")
	fs.Int64Var(&c.queryCacheBytes, "query.cache-size", 128<<20, "bytes of memory the range-query result cache may use (a dashboard refresh then computes only the newest steps); 0 turns it off. Answers with nocache=1 bypass it")
	fs.DurationVar(&c.queryCacheFreshness, "query.cache-freshness", time.Minute, "steps whose data is newer than this are not cached; a sample arriving later than this after its timestamp drops the cached steps it changes")
	fs.IntVar(&c.queryParallel, "query.parallel", runtime.GOMAXPROCS(0), "time slices of one range query evaluated at once")
	fs.BoolVar(&c.queryFastPath, "query.fast-path", true, "evaluate rate and increase of a counter, and their sum, once per series for all steps of a range query instead of step by step (answers are identical; false leaves every step to Prometheus' engine)")
	fs.IntVar(&c.queryMinSliceSteps, "query.min-slice-steps", 30, "fewest steps of a range query evaluated as a slice of its own (smaller slices cost more setup than they save)")
	fs.Var(&c.queryFeatures, "query.enable-feature", "PromQL feature to turn on, with Prometheus' --enable-feature name: promql-experimental-functions, promql-delayed-name-removal, promql-binop-fill-modifiers, promql-unquoted-utf8-names, promql-per-step-stats; comma-separated or repeated")
	fs.StringVar(&c.allowedHosts, "web.allowed-hosts", "", "comma-separated host names the collector answers to without -auth.tokens-file, besides IP addresses and localhost (e.g. the compose service name); '*' allows any. Other names get 403: a DNS-rebinding page would use one")
	fs.StringVar(&c.corsOrigin, "web.cors-origin", "", "regexp of the browser origins allowed to read the API cross-site (CORS), e.g. 'https?://grafana\\.example\\.com'; empty allows none (Prometheus allows '.*')")

	fs.StringVar(&c.changesPG, "changes.postgres-url", "", "keep the change log and its outbox in PostgreSQL (postgres://user:password@host:5432/db) instead of -deploy.db, so collector replicas share one log and deliver each annotation, webhook and impact run once; copy an existing log with `collector migrate-changes`")
	fs.DurationVar(&c.changesClaim, "changes.claim-timeout", 2*time.Minute, "with -changes.postgres-url: how long a replica holds the deliveries it took; a replica that died mid-delivery leaves them to the others after this (an attempt under way holds its delivery at least for its timeout plus 5s)")
	fs.StringVar(&c.deployDB, "deploy.db", "", "SQLite file of the change log (deploys, switch flips, incidents, notes ...); default <-data>/deploys.db; a deploy log of an older collector is migrated on start")
	fs.StringVar(&c.grafanaURL, "grafana.url", "", "Grafana base URL; when set every change becomes a Grafana annotation tagged with its kind, and console panels link to Grafana")
	fs.StringVar(&c.traceURL, "console.trace-url", "", "URL template of a trace in your tracing UI, e.g. 'https://tempo.example.com/trace/{{trace_id}}' ({{label}} is an exemplar label); when set, console charts draw their queries' exemplars as points that link to the trace")
	fs.StringVar(&c.grafanaTokenFile, "grafana.token-file", "", "file with a Grafana service account token (Editor role); or set TELLTALE_GRAFANA_TOKEN")

	fs.BoolVar(&c.impactEnabled, "impact.enabled", true, "analyse what each deploy, switch flip and config change did to its service's key signals once -impact.window has passed after it (GET /api/v1/changes/<id>/impact)")
	fs.Var(c.impactWindow.init(15*time.Minute), "impact.window", "`duration` of the before and after windows of deploy impact analysis, 1m..6h; overrides the window of -impact.config when given")
	fs.StringVar(&c.impactConfig, "impact.config", "", "optional YAML file of deploy impact settings: window, step, rate_window and extra or retuned signals per service")
	fs.Var(&c.webhooks, "deploy.webhook", "chat webhook told about every change, as slack=<url> (Slack-compatible JSON) or json=<url> (the change object); repeatable")
	fs.Var(&c.rulesFiles, "rules.files", "Prometheus rule file (recording and alerting rules) or glob, e.g. rules/*.rules.yml; repeatable. Reloaded on SIGHUP and POST /-/reload (admin scope); check files with: collector check-rules FILE...")
	fs.BoolVar(&c.rulesDashboards, "rules.dashboards", true, "evaluate the recording rules the built-in dashboards read (the console's and the generated Grafana JSON's heaviest panels); without them those panels are empty")
	fs.DurationVar(&c.rulesDashboardsIntv, "rules.dashboards-interval", 30*time.Second, "evaluation interval of the dashboards' recording rules")
	fs.DurationVar(&c.rulesInterval, "rules.evaluation-interval", time.Minute, "how often rule groups without their own interval are evaluated")
	fs.StringVar(&c.rulesExternalURL, "rules.external-url", "", "the collector as people reach it, for the links in alert notifications, $externalURL in templates and the links in chat messages; default http://<-listen>")
	fs.DurationVar(&c.rulesOutageTol, "rules.outage-tolerance", time.Hour, "longest collector downtime after which alerts' `for` state is still restored from ALERTS_FOR_STATE")
	fs.DurationVar(&c.rulesForGrace, "rules.for-grace-period", 10*time.Minute, "least time a restored pending alert with a longer `for` waits before it fires (Prometheus' --rules.alert.for-grace-period)")
	fs.DurationVar(&c.rulesResendDelay, "rules.resend-delay", time.Minute, "how often a firing alert is re-sent to the Alertmanagers")
	fs.DurationVar(&c.rulesChangesWindow, "rules.changes-window", time.Hour, "how far before an alert became active the deploys of its service (label service) are named in its telltale_changes annotation")
	fs.Var(&c.alertmanagerURLs, "alertmanager.url", "Alertmanager base URL (API v2), e.g. http://alertmanager:9093; user:password@ is sent as basic auth; repeatable")
	fs.DurationVar(&c.alertmanagerTimeout, "alertmanager.timeout", 10*time.Second, "longest one send to an Alertmanager may take; failed sends are retried with backoff")
	fs.Var(&c.alertWebhooks, "alert.webhook", "chat webhook told when an alert fires and resolves, as slack=<url> or json=<url>, for teams without an Alertmanager; repeatable")
	fs.BoolVar(&c.alertDeployWebhooks, "alert.deploy-webhooks", true, "also tell every -deploy.webhook about alerts firing and resolving")
	fs.StringVar(&c.chatConfig, "chat.config", "", "optional YAML file of chat networks, routes (which changes go to which channel by service, env, kind) and users (chat users mapped to -auth.tokens-file tokens, for !switch); see the README's chat section")
	fs.Var(&c.chatIRC, "chat.irc", "IRC network to post every change and alert to and answer commands in, as irc://[nick@]host:6667/#channel (ircs:// for TLS; ?nick=, &auth=pass); a password from TELLTALE_IRC_PASSWORD logs in with SASL PLAIN; repeatable")
	fs.Var(&c.chatMatrix, "chat.matrix", "Matrix room to post every change and alert to and answer commands in, as https://homeserver/#room:server (or /!roomid:server); the access token from TELLTALE_MATRIX_TOKEN; repeatable")
	fs.Var(&c.chatSlack, "chat.slack", "Slack (or Discord's /slack, Mattermost) incoming-webhook URL, or a Slack channel id for a bot token from TELLTALE_SLACK_TOKEN (commands through the Events API with TELLTALE_SLACK_SIGNING_SECRET); repeatable")
	fs.Var(&c.remoteWriteURLs, "storage.remote-write-url", "forward mode: instead of storing samples, queue them on disk and remote-write them to this engine (Cortex http://cortex:9009/api/v1/push, Thanos receive, Prometheus ...); repeatable; per-target settings in -storage.remote-config. Needs -storage.query-url")
	fs.IntVar(&c.remoteWriteVersion, "storage.remote-write-version", 1, "remote write protocol of the -storage.remote-write-url targets: 1 or 2 (Thanos receive silently stores nothing of 2.0)")
	fs.StringVar(&c.remoteWriteTenant, "storage.remote-write-tenant", "", "tenant sent as X-Scope-OrgID to the -storage.remote-write-url targets (Cortex, Thanos receive); empty sends none")
	fs.StringVar(&c.remoteConfig, "storage.remote-config", "", "forward mode: YAML file of remote_write targets (name, url, protocol, tenant, headers, bearer_token_file, tls_ca_file) and the query engine (query: url, read, tenant, headers, drop_labels ...); see the README")
	fs.StringVar(&c.queryURL, "storage.query-url", "", "forward mode: base of the engine's Prometheus API, queried for everything the collector serves: http://cortex:9009/prometheus (Cortex), http://thanos-query:10902 (Thanos)")
	fs.StringVar(&c.queryRead, "storage.query-read", "auto", "forward mode: how raw samples are read from -storage.query-url: remote-read (exact: staleness markers, native histograms), query-api (for engines without remote read, such as Thanos Query) or auto (remote read when the engine serves it)")
	fs.StringVar(&c.queryTenant, "storage.query-tenant", "", "forward mode: tenant sent as X-Scope-OrgID to -storage.query-url; default -storage.remote-write-tenant")
	fs.StringVar(&c.queryDropLabels, "storage.query-drop-labels", "", "forward mode: comma-separated labels the engine adds that queries must not see, e.g. receive_cluster,tenant_id for Thanos receive (series that then coincide are merged)")
	fs.DurationVar(&c.engineRetention, "storage.engine-retention", 0, "forward mode: how long the engine keeps data, so the query cache drops results computed from deleted data; 0 means unknown")
	fs.StringVar(&c.forwardQueueDir, "forward.queue-dir", "", "forward mode: directory of the on-disk queues, one per target; default <-data>/forward. One collector per directory")
	fs.Int64Var(&c.forwardQueueMax, "forward.queue-max-bytes", 1<<30, "forward mode: most bytes each target's queue may hold on disk; when full the oldest samples are dropped and counted")
	fs.DurationVar(&c.forwardSync, "forward.sync-interval", time.Second, "forward mode: how often the queues are fsynced; a kill -9 loses nothing acknowledged, a power cut at most this much (0 fsyncs every write)")
	fs.IntVar(&c.forwardMaxSamples, "forward.max-samples-per-send", 5000, "forward mode: most samples in one remote write request; keep it under the engine's per-tenant burst (Cortex -distributor.ingestion-burst-size)")
	fs.DurationVar(&c.forwardShutdownWait, "forward.shutdown-drain", 10*time.Second, "forward mode: on shutdown keep sending the queues for at most this long; what is left is sent after the next start")
	fs.StringVar(&c.natsURL, "nats.url", "", "NATS server connecting the collector replicas (nats://nats:4222): live tail across replicas, and in forward mode query-cache invalidation; see also -nats.listen")
	fs.StringVar(&c.natsListen, "nats.listen", "", "run an embedded NATS server on this address (127.0.0.1:4222) and connect to it; replicas route to each other with -nats.cluster-listen and -nats.routes")
	fs.StringVar(&c.natsClusterListen, "nats.cluster-listen", "", "cluster address of the embedded NATS server (0.0.0.0:6222) that other replicas' -nats.routes point to")
	fs.StringVar(&c.natsRoutes, "nats.routes", "", "comma-separated cluster addresses of the other replicas' embedded NATS servers (nats-route://collector-2:6222)")
	fs.StringVar(&c.natsSubject, "nats.subject", "telltale", "NATS subject prefix shared by the replicas of one deployment")
	fs.StringVar(&c.natsReplica, "nats.replica", "", "this replica's name in NATS messages and logs; default -listen")
	fs.IntVar(&c.tailMaxClients, "tail.max-clients", 100, "most live-tail websocket clients at once; more get 503")
	fs.IntVar(&c.tailMaxSelectors, "tail.max-selectors", 10, "most match[] selectors per live-tail client")
	fs.IntVar(&c.tailQueueSize, "tail.queue-size", 256, "messages buffered per live-tail client; on overflow the client is told what it missed")
	fs.DurationVar(&c.tailMaxLag, "tail.max-lag", 30*time.Second, "a live-tail client whose queue stays full this long is disconnected")
	fs.DurationVar(&c.tailWriteTimeout, "tail.write-timeout", 10*time.Second, "longest time writing one message to a live-tail client may take before it is disconnected")
	fs.DurationVar(&c.tailPing, "tail.ping-interval", 30*time.Second, "how often live-tail clients are pinged; one silent for this plus -tail.write-timeout is dropped")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.flagValues = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { c.flagValues[f.Name] = f.Value.String() })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; all settings are flags, see -h", fs.Arg(0))
	}
	var feats []string
	for _, f := range c.queryFeatures {
		feats = append(feats, strings.Split(f, ",")...)
	}
	c.queryFeatures = feats
	if _, _, err := query.ParseFeatures(feats); err != nil {
		return nil, fmt.Errorf("-query.enable-feature: %w", err)
	}
	if _, err := regexp.Compile("^(?s:" + c.corsOrigin + ")$"); err != nil {
		return nil, fmt.Errorf("-web.cors-origin=%q is not a regexp: %w", c.corsOrigin, err)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return nil, fmt.Errorf("-tls.cert-file and -tls.key-file go together; set both or neither")
	}
	if c.hostInterval <= 0 || c.selfInterval <= 0 {
		return nil, fmt.Errorf("-host-metrics.interval=%s and -self-metrics.interval=%s must be positive, e.g. 10s", c.hostInterval, c.selfInterval)
	}
	if err := c.checkForward(); err != nil {
		return nil, err
	}
	if c.deployDB == "" {
		c.deployDB = strings.TrimRight(c.dataDir, "/") + "/deploys.db"
	}
	return c, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log.level=%q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log.format=%q: want text or json", format)
}

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

// buildVersion is -ldflags' version, else what the Go build info says (see
// instrument.BuildVersion: "devel" for go run).
func buildVersion() string {
	if version != "" {
		return version
	}
	v, _ := instrument.BuildVersion()
	return v
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
