// Package chat is the ops channel: every change of the change log
// (deploys, switch flips, config changes, incidents, notes, alerts firing
// and resolved) goes to chat networks as one short line, and a bot answers
// commands in the same channels. The networks are leaf packages: irc (a
// small client of its own), matrix (the client-server API in plain HTTP)
// and slack (incoming webhooks, also Discord's Slack-compatible ones, and
// bot tokens; not Microsoft Teams, whose webhooks take Adaptive Cards); the collector builds them from -chat.irc, -chat.matrix,
// -chat.slack and -chat.config and wires them here.
//
// Sending: each network is a changelog.BatchTarget (chat:<network>), so
// every message is queued in the change log's transactional outbox with the
// change that caused it. Promises:
//   - Nothing is lost: a change recorded while a network is down, or before
//     a collector restart, is sent once the network is back (until the
//     outbox's RetryFor gives up). An entry is marked delivered only when
//     the network took the message (IRC: the server answered a PING sent
//     after it; HTTP networks: a 2xx).
//   - Nothing is doubled when nothing is in doubt: an entry that was sent
//     and confirmed is never sent again; a channel a partly failed batch
//     reached is not sent again on the retry. What was written to a
//     connection that dropped before the confirmation is sent again (at
//     least once), as is what a restart interrupted between send and mark.
//   - A burst becomes a few messages: a target sends at most one batched
//     message per channel every Limits.Every (IRC, Slack, Matrix: 2 s);
//     the first change after a quiet spell waits Limits.Linger (1 s) for
//     the rest of its burst. Events that read the same collapse into one
//     line with a count; a message never exceeds the network's size, and
//     what does not fit is counted with a link to the change log.
//   - Rate limits are honoured exactly: a *RateLimitError (429 with
//     Retry-After or retry_after, M_LIMIT_EXCEEDED with retry_after_ms)
//     holds the whole target back for that long; credentials refused
//     (ErrRefused) are retried slowly, messages refused for good
//     (ErrRejected) are marked failed.
//   - Routing (Config.Routes) picks channels by network, kind, service,
//     env and event; a network without routes gets everything in its first
//     channel. A note said in a channel is not echoed back there.
//
// Lines (see Line): "deployed web v1.2.3 → prod by alice: …", "impact of
// deploy web v1.2.3 → prod: regressed: …", "FIRING HighErrorRate web →
// prod (critical): … — 4m after deploy web v1.2.3 by alice", "RESOLVED …
// after 12m". Alerts and incidents name the deploy, switch flip or config
// change of their service they follow.
//
// The bot (ParseCommand, and Service.Run): !deploys, !changes, !impact,
// !alerts, !note, !switch, !graph, !help. Queries answer from the change
// log and are not recorded again; actions are changes (a note; a switch
// flip through the switch relay, recorded by the apps) with the speaker as
// who and the network and channel in FieldNetwork and FieldChannel. Only
// users mapped (Config.Users) to a token with the deploy scope may
// !switch; a refusal says how to get mapped and changes nothing. Commands
// run off the network's read loop, at most 4 at once per network, each
// bounded to 30 s. !graph's answer may carry an image (Answer.Image),
// drawn and posted only on networks that post images (ImageSender:
// Matrix, Slack bots); a rate-limit answer on any answer's post is
// waited out within those 30 s.
//
// A Service is safe for concurrent use.
package chat
