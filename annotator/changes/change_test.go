package changes

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

// readChanges returns the change request fixtures.
func readChanges(tb testing.TB) map[string][]byte { return readFixtures(tb, "changes") }

// TestDecodeChangeTestdata: the good change bodies decode, the bad-* ones
// do not, each with a 400 naming why.
func TestDecodeChangeTestdata(t *testing.T) {
	for name, b := range readChanges(t) {
		req, err := DecodeRequest(bytes.NewReader(b), t0)
		if bad := strings.HasPrefix(name, "bad-"); bad != (err != nil) {
			t.Errorf("%s: got error %v; want error: %v", name, err, bad)
			continue
		}
		if err == nil {
			checkChangeRequest(t, req)
		}
	}
	req, err := DecodeRequest(bytes.NewReader(readChanges(t)["incident.json"]), t0)
	if err != nil || req.Message != "Zahlungsausfall ü 😀" {
		t.Fatalf("incident.json: got %q, %v; want the escaped ü and the surrogate pair decoded", req.Message, err)
	}
}

// TestCheckJSON: what encoding/json would accept silently is refused, and
// only that.
func TestCheckJSON(t *testing.T) {
	f := func(body string, reason string) {
		t.Helper()
		err := checkJSON([]byte(body), 3)
		switch {
		case reason == "" && err != nil:
			t.Errorf("%q: got %v; want accepted", body, err)
		case reason != "" && (err == nil || err.Reason != reason):
			t.Errorf("%q: got %v; want reason %s", body, err, reason)
		}
	}
	f(`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`, "") // the same key in different objects
	f(`{"a":"\\u00e9 \ud83d\ude00 \\ud800"}`, "")      // an escaped backslash is no escape
	f(`[[["x"]]]`, "")
	f(`[[[["x"]]]]`, "too_deep")
	f(`{"a":{"b":{"c":{}}}}`, "too_deep")
	f(`{"a":1,"a":1}`, "duplicate_key")
	f(`{"a":1,"A":1}`, "duplicate_key")
	f(`{"a":{"x":1,"y":{"x":2},"x":3}}`, "duplicate_key")
	f(`{"a":"\ud800"}`, "bad_utf8")
	f(`{"a":"\udfff\ud800"}`, "bad_utf8")
	f(`{"a":"\ud800\u0041"}`, "bad_utf8")
	f("{\"a\":\"\xff\"}", "bad_utf8")
	f("{\"a\":\"\xed\xa0\x80\"}", "bad_utf8") // a surrogate encoded in UTF-8 is not UTF-8
	f(`{"a":`, "")                            // syntax errors are the decoder's
	f(strings.Repeat("[", 100000), "too_deep")
}

// checkChangeRequest asserts what every accepted change request promises.
func checkChangeRequest(t *testing.T, req Request) {
	t.Helper()
	checkRequest(t, req)
	if !validKind(req.Kind) || req.Subject != "" && !validSubject(req.Subject) {
		t.Fatalf("accepted kind %q subject %q", req.Kind, req.Subject)
	}
	if len(req.Fields) > MaxFields {
		t.Fatalf("accepted %d fields", len(req.Fields))
	}
	for k, v := range req.Fields {
		if !validFieldKey(k) || len(v) > MaxFieldValueBytes || !utf8.ValidString(v) {
			t.Fatalf("accepted field %q=%q", k, v)
		}
	}
	if !utf8.ValidString(req.Message) {
		t.Fatalf("accepted message that is not UTF-8: %q", req.Message)
	}
}

// FuzzDecodeChangeRequest: any body either decodes into a request that
// keeps every promise and survives a round trip, or is a 400 with a
// reason; never a panic, and hostile nesting costs no stack.
func FuzzDecodeChangeRequest(f *testing.F) {
	for _, b := range readChanges(f) {
		f.Add(b)
	}
	for _, b := range readRequests(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(bytes.NewReader(data), t0)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status != 400 || re.Reason == "" || re.Msg == "" {
				t.Fatalf("got error %#v; want a *RequestError with status 400, a reason and a message", err)
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("accepted a body that is not UTF-8: %q", data)
		}
		checkChangeRequest(t, req)
		enc := encodeRequest(req)
		again, err := DecodeRequest(bytes.NewReader(enc), t0)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if again.Kind != req.Kind || again.Subject != req.Subject || !maps.Equal(again.Fields, req.Fields) || again.Message != req.Message ||
			again.Service != req.Service || !again.Time.Equal(req.Time) {
			t.Fatalf("round trip:\ngot  %+v\nwant %+v", again, req)
		}
	})
}

// FuzzSearchTerms: any text gives terms of letters and digits only (so
// nothing typed is query syntax), or a 400.
func FuzzSearchTerms(f *testing.F) {
	for _, s := range []string{"checkout timeout", "v1.2.3", `"*()`, "Grüße NEAR/2 x*", strings.Repeat("a ", 20)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		terms, err := SearchTerms(text)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Field != "q" {
				t.Fatalf("got %v; want a RequestError for q", err)
			}
			return
		}
		if len(terms) == 0 || len(terms) > maxSearchTerms {
			t.Fatalf("got %d terms", len(terms))
		}
		for _, words := range terms {
			for _, w := range words {
				for _, r := range w {
					if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r > 127) || r == '"' || r == '*' {
						t.Fatalf("word %q carries %q", w, r)
					}
				}
			}
		}
	})
}
