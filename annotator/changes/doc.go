// Package changes is what a change is in Telltale: the one model (Change)
// of everything that can move a graph — deploys, contingency switch flips,
// config changes, incidents, notes, alerts, and any other kind — and the
// rules every change follows, shared by everything that records, stores,
// serves or reads changes: the collector's change log (annotator/changelog),
// the annotator CLI and its client (annotator/client), and the instrument
// library's switches. It depends on the standard library only, so the CLI
// and apps stay small.
//
// What it holds:
//   - Change and its kinds, statuses, delivery and impact state, as the
//     API's JSON (/api/v1/changes, and /api/v1/deploys for kind deploy);
//   - decoding and validation of request bodies (DecodeRequest,
//     DecodeDeploy, DecodePatch, DecodeJSON) and list parameters
//     (ParseFilter, SearchTerms), with errors (*RequestError) that name
//     the field and say what to do;
//   - the switch relay's wire types (Announcement, FlipRequest,
//     RelayedFlip ...).
//
// Promises:
//   - Decoding refuses, with a 400 naming the problem, what encoding/json
//     would silently accept or repair: bytes that are not UTF-8 and \u
//     escapes of lone surrogates (never replaced by U+FFFD), a key given
//     twice in one object (also differing only in case), nesting deeper
//     than MaxJSONDepth (checked without recursion), unknown fields and
//     data after the object. Every field has a length limit; label-like
//     fields (kind, service, env, subject) have a charset.
//   - A Change's meaning: Kind says what happened; Service is required; an
//     empty Env means every env of the service; Subject names what the
//     change is about, and a new change with a Subject ends the open
//     change of the same kind, service, env and subject; a change with
//     status running and no end is an open region.
package changes
