package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Command is one bot command as said in a channel: "!deploys web".
type Command struct {
	// Name is the command word, lower-cased, without the "!".
	Name string
	// Args are the words after it.
	Args []string
	// Rest is the text after the command word, trimmed.
	Rest string
}

// maxCommandBytes bounds a command; longer text is not a command.
const maxCommandBytes = 2048

// ParseCommand reads a command from a chat message: text starting with "!"
// followed by a word of letters. ok is false for every other message (the
// bot stays quiet on them), for text that is not UTF-8 and for text longer
// than 2 KiB.
func ParseCommand(text string) (cmd Command, ok bool) {
	text = strings.TrimSpace(text)
	if len(text) < 2 || len(text) > maxCommandBytes || text[0] != '!' || !utf8.ValidString(text) {
		return Command{}, false
	}
	word, rest, _ := strings.Cut(text[1:], " ")
	if word == "" || strings.IndexFunc(word, func(r rune) bool { return !unicode.IsLetter(r) }) >= 0 {
		return Command{}, false
	}
	cmd.Name = strings.ToLower(word)
	cmd.Rest = strings.TrimSpace(rest)
	cmd.Args = strings.Fields(cmd.Rest)
	return cmd, true
}
