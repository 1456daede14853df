package chat

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Network is one chat connection: an IRC client, a Matrix account, a
// Slack bot or webhook (the leaf packages irc, matrix and slack). The
// chat package sends through it and hears from it; it keeps no state of
// its own that a restart would lose (what is still to send is in the
// change log's outbox).
type Network interface {
	// Send posts text as one message to channel and returns nil only once
	// the network has taken it (IRC: the server answered a PING sent after
	// it; HTTP networks: a 2xx). It may block while the network is
	// disconnected, until ctx is done. Errors may be a *RateLimitError,
	// or wrap ErrRefused or ErrRejected.
	Send(ctx context.Context, channel, text string) error
	// Run keeps the network connected until ctx is done and hands every
	// message said in a joined channel by someone else to hear (a network
	// that cannot hear, such as a webhook, just waits for ctx). It
	// returns nil after ctx is done, or an error that retrying cannot fix
	// (bad configuration).
	Run(ctx context.Context, hear func(Message)) error
	// Limits are the network's message limits.
	Limits() Limits
}

// ImageSender is a Network that can post an image (Matrix: an m.image
// event of an uploaded file; Slack bots: a file shared to the channel).
// The bot posts !graph's chart through it; networks without it (IRC,
// webhooks) answer with the text only.
type ImageSender interface {
	// SendImage posts img to channel and returns nil once the network has
	// taken it. Errors are those of Send: a *RateLimitError (on the
	// upload or the message), or wrapping ErrRefused or ErrRejected.
	SendImage(ctx context.Context, channel string, img Image) error
}

// Image is a picture to post: a PNG and what describes it.
type Image struct {
	// PNG is the encoded image.
	PNG []byte
	// Name is its file name, e.g. "graph.png".
	Name string
	// Title is its caption and alt text.
	Title string
	// Width and Height are its size in pixels.
	Width, Height int
}

// Answer is what Options.Graph answers with: lines of text and, where
// it has one, an image.
type Answer struct {
	Lines []string
	// Image draws the image; the bot calls it only for networks that
	// post images (ImageSender), after the lines went. nil: none.
	Image func(ctx context.Context) (Image, error)
}

// Limits describe what one message may hold on a network and how fast
// messages may go.
type Limits struct {
	// MaxBytes is the longest text of one message, in bytes.
	MaxBytes int
	// MultiLine reports whether a message may hold several lines (Slack,
	// Matrix); on IRC every line is a message of its own.
	MultiLine bool
	// Every is the least time between two batched messages of a target;
	// Linger how long the first change after a quiet spell waits for
	// others to come with it.
	Every, Linger time.Duration
}

// Message is one message heard in a channel.
type Message struct {
	// Channel is where it was said: "#ops", a Matrix room id, a Slack
	// channel id. Replies go there.
	Channel string
	// User identifies the speaker as the network authenticates it: IRC
	// nick!user@host, a Matrix user id (@alice:example.org), a Slack user
	// id (U024BE7LH). Users: mappings match it.
	User string
	// Name is how people call the speaker (the IRC nick, the Matrix
	// localpart, the Slack id): recorded as who.
	Name string
	Text string
}

var (
	// ErrRefused marks a send refused for the credentials (a bad token,
	// a password the server does not take): retried slowly while someone
	// fixes them.
	ErrRefused = errors.New("refused")
	// ErrRejected marks a message the network will never take (an unknown
	// channel, a message it considers malformed): not retried.
	ErrRejected = errors.New("rejected")
)

// RateLimitError is a network's "too many requests" answer: Slack's and
// Discord's 429 with Retry-After or retry_after, Matrix's M_LIMIT_EXCEEDED
// with retry_after_ms. Nothing was posted; sending may go on after After.
type RateLimitError struct {
	After time.Duration
	Err   error
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("rate limited for %s: %v", e.After, e.Err)
}

func (e *RateLimitError) Unwrap() error { return e.Err }

// MaxRateLimitWait caps a rate-limit wait a network asks for, so a bogus
// answer cannot stop a target for days. Networks read a Retry-After
// header with retry.After(h, now, MaxRateLimitWait).
const MaxRateLimitWait = 10 * time.Minute

// ClipText shortens s to at most n bytes on a rune boundary, ending it
// with "…" when cut.
func ClipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	i := max(n-len(ell), 0)
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + ell
}
