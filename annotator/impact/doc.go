// Package impact tells what a deploy did to a service's numbers, without
// anyone writing a query: once a window (default 15 minutes) has passed
// after a deploy, Analyze compares the service's key signals in the window
// after the deploy with the same-length window before it (and with the same
// clock time a day earlier, when there is data) and returns a Report with a
// verdict per signal — regressed, improved, changed, unchanged or not enough
// data — the numbers behind it, an overall verdict and a one-line summary
// for annotations and chat ("error ratio 0.4% → 2.1% ▲ regressed; p99
// latency 120ms → 480ms ▲ regressed; no significant change in 4 signals").
//
// The default signals (DefaultSignals) read the metrics of the instrument
// library: request rate, error ratio, p50 and p99 latency, CPU and resident
// memory of the service's processes. A YAML Config adds PromQL signals per
// service and retunes or disables the defaults.
//
// # Method
//
// Each signal is queried at a fixed step (default 15s), giving about 60
// values per 15-minute window. A change counts only when it is both
// statistically and practically significant:
//
//   - Statistical: the per-step values before and after are compared with a
//     two-sided Mann–Whitney U test (average ranks, tie correction,
//     continuity correction; the exact distribution for tiny tie-free
//     samples) AND a moving-block bootstrap of the difference of medians;
//     both p-values must be below Options.Alpha (default 0.01) divided by
//     the number of signals judged (Bonferroni).
//   - Autocorrelation: per-step values of rate(x[1m]) at a 15s step share
//     most of their data, and real traffic drifts, so neighbouring steps are
//     far from independent, which would make naive tests cry wolf. The
//     integrated autocorrelation time τ = 1 + 2·Σρ_k of the ranks (Geyer's
//     initial monotone sequence estimator) inflates the variance of U by τ
//     — the test sees n/τ effective points — and sets the bootstrap's block
//     length. τ is estimated from Options.History (default the hour before
//     the deploy): under "the deploy changed nothing" the after window
//     behaves like that history, and 240 points estimate slow drifts far
//     better than two 60-point windows, whose estimate is biased low (used
//     only when there is no history). In simulation (TestAutocorrCalibration)
//     this keeps the false-positive rate at or below the nominal level for
//     white, moving-sum and AR(1) noise (φ=0.9 per step), where the τ of the
//     two windows alone lets through 3–4× too many at α=0.05 and 6–30× too
//     many at the Bonferroni level.
//   - Practical: the change of medians must be at least the signal's
//     MinAbsChange (an absolute floor in the signal's unit) and at least
//     MinRelChange relative to the before median, or at least BigAbsChange
//     whatever the relative change (error ratio: ×2, or +1 percentage
//     point, never below +0.1 point).
//   - Daily pattern: if the same clock time a day earlier moved the same
//     way by a practical amount (before'→after' around deploy time −24h),
//     the change is put down to the daily pattern: unchanged, with a note.
//     This check can only remove a verdict, never create one, and is
//     skipped when another deploy of the service fell in those windows.
//   - Not enough data: fewer than Options.MinPoints values in a window, or,
//     for per-request signals (error ratio, latency), fewer than
//     Options.MinRequests requests in either window (estimated from the
//     request rate). The request rate itself is not judged when both
//     windows are below MinRequests.
//
// Direction: each signal names the direction that is bad (Signal.Bad). A
// significant move that way is "regressed", the other way "improved". The
// request rate is Both: a drop in traffic after a deploy is suspicious
// (clients failing, a broken route) and so is a rise (retry storms), so
// either move is "changed", which counts as a regression in
// Report.Regressions and makes the overall verdict "changed" when nothing
// regressed.
//
// Another deploy of the same service and env inside either window is
// listed in Report.Overlapping and the summary says the change may be
// theirs; the numbers are computed all the same.
//
// # Promises
//
//   - Analyze is deterministic for a given Querier answer, deploy and
//     Options: the bootstrap uses a PCG generator seeded from Options.Seed,
//     the deploy ID and the signal name.
//   - Analyze only reads through the Querier and keeps no state; it is safe
//     for concurrent use if the Querier is.
//   - A failing signal query does not fail the analysis: that signal is
//     "not enough data" with the error in its note. Analyze returns an
//     error only for bad arguments, a cancelled ctx, a deploy whose window
//     has not passed (ErrNotDue), or when every signal's query failed.
//   - Report is JSON-serialisable; NaN and infinite numbers encode as null.
//
// # Implementing Querier
//
// The subpackage promq implements Querier over a promql engine and a
// storage.Queryable, so the collector needs one line: promq.New(engine,
// storage). What it does, for another backend: run the range query
// (engine.NewRangeQuery(ctx, queryable, nil, query, start, end, step),
// Exec), and turn the matrix into one value per step, index i at start +
// i·step, NaN where no series has a point. The default queries all
// aggregate to a single series; when a configured query yields several,
// the Querier sums them per step (so configured queries should aggregate
// themselves: sum(...), histogram_quantile(..., sum by (le) (...))).
//
// Per analysis Analyze runs two range queries per signal: [deploy−History,
// deploy+Window] and [deploy−24h−Window, deploy−24h+Window], about 420
// points per signal with the defaults.
package impact
