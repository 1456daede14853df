package matrix_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/annotator/chat/matrix"
	"github.com/telltale-dev/telltale/annotator/chat/matrix/matrixtest"
)

func fakeServer(t *testing.T, burst int, every time.Duration) (*matrixtest.Server, *httptest.Server) {
	fake := &matrixtest.Server{Token: "syt_bot_token", UserID: "@telltale:test", Aliases: map[string]string{"#ops:test": "!ops:test"},
		Burst: burst, Every: every}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv
}

func newClient(t *testing.T, hs, token string) *matrix.Client {
	c, err := matrix.New(matrix.Options{Homeserver: hs, Token: token, Rooms: []string{"#ops:test"}, SyncTimeout: 200 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSendAndHear: the bot joins the alias, posts m.notice events, and
// hears what others say after it started (not before, not itself).
func TestSendAndHear(t *testing.T) {
	fake, srv := fakeServer(t, 0, 0)
	fake.Say("!ops:test", "@alice:test", "!deploys from before the start")
	c := newClient(t, srv.URL, "syt_bot_token")
	var mu sync.Mutex
	var heard []chat.Message
	got := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Run(ctx, func(m chat.Message) {
			mu.Lock()
			heard = append(heard, m)
			mu.Unlock()
			got <- struct{}{}
		})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	if err := c.Send(t.Context(), "#ops:test", "deployed web v1 → prod by alice"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	sent := fake.Sent()
	if len(sent) != 1 || sent[0].Room != "!ops:test" || sent[0].MsgType != "m.notice" || sent[0].Body != "deployed web v1 → prod by alice" {
		t.Fatalf("sent %+v; want one m.notice in !ops:test", sent)
	}
	// The first sync only finds the present; say something after it.
	deadline := time.After(30 * time.Second)
	for i := 0; ; i++ {
		fake.Say("!ops:test", "@alice:test", "!deploys web")
		select {
		case <-got:
		case <-time.After(300 * time.Millisecond):
			continue // said before the first sync finished: history
		case <-deadline:
			t.Fatal("the bot heard nothing")
		}
		break
	}
	mu.Lock()
	defer mu.Unlock()
	m := heard[0]
	if m.Channel != "!ops:test" || m.User != "@alice:test" || m.Name != "alice" || m.Text != "!deploys web" {
		t.Fatalf("heard %+v; want !deploys web from @alice:test in !ops:test", m)
	}
	for _, h := range heard {
		if h.Text == "!deploys from before the start" || h.User == "@telltale:test" {
			t.Fatalf("heard %+v: history or its own message", h)
		}
	}
}

// TestRateLimited: M_LIMIT_EXCEEDED becomes a RateLimitError with
// retry_after_ms; a bad token is ErrRefused; an unknown room ErrRejected.
func TestRateLimited(t *testing.T) {
	fake, srv := fakeServer(t, 1, 30*time.Second)
	c := newClient(t, srv.URL, "syt_bot_token")
	if err := c.Send(t.Context(), "#ops:test", "one"); err != nil {
		t.Fatal(err)
	}
	err := c.Send(t.Context(), "#ops:test", "two")
	var rl *chat.RateLimitError
	if !errors.As(err, &rl) || rl.After < 29*time.Second || rl.After > 31*time.Second {
		t.Fatalf("second send: got %v; want a RateLimitError of about 30s (retry_after_ms)", err)
	}
	if fake.RateLimited() != 1 || len(fake.Sent()) != 1 {
		t.Fatalf("fake: %d limited, %d sent; want 1 and 1", fake.RateLimited(), len(fake.Sent()))
	}
	bad := newClient(t, srv.URL, "wrong")
	if err := bad.Send(t.Context(), "#ops:test", "x"); !errors.Is(err, chat.ErrRefused) {
		t.Fatalf("bad token: got %v; want ErrRefused", err)
	}
	if err := c.Send(t.Context(), "#nope:test", "x"); !errors.Is(err, chat.ErrRejected) {
		t.Fatalf("unknown room: got %v; want ErrRejected", err)
	}
}

// testPNG is a w×h PNG.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSendImage: an image is uploaded with the media API and posted as
// an m.image event that refers to the upload's mxc:// URI with its info;
// M_LIMIT_EXCEEDED on the upload is a RateLimitError (retry_after_ms)
// and posts nothing; a room the bot cannot join uploads nothing.
func TestSendImage(t *testing.T) {
	fake, srv := fakeServer(t, 0, 0)
	fake.LimitUploads = 1
	c := newClient(t, srv.URL, "syt_bot_token")
	pic := testPNG(t, 40, 30)
	img := chat.Image{PNG: pic, Name: "graph.png", Title: "Request rate", Width: 40, Height: 30}
	err := c.SendImage(t.Context(), "#ops:test", img)
	var rl *chat.RateLimitError
	if !errors.As(err, &rl) || rl.After != 20*time.Millisecond {
		t.Fatalf("first upload: got %v; want a RateLimitError of 20ms (retry_after_ms)", err)
	}
	if n := len(fake.Sent()); n != 0 {
		t.Fatalf("%d events after a rate-limited upload; want none", n)
	}
	if err := c.SendImage(t.Context(), "#ops:test", img); err != nil {
		t.Fatalf("SendImage: %v", err)
	}
	sent := fake.Sent()
	if len(sent) != 1 {
		t.Fatalf("sent %+v; want one m.image", sent)
	}
	ev := sent[0]
	if ev.Room != "!ops:test" || ev.MsgType != "m.image" || ev.Body != "Request rate" || ev.Filename != "graph.png" {
		t.Fatalf("event %+v; want an m.image in !ops:test with caption and file name", ev)
	}
	if want := (matrixtest.ImageInfo{MimeType: "image/png", W: 40, H: 30, Size: len(pic)}); ev.Info != want {
		t.Fatalf("info: got %+v; want %+v", ev.Info, want)
	}
	m, ok := fake.Media(ev.URL)
	if !ok {
		t.Fatalf("m.image url %q is not an upload", ev.URL)
	}
	got, err := png.Decode(bytes.NewReader(m.Data))
	if err != nil || got.Bounds().Dx() != 40 || got.Bounds().Dy() != 30 || m.ContentType != "image/png" || m.Filename != "graph.png" {
		t.Fatalf("upload: %s %q, decoded %v %v; want a 40x30 image/png graph.png", m.ContentType, m.Filename, got.Bounds(), err)
	}
	if err := c.SendImage(t.Context(), "#nope:test", img); !errors.Is(err, chat.ErrRejected) || fake.Uploads() != 2 {
		t.Fatalf("unknown room: got %v after %d uploads; want ErrRejected and no third upload", err, fake.Uploads())
	}
}

func TestParseURL(t *testing.T) {
	f := func(raw, hs string, rooms ...string) {
		t.Helper()
		gotHS, gotRooms, err := matrix.ParseURL(raw)
		if err != nil || gotHS != hs || len(gotRooms) != len(rooms) {
			t.Fatalf("ParseURL(%q): got %q %q %v; want %q %q", raw, gotHS, gotRooms, err, hs, rooms)
		}
		for i := range rooms {
			if gotRooms[i] != rooms[i] {
				t.Fatalf("ParseURL(%q): room %d got %q; want %q", raw, i, gotRooms[i], rooms[i])
			}
		}
	}
	f("https://matrix.example.org/#ops:example.org", "https://matrix.example.org", "#ops:example.org")
	f("https://matrix.example.org/!abc:example.org", "https://matrix.example.org", "!abc:example.org")
	f("http://127.0.0.1:8008/#ops:test,#dev:test", "http://127.0.0.1:8008", "#ops:test", "#dev:test")
	for _, bad := range []string{"matrix.example.org/#ops:x", "https://m.example.org/", "https://m.example.org/#ops", "ftp://x/#a:b"} {
		if _, _, err := matrix.ParseURL(bad); err == nil {
			t.Fatalf("ParseURL(%q): got no error", bad)
		}
	}
}
