package grafana_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/grafana"
	"github.com/telltale-dev/telltale/grafana/grafanatest"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func newClient(t *testing.T, url, token string, opts ...grafana.Option) *grafana.Client {
	t.Helper()
	c, err := grafana.New(url, token, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestCreateFindUpdate(t *testing.T) {
	srv := grafanatest.NewServer("tok")
	defer srv.Close()
	c := newClient(t, srv.URL, "tok")
	ctx := t.Context()

	a := grafana.Annotation{Time: t0, Tags: []string{"deploy", "deploy-id:x"}, Text: "<b>api</b>"}
	id, err := c.CreateAnnotation(ctx, a)
	if err != nil || id == 0 {
		t.Fatalf("CreateAnnotation: got %d, %v; want an id", id, err)
	}
	got := srv.Annotations()
	if len(got) != 1 || got[0].Time != t0.UnixMilli() || got[0].TimeEnd != t0.UnixMilli() || got[0].Text != a.Text ||
		strings.Join(got[0].Tags, ",") != "deploy,deploy-id:x" || got[0].DashboardUID != "" || got[0].PanelID != 0 {
		t.Fatalf("stored: got %+v; want an org-wide point annotation at %d with the tags", got, t0.UnixMilli())
	}

	found, ok, err := c.FindAnnotation(ctx, "deploy-id:x")
	if err != nil || !ok || found != id {
		t.Fatalf("FindAnnotation: got %d %v %v; want %d", found, ok, err, id)
	}
	_, ok, err = c.FindAnnotation(ctx, "deploy-id:other")
	if err != nil || ok {
		t.Fatalf("FindAnnotation(other): got ok=%v err=%v; want not found", ok, err)
	}

	a.TimeEnd = t0.Add(5 * time.Minute)
	if err := c.UpdateAnnotation(ctx, id, a); err != nil {
		t.Fatalf("UpdateAnnotation: %v", err)
	}
	if got := srv.Annotations(); got[0].TimeEnd != a.TimeEnd.UnixMilli() {
		t.Fatalf("after update timeEnd: got %d; want %d (a region)", got[0].TimeEnd, a.TimeEnd.UnixMilli())
	}
	err = c.UpdateAnnotation(ctx, id+100, a)
	if !errors.Is(err, grafana.ErrNotFound) {
		t.Fatalf("update of missing annotation: got %v; want ErrNotFound", err)
	}
}

func TestAnnotationErrors(t *testing.T) {
	srv := grafanatest.NewServer("tok")
	defer srv.Close()
	srv.AddReadOnlyToken("viewer")
	a := grafana.Annotation{Time: t0, Tags: []string{"deploy"}, Text: "x"}

	f := func(c *grafana.Client, sentinel error, want string) {
		t.Helper()
		_, err := c.CreateAnnotation(t.Context(), a)
		if err == nil {
			t.Fatalf("got no error; want %v", sentinel)
		}
		if sentinel != nil && !errors.Is(err, sentinel) {
			t.Fatalf("got %v; want errors.Is %v", err, sentinel)
		}
		for _, s := range []error{grafana.ErrUnauthorized, grafana.ErrForbidden, grafana.ErrRejected, grafana.ErrNotFound} {
			if s != sentinel && errors.Is(err, s) {
				t.Fatalf("got %v matching %v; want only %v", err, s, sentinel)
			}
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("got %q; want it to contain %q", err, want)
		}
	}
	f(newClient(t, srv.URL, "wrong"), grafana.ErrUnauthorized, "HTTP 401: Unauthorized")
	f(newClient(t, srv.URL, "viewer"), grafana.ErrForbidden, "create a service account token with Editor role")

	srv.SetFailure(http.StatusServiceUnavailable)
	f(newClient(t, srv.URL, "tok"), nil, "HTTP 503")
	srv.SetFailure(http.StatusBadRequest)
	f(newClient(t, srv.URL, "tok"), grafana.ErrRejected, "HTTP 400")
	srv.SetFailure(http.StatusTooManyRequests)
	f(newClient(t, srv.URL, "tok"), nil, "HTTP 429")
	srv.SetFailure(0)

	srv.SetHang(time.Minute, false)
	f(newClient(t, srv.URL, "tok", grafana.WithTimeout(50*time.Millisecond)), nil, "is Grafana running")
	srv.SetHang(0, false)

	srv.Close()
	f(newClient(t, srv.URL, "tok"), nil, "connection refused")
}

func TestAnnotationContextCancel(t *testing.T) {
	srv := grafanatest.NewServer("tok")
	defer srv.Close()
	srv.SetHang(time.Minute, false)
	c := newClient(t, srv.URL, "tok")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.CreateAnnotation(ctx, grafana.Annotation{Time: t0, Text: "x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v; want context.DeadlineExceeded", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	f := func(url, token, want string) {
		t.Helper()
		_, err := grafana.New(url, token)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("New(%q, %q): got %v; want error containing %q", url, token, err, want)
		}
	}
	f("grafana:3000", "tok", "not an absolute http(s) URL")
	f("ftp://grafana", "tok", "not an absolute http(s) URL")
	f("http://grafana:3000", "", "token is empty")
}
