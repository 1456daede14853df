package slack_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/telltale-dev/telltale/annotator/chat/slack"
)

// hookRequest is what a webhook server received.
type hookRequest struct {
	method, path, query, contentType string
	text                             string
	err                              error
}

// TestWebhookBody: an incoming webhook gets the body Slack documents for
// them (POST, Content-Type application/json, a JSON object whose only key
// is "text", with &, < and > escaped as &amp;, &lt;, &gt; and line breaks
// kept), at the URL as given, path and query included: Discord's
// Slack-compatible endpoint is the webhook URL plus /slack (here with
// ?wait=true). Slack answers 200 "ok", Discord 204 without a body; both
// are a success. The message fits Discord's 2000-character content limit,
// the smallest of the Slack-compatible chats.
func TestWebhookBody(t *testing.T) {
	for _, tc := range []struct {
		name, path, query string
		status            int
		answer            string
	}{
		{"slack", "/services/T000/B000/XXXX", "", http.StatusOK, "ok"},
		{"discord", "/api/webhooks/1234567890/tok-en/slack", "wait=true", http.StatusNoContent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []hookRequest
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				dec := json.NewDecoder(bytes.NewReader(b))
				dec.DisallowUnknownFields()
				var body struct {
					Text *string `json:"text"`
				}
				req := hookRequest{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type"), err: dec.Decode(&body)}
				if req.err == nil && body.Text == nil {
					req.err = io.ErrUnexpectedEOF
				}
				if body.Text != nil {
					req.text = *body.Text
				}
				mu.Lock()
				got = append(got, req)
				mu.Unlock()
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.answer)
			}))
			defer srv.Close()
			u := srv.URL + tc.path
			if tc.query != "" {
				u += "?" + tc.query
			}
			hook, err := slack.NewWebhook(u, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := hook.Send(t.Context(), "ignored", "deployed web <v1> & more\nimpact: none"); err != nil {
				t.Fatalf("Send: got %v; want nil on HTTP %d", err, tc.status)
			}
			mu.Lock()
			defer mu.Unlock()
			want := hookRequest{method: http.MethodPost, path: tc.path, query: tc.query, contentType: "application/json",
				text: "deployed web &lt;v1&gt; &amp; more\nimpact: none"}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("the webhook received %+v; want exactly %+v", got, want)
			}
			if n := hook.Limits().MaxBytes; n > 2000 {
				t.Fatalf("a webhook message may be %d bytes; want ≤ 2000 (Discord's limit)", n)
			}
		})
	}
}
