// Package changelog is the change log the collector embeds: it records
// every change (the model is package changes: deploys, switch flips,
// config changes, incidents, notes, alerts and any other kind) in a
// durable SQLite log with full-text search, serves the change API, relays
// switch flips to the apps, and delivers each change through a
// transactional outbox to storage (PromQL marker series), Grafana
// (annotations tagged with the kind), chat webhooks, extra targets and the
// impact analysis. It replaces the deploy log: a deploy log written by an
// older collector is migrated in place on open.
//
// HTTP API (Service.Handler; the collector checks the scopes):
//
//	POST  /api/v1/changes                  record a change (deploy scope)
//	GET   /api/v1/changes                  list: kind, service, env, subject, from, to, q, open, limit (read)
//	GET   /api/v1/changes/{id}             one change with its delivery and impact state (read)
//	PATCH /api/v1/changes/{id}             end a region: end_time, status (deploy scope)
//	GET   /api/v1/changes/{id}/impact      the impact report (read)
//	...   /api/v1/deploys[/{id}[/impact]]  the same for kind deploy, as CI has used it
//	POST  /api/v1/switches/announce        an app announces its switches (deploy scope)
//	GET   /api/v1/switches                 the announced switches and their state (read)
//	POST  /api/v1/switches/{service}/{name}  flip a switch with a reason (deploy scope)
//
// Go API for code inside the collector (e.g. the rules engine, which lists
// "the changes of service S in [t-w, t]" and records alert changes):
// Service.Record(ctx, changes.Change), Service.List(ctx, changes.Filter),
// Service.Update(ctx, id, changes.Patch), Service.Get(ctx, id). Extra delivery
// targets (chat networks) plug into the outbox through Options.Targets.
//
// Promises:
//   - A 201 or 200 answer (a nil error from Record) means the change and
//     all of its pending deliveries are committed to disk (SQLite WAL,
//     synchronous=FULL): kill -9 right after loses neither.
//   - Transactional outbox: the deliveries a change owes (series in
//     storage, a Grafana annotation tagged with its kind, chat webhooks,
//     Options.Targets, the impact analysis) are written in the same
//     transaction as the change. Deliveries never block or fail the API:
//     each target has its own worker, retries and exponential backoff, so a
//     down, slow or refusing Grafana delays only Grafana; entries stay
//     pending across restarts for Options.RetryFor. A change's "finished"
//     delivery never overtakes its "recorded" one.
//   - Grafana annotations are created at most once per change as far as
//     Grafana's API allows (see deliverGrafana for the residual risk);
//     webhooks, targets and series are delivered at least once.
//   - Regions: a change with status running and no end is open; PATCH (or
//     a retried POST with end_time/status) ends it. Recording a change
//     with a Subject ends the open change of the same kind, service, env
//     and subject at the new change's time (a switch flipped back closes
//     the band of its flip), in the same transaction.
//   - A change without env marks every env of its service: its series have
//     no env label (dashboards select env=~"$env|"), env filters of
//     GET /api/v1/changes include it, and its impact is analysed over all
//     envs. With Options.Catalog, a change that would mark no graph of its
//     service (no data for the service, or for its env) is still recorded
//     but answered with a warning saying so.
//   - Bad input gets a 4xx naming the field and the fix, counted in
//     telltale_changes_rejected_total{reason}. Bodies are bounded
//     (Options.MaxBodyBytes), must be valid UTF-8 (no replacement), may not
//     repeat a key or nest deeper than MaxJSONDepth; every field has a
//     length limit.
//   - Search: GET /api/v1/changes?q=checkout+timeout finds changes by the
//     words of their service, env, subject, version, commit, who, message,
//     link and fields (SQLite FTS5, prefix matching), newest first.
//   - With Options.Impact, every change of ImpactOptions.Kinds gets one
//     impact analysis (annotator/impact) once its after window has passed,
//     scheduled through the same outbox; the report names the other changes
//     of any kind inside its windows and, when it found no requests, says
//     why. A stored report is never recomputed.
//   - Versioned schema: migrations (schema.go) are an ordered list applied
//     once each; a deploy log written by an older collector is migrated in
//     place, keeping every deploy, impact report and pending delivery; a
//     database written by a newer binary is refused instead of misread.
//   - Backup copies a consistent snapshot of the log while it is written.
//
// Times are stored as int64 milliseconds since the Unix epoch (UTC) and
// come back as UTC time.Time values with millisecond precision.
//
// A Service and a Log are safe for concurrent use.
package changelog
