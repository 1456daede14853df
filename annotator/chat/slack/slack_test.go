package slack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/annotator/chat/slack"
	"github.com/telltale-dev/telltale/annotator/chat/slack/slacktest"
)

// TestBotSend: chat.postMessage against a Slack-like server: a post, the
// 429 with Retry-After, and the ok:false errors mapped to refused or
// rejected.
func TestBotSend(t *testing.T) {
	fake := &slacktest.Server{Token: "xoxb-good", Channels: []string{"C0OPS"}, Every: 30 * time.Second}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	bot, err := slack.NewBot(slack.BotOptions{Token: "xoxb-good", API: srv.URL + "/api"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bot.Send(t.Context(), "C0OPS", "deployed web <v1> & more"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if p := fake.Posted(); len(p) != 1 || p[0].Channel != "C0OPS" || p[0].Text != "deployed web &lt;v1&gt; &amp; more" {
		t.Fatalf("posted %+v; want the escaped text in C0OPS", p)
	}
	err = bot.Send(t.Context(), "C0OPS", "second")
	var rl *chat.RateLimitError
	if !errors.As(err, &rl) || rl.After < 29*time.Second || rl.After > 30*time.Second {
		t.Fatalf("second post within the limit: got %v; want a RateLimitError of 30s from Retry-After", err)
	}
	if err := bot.Send(t.Context(), "C0NOPE", "x"); !errors.Is(err, chat.ErrRejected) {
		t.Fatalf("unknown channel: got %v; want ErrRejected", err)
	}
	bad, _ := slack.NewBot(slack.BotOptions{Token: "xoxb-bad", API: srv.URL + "/api"})
	if err := bad.Send(t.Context(), "C0OPS", "x"); !errors.Is(err, chat.ErrRefused) {
		t.Fatalf("bad token: got %v; want ErrRefused", err)
	}
}

// TestBotSendImage: the external upload against a Slack-like server: a
// 429 on files.getUploadURLExternal is a RateLimitError (Retry-After); a
// good upload posts the PNG's bytes to the upload URL and shares the
// file to the channel; an unknown channel and a bad token map to
// rejected and refused.
func TestBotSendImage(t *testing.T) {
	fake := &slacktest.Server{Token: "xoxb-good", Channels: []string{"C0OPS"}, ThrottleUploads: 1}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	bot, err := slack.NewBot(slack.BotOptions{Token: "xoxb-good", API: srv.URL + "/api"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 64, 48)))
	img := chat.Image{PNG: buf.Bytes(), Name: "graph.png", Title: "Request rate", Width: 64, Height: 48}
	err = bot.SendImage(t.Context(), "C0OPS", img)
	var rl *chat.RateLimitError
	if !errors.As(err, &rl) || rl.After != time.Second {
		t.Fatalf("first upload: got %v; want a RateLimitError of 1s from Retry-After", err)
	}
	if err := bot.SendImage(t.Context(), "C0OPS", img); err != nil {
		t.Fatalf("SendImage: %v", err)
	}
	files := fake.Files()
	if len(files) != 1 {
		t.Fatalf("files %+v; want one", files)
	}
	f := files[0]
	if f.Channel != "C0OPS" || f.Title != "Request rate" || f.Filename != "graph.png" || f.AltText != "Request rate" || f.Length != len(img.PNG) {
		t.Fatalf("file %+v; want graph.png shared to C0OPS with its title", f)
	}
	got, err := png.Decode(bytes.NewReader(f.Data))
	if err != nil || got.Bounds().Dx() != 64 || got.Bounds().Dy() != 48 {
		t.Fatalf("uploaded bytes decode to %v, %v; want a 64x48 PNG", got.Bounds(), err)
	}
	if err := bot.SendImage(t.Context(), "C0NOPE", img); !errors.Is(err, chat.ErrRejected) {
		t.Fatalf("unknown channel: got %v; want ErrRejected", err)
	}
	bad, _ := slack.NewBot(slack.BotOptions{Token: "xoxb-bad", API: srv.URL + "/api"})
	if err := bad.SendImage(t.Context(), "C0OPS", img); !errors.Is(err, chat.ErrRefused) {
		t.Fatalf("bad token: got %v; want ErrRefused", err)
	}
}

func TestWebhookErrors(t *testing.T) {
	for _, tc := range []struct {
		code int
		want error
	}{{404, chat.ErrRejected}, {410, chat.ErrRejected}, {403, chat.ErrRefused}, {400, chat.ErrRejected}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no_service", tc.code) }))
		w, _ := slack.NewWebhook(srv.URL+"/services/T/B/secret", nil)
		err := w.Send(t.Context(), "", "x")
		srv.Close()
		if !errors.Is(err, tc.want) || strings.Contains(err.Error(), "secret") {
			t.Fatalf("HTTP %d: got %v; want %v without the URL's secret", tc.code, err, tc.want)
		}
	}
}

// TestEvents: the Events API endpoint answers the URL check, refuses
// unsigned, wrongly signed and stale requests, hands user messages to the
// bot once (Slack retries), and ignores bot messages and edits.
func TestEvents(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bot, _ := slack.NewBot(slack.BotOptions{Token: "xoxb", SigningSecret: "sign-me", Now: func() time.Time { return now }})
	heard := make(chan chat.Message, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go bot.Run(ctx, func(m chat.Message) { heard <- m })
	srv := httptest.NewServer(bot.EventsHandler())
	defer srv.Close()
	post := func(body string, ts time.Time, secret string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		sec := fmt.Sprint(ts.Unix())
		req.Header.Set("X-Slack-Request-Timestamp", sec)
		req.Header.Set("X-Slack-Signature", slack.Sign(secret, sec, []byte(body)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post(`{"type":"url_verification","challenge":"abc"}`, now, "sign-me"); c != 200 {
		t.Fatalf("url_verification: %d", c)
	}
	msg := `{"type":"event_callback","event_id":"Ev1","event":{"type":"message","user":"U1","channel":"C0OPS","text":"!deploys &lt;web&gt;"}}`
	for _, tc := range []struct {
		ts     time.Time
		secret string
		want   int
	}{{now, "wrong", 401}, {now.Add(-10 * time.Minute), "sign-me", 401}} {
		if c := post(msg, tc.ts, tc.secret); c != tc.want {
			t.Fatalf("bad signature or stale: got %d; want %d", c, tc.want)
		}
	}
	for range 2 { // Slack retries a delivery: handled once
		if c := post(msg, now, "sign-me"); c != 200 {
			t.Fatalf("message: %d", c)
		}
	}
	post(`{"type":"event_callback","event_id":"Ev2","event":{"type":"message","bot_id":"B1","user":"U2","channel":"C0OPS","text":"!x"}}`, now, "sign-me")
	post(`{"type":"event_callback","event_id":"Ev3","event":{"type":"message","subtype":"message_changed","channel":"C0OPS"}}`, now, "sign-me")
	m := <-heard
	if m.User != "U1" || m.Channel != "C0OPS" || m.Text != "!deploys <web>" {
		t.Fatalf("heard %+v", m)
	}
	select {
	case m := <-heard:
		t.Fatalf("heard %+v too; want the one message only", m)
	default: // hear runs before the handler answers, so all is queued by now
	}
}
