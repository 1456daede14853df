// Package irc is a small IRC client for the chat package: one persistent
// connection (TLS with ircs://, SASL PLAIN or a server password), that
// joins its channels after every reconnect, answers PINGs, reconnects with
// backoff, paces its lines (flood control: a burst, then one per
// LineEvery) and hands channel messages to the bot. Send returns only
// once the server answered a PING queued after the message, so a message
// is confirmed taken or reported as in doubt. The line parser (ParseLine)
// takes RFC 1459 lines with IRCv3 tags and never panics on bad input.
//
// Written here rather than taken from a library: what the chat package
// needs is ~600 lines, the IRC libraries for Go bring their own
// reconnect, flood and event models (and state for features unused here)
// that would have to be bent to "confirm before delivered".
package irc

import (
	"errors"
	"fmt"
	"strings"
)

// Line is one IRC protocol message (RFC 1459 §2.3.1, with IRCv3 message
// tags): "@tags :prefix COMMAND param param :trailing".
type Line struct {
	// Tags is the raw IRCv3 tag string without the "@" ("" for none); the
	// client reads none of them.
	Tags string
	// Prefix is the source without the ":" (server name or
	// nick!user@host); "" for none.
	Prefix  string
	Command string
	Params  []string
}

// Protocol limits: a line is at most 512 bytes with its CRLF, plus 8191
// bytes of tags (IRCv3); a line has at most 15 parameters.
const (
	MaxLineBytes = 512
	maxTagBytes  = 8191
	maxParams    = 15
)

var (
	errEmpty    = errors.New("empty line")
	errTooLong  = errors.New("line too long")
	errBadChars = errors.New("line holds NUL, CR or LF")
	errCommand  = errors.New("missing or malformed command")
	errParams   = errors.New("more than 15 parameters")
)

// ParseLine parses one line without its CRLF. It never panics; it rejects
// lines longer than the protocol allows, lines holding NUL, CR or LF, and
// commands that are neither letters nor three digits. Parameters keep
// their bytes (IRC has no charset; callers check UTF-8 where it matters).
func ParseLine(s string) (Line, error) {
	var l Line
	if strings.ContainsAny(s, "\x00\r\n") {
		return l, errBadChars
	}
	if strings.HasPrefix(s, "@") {
		tags, rest, ok := strings.Cut(s[1:], " ")
		if !ok || len(tags) > maxTagBytes {
			return l, errTooLong
		}
		l.Tags, s = tags, strings.TrimLeft(rest, " ")
	}
	if len(s) > MaxLineBytes-2 {
		return l, errTooLong
	}
	if strings.HasPrefix(s, ":") {
		prefix, rest, ok := strings.Cut(s[1:], " ")
		if !ok || prefix == "" {
			return l, errCommand
		}
		l.Prefix, s = prefix, strings.TrimLeft(rest, " ")
	}
	cmd, rest, _ := strings.Cut(s, " ")
	if !validCommand(cmd) {
		if cmd == "" && l.Prefix == "" && l.Tags == "" {
			return l, errEmpty
		}
		return l, errCommand
	}
	l.Command = strings.ToUpper(cmd)
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if len(l.Params) == maxParams {
			return l, errParams
		}
		if rest[0] == ':' || len(l.Params) == maxParams-1 {
			l.Params = append(l.Params, strings.TrimPrefix(rest, ":"))
			break
		}
		var p string
		p, rest, _ = strings.Cut(rest, " ")
		l.Params = append(l.Params, p)
	}
	return l, nil
}

func validCommand(c string) bool {
	if len(c) == 3 && isDigit(c[0]) && isDigit(c[1]) && isDigit(c[2]) {
		return true
	}
	if c == "" {
		return false
	}
	for i := 0; i < len(c); i++ {
		if !('a' <= c[i] && c[i] <= 'z' || 'A' <= c[i] && c[i] <= 'Z') {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// String renders l as a line without CRLF. The last parameter gets a ":"
// when it needs one (empty, starts with ":", holds a space); other
// parameters must not. It does not check lengths (Encode does).
func (l Line) String() string {
	var b strings.Builder
	if l.Tags != "" {
		b.WriteString("@" + l.Tags + " ")
	}
	if l.Prefix != "" {
		b.WriteString(":" + l.Prefix + " ")
	}
	b.WriteString(l.Command)
	for i, p := range l.Params {
		b.WriteByte(' ')
		if i == len(l.Params)-1 && (p == "" || p[0] == ':' || strings.Contains(p, " ")) {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
	return b.String()
}

// Encode renders l with its CRLF, checking that the line is one a server
// takes: no NUL, CR or LF anywhere, middle parameters without spaces or a
// leading ":", at most 512 bytes.
func (l Line) Encode() ([]byte, error) {
	for i, p := range l.Params {
		if strings.ContainsAny(p, "\x00\r\n") {
			return nil, errBadChars
		}
		if i < len(l.Params)-1 && (p == "" || p[0] == ':' || strings.Contains(p, " ")) {
			return nil, fmt.Errorf("parameter %d %q cannot be a middle parameter", i, p)
		}
	}
	if !validCommand(l.Command) {
		return nil, errCommand
	}
	s := l.String()
	body := s
	if l.Tags != "" {
		body = s[len(l.Tags)+2:]
	}
	if len(body)+2 > MaxLineBytes {
		return nil, errTooLong
	}
	return []byte(s + "\r\n"), nil
}

// Nick is the nick of a nick!user@host prefix.
func Nick(prefix string) string {
	nick, _, _ := strings.Cut(prefix, "!")
	return nick
}
