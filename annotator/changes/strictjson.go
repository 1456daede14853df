package changes

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxJSONDepth is how deep a change body may nest objects and arrays. A
// change is one object with one nested object (fields), so 8 is generous;
// deeper input is refused before anything recursive looks at it.
const MaxJSONDepth = 8

// checkJSON refuses what encoding/json would silently accept or repair in
// a change body: bytes that are not UTF-8 (json.Unmarshal replaces them
// with U+FFFD), \u escapes of lone UTF-16 surrogates (replaced the same
// way), an object with the same key twice (the last one would win; keys
// differing only in case count as the same, as encoding/json matches
// struct fields case-insensitively) and nesting deeper than maxDepth. It
// is iterative, so hostile nesting costs no stack. Syntax errors are left
// to the decoder, whose messages name them.
func checkJSON(body []byte, maxDepth int) *RequestError {
	if !utf8.Valid(body) {
		return BadField("", "bad_utf8", "request body is not valid UTF-8 (first bad byte at offset %d): send UTF-8 text; bad bytes are refused, not replaced", invalidUTF8At(body))
	}
	if off := loneSurrogateAt(body); off >= 0 {
		return BadField("", "bad_utf8", "request body has a \\u escape of a lone UTF-16 surrogate at offset %d: escape a character outside the BMP as a surrogate pair (\\ud83d\\ude00) or send it as UTF-8", off)
	}
	type frame struct {
		object    bool
		expectKey bool
		keys      map[string]string // lower-case key -> key as sent
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF || err != nil {
			return nil // syntax errors: the decoder names them
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && top.object && top.expectKey {
			key, ok := tok.(string)
			if !ok {
				return nil // the decoder allows only strings here
			}
			lower := strings.ToLower(key)
			if prev, dup := top.keys[lower]; dup {
				if prev == key {
					return BadField(key, "duplicate_key", "key %q appears twice in one object: send each field once", Clip(key))
				}
				return BadField(key, "duplicate_key", "keys %q and %q name the same field (field names are matched ignoring case): send each field once", Clip(prev), Clip(key))
			}
			top.keys[lower] = key
			top.expectKey = false
			continue
		}
		// A value: the next token of an enclosing object is a key again.
		if top != nil && top.object {
			top.expectKey = true
		}
		if d, ok := tok.(json.Delim); ok { // '{' or '['
			if len(stack) >= maxDepth {
				return BadField("", "too_deep", "request body nests objects and arrays deeper than %d levels: a change is one flat object (with \"fields\" one level down)", maxDepth)
			}
			f := frame{object: d == '{', expectKey: d == '{'}
			if f.object {
				f.keys = map[string]string{}
			}
			stack = append(stack, f)
		}
	}
}

// invalidUTF8At returns the offset of the first byte that is not part of
// valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// loneSurrogateAt returns the offset of the first \u escape of a UTF-16
// surrogate that is not part of a high-low pair, or -1. Escapes are read
// in order, so an escaped backslash ("\\u...") is not mistaken for one.
func loneSurrogateAt(b []byte) int {
	hex4 := func(i int) (rune, bool) {
		if i+4 > len(b) {
			return 0, false
		}
		var r rune
		for _, c := range b[i : i+4] {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 >= len(b) {
			return -1
		}
		if b[i+1] != 'u' {
			i++ // skip the escaped character
			continue
		}
		r, ok := hex4(i + 2)
		if !ok {
			i++
			continue // a syntax error the decoder reports
		}
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return i // low surrogate without a high one before it
		case 0xD800 <= r && r <= 0xDBFF:
			j := i + 6
			if j+1 < len(b) && b[j] == '\\' && b[j+1] == 'u' {
				if lo, ok := hex4(j + 2); ok && 0xDC00 <= lo && lo <= 0xDFFF {
					i = j + 5
					continue
				}
			}
			return i
		}
		i += 5
	}
	return -1
}
