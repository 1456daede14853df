package irc

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	f := func(in string, want Line) {
		t.Helper()
		got, err := ParseLine(in)
		if err != nil {
			t.Fatalf("ParseLine(%q): %v", in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseLine(%q): got %#v; want %#v", in, got, want)
		}
	}
	f("PING :irc.x", Line{Command: "PING", Params: []string{"irc.x"}})
	f(":alice!a@h PRIVMSG #ops :!deploys web", Line{Prefix: "alice!a@h", Command: "PRIVMSG", Params: []string{"#ops", "!deploys web"}})
	f("@a=b;c :p privmsg #x :y", Line{Tags: "a=b;c", Prefix: "p", Command: "PRIVMSG", Params: []string{"#x", "y"}})
	f(":srv 001 me :Welcome", Line{Prefix: "srv", Command: "001", Params: []string{"me", "Welcome"}})
	f(":a!b@c PRIVMSG #ops :", Line{Prefix: "a!b@c", Command: "PRIVMSG", Params: []string{"#ops", ""}})
	f(":a!b@c PRIVMSG #ops ::x", Line{Prefix: "a!b@c", Command: "PRIVMSG", Params: []string{"#ops", ":x"}})
	f("JOIN   #a  ", Line{Command: "JOIN", Params: []string{"#a"}})
	f("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", Line{Command: "CMD", Params: []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15 16"}})
	for _, bad := range []string{"", ":onlyprefix", "PRI1VMSG x", "12 x", "a\rb", "x\x00", ":p " + strings.Repeat("A", 600), "@" + strings.Repeat("t", 9000) + " PING"} {
		if l, err := ParseLine(bad); err == nil {
			t.Fatalf("ParseLine(%q): got %#v; want an error", bad, l)
		}
	}
}

func TestEncode(t *testing.T) {
	b, err := Line{Command: "PRIVMSG", Params: []string{"#ops", "hi there"}}.Encode()
	if err != nil || string(b) != "PRIVMSG #ops :hi there\r\n" {
		t.Fatalf("Encode: got %q %v", b, err)
	}
	for _, bad := range []Line{
		{Command: "PRIVMSG", Params: []string{"#ops", "a\r\nQUIT"}},
		{Command: "PRIVMSG", Params: []string{"#o ps", "x"}},
		{Command: "PRIVMSG", Params: []string{"#ops", strings.Repeat("x", 510)}},
		{Command: "BAD CMD"},
	} {
		if b, err := bad.Encode(); err == nil {
			t.Fatalf("Encode(%#v): got %q; want an error", bad, b)
		}
	}
}

// seeds returns the lines of testdata/lines.txt.
func seeds(t testing.TB) []string {
	f, err := os.Open("testdata/lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestParseSeeds(t *testing.T) {
	for _, s := range seeds(t) {
		if _, err := ParseLine(s); err != nil {
			t.Errorf("ParseLine(%q): %v", s, err)
		}
	}
}

// FuzzParseLine: no panic; a parsed line renders to one that parses to
// the same line (a round trip), and what Encode accepts is one line of at
// most 512 bytes without NUL, CR or LF inside.
func FuzzParseLine(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLine(s)
		if err != nil {
			return
		}
		again, err := ParseLine(l.String())
		if err != nil {
			t.Fatalf("ParseLine(%q) = %#v renders %q, which does not parse: %v", s, l, l.String(), err)
		}
		if !reflect.DeepEqual(normalize(l), normalize(again)) {
			t.Fatalf("round trip of %q: got %#v; want %#v", s, again, l)
		}
		b, err := l.Encode()
		if err != nil {
			return
		}
		body := strings.TrimSuffix(string(b), "\r\n")
		if strings.ContainsAny(body, "\r\n\x00") || !strings.HasSuffix(string(b), "\r\n") {
			t.Fatalf("Encode(%#v) = %q: not one clean line", l, b)
		}
	})
}

// normalize makes an empty params slice nil.
func normalize(l Line) Line {
	if len(l.Params) == 0 {
		l.Params = nil
	}
	return l
}

func TestParseURL(t *testing.T) {
	f := func(raw, addr, nick string, tls bool, chans ...string) {
		t.Helper()
		o, err := ParseURL(raw)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", raw, err)
		}
		if o.Addr != addr || o.Nick != nick || (o.TLS != nil) != tls || strings.Join(o.Channels, ",") != strings.Join(chans, ",") {
			t.Fatalf("ParseURL(%q): got %s %s tls=%v %v; want %s %s tls=%v %v", raw, o.Addr, o.Nick, o.TLS != nil, o.Channels, addr, nick, tls, chans)
		}
	}
	f("irc://127.0.0.1:6667/#ops", "127.0.0.1:6667", "telltale", false, "#ops")
	f("ircs://irc.example.org/#ops,#deploys", "irc.example.org:6697", "telltale", true, "#ops", "#deploys")
	f("irc://bot@irc.example.org/%23ops?nick=tt", "irc.example.org:6667", "tt", false, "#ops")
	f("irc://127.0.0.1/#ops?nick=tt", "127.0.0.1:6667", "tt", false, "#ops")
	f("irc://irc.example.org/ops", "irc.example.org:6667", "telltale", false, "#ops")
	o, _ := ParseURL("irc://bot:pw@h/#x?auth=pass")
	if o.Password != "pw" || !o.ServerPassword {
		t.Fatalf("password and auth=pass: got %q %v", o.Password, o.ServerPassword)
	}
	for _, bad := range []string{"http://h/#x", "irc:///#x", "irc://h/", "irc://h/#x?color=red", "irc://h/#x?auth=magic", "irc://9bad@h/#x", "irc://h/#a b"} {
		if _, err := ParseURL(bad); err == nil {
			t.Fatalf("ParseURL(%q): got no error", bad)
		}
	}
}
