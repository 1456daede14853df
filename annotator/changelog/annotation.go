package changelog

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strings"

	"github.com/telltale-dev/telltale/grafana"

	"github.com/telltale-dev/telltale/annotator/changes"
)

// Annotator creates and updates Grafana annotations; *grafana.Client
// implements it. Its errors match grafana's sentinels (ErrNotFound,
// ErrUnauthorized, ErrForbidden, ErrRejected), which decide how a delivery
// is retried. Implementations must be safe for concurrent use.
type Annotator interface {
	// CreateAnnotation creates a and returns its Grafana id.
	CreateAnnotation(ctx context.Context, a grafana.Annotation) (id int64, err error)
	// UpdateAnnotation replaces every property of annotation id with a.
	UpdateAnnotation(ctx context.Context, id int64, a grafana.Annotation) error
	// FindAnnotation returns the oldest annotation carrying tag, if any.
	FindAnnotation(ctx context.Context, tag string) (id int64, found bool, err error)
}

// idTag is the Grafana tag that ties an annotation to its change; it lets
// a retried create find an annotation a timed-out create stored. Deploys
// keep the deploy-id: tag earlier collectors used, so their annotations
// are still found.
func idTag(c changes.Change) string {
	if c.Kind == changes.KindDeploy {
		return "deploy-id:" + c.ID
	}
	return "change-id:" + c.ID
}

// annotationFor renders change c as an org-wide Grafana annotation tagged
// with its kind, service, env (and subject): a point at c.Time, or a
// region to c.EndTime once a region ended; once its impact analysis is
// done the text ends with the verdict and summary and a tag
// impact:<verdict> is added (an "impact" outbox event updates it).
func annotationFor(c changes.Change) grafana.Annotation {
	a := grafana.Annotation{
		Time: c.Time,
		Tags: []string{c.Kind, "service:" + c.Service},
		Text: annotationText(c),
	}
	if c.Env != "" {
		a.Tags = append(a.Tags, "env:"+c.Env)
	}
	if c.Subject != "" {
		a.Tags = append(a.Tags, "subject:"+c.Subject)
	}
	a.Tags = append(a.Tags, idTag(c))
	if c.Impact != nil && c.Impact.Status == changes.ImpactDone {
		a.Tags = append(a.Tags, "impact:"+c.Impact.Verdict)
	}
	if c.EndTime != nil && c.EndTime.After(c.Time) {
		a.TimeEnd = *c.EndTime
	}
	return a
}

// annotationText is the HTML tooltip: what, where, who, status, message, link.
func annotationText(c changes.Change) string {
	var b strings.Builder
	b.WriteString("<b>")
	if c.Kind == changes.KindDeploy {
		b.WriteString("Deploy " + html.EscapeString(c.Service))
		if c.Version != "" {
			b.WriteString(" " + html.EscapeString(c.Version))
		}
	} else {
		b.WriteString(html.EscapeString(upperFirst(c.Title())))
	}
	b.WriteString("</b>")
	if c.Env != "" {
		b.WriteString(" to " + html.EscapeString(c.Env))
	}
	if c.Who != "" {
		b.WriteString(" by " + html.EscapeString(c.Who))
	}
	if c.Status != changes.StatusSuccess {
		b.WriteString(" (" + html.EscapeString(c.Status) + ")")
	}
	if c.Commit != "" {
		b.WriteString("<br>commit " + html.EscapeString(c.Commit))
	}
	if c.Message != "" {
		b.WriteString("<br>" + strings.ReplaceAll(html.EscapeString(c.Message), "\n", "<br>"))
	}
	if c.Link != "" {
		fmt.Fprintf(&b, `<br><a href="%s" target="_blank" rel="noopener">%s</a>`, html.EscapeString(c.Link), html.EscapeString(c.Link))
	}
	if c.Impact != nil && c.Impact.Status == changes.ImpactDone {
		fmt.Fprintf(&b, "<br><b>Impact: %s</b> %s", html.EscapeString(c.Impact.Verdict), html.EscapeString(c.Impact.Summary))
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// deliverGrafana makes Grafana's annotation of c match c: it creates the
// annotation once and updates it afterwards (e.g. into a region when a
// switch is flipped back). Every event syncs the whole state, so events
// delivered late or twice do no harm.
//
// Never creating twice: the annotation id is stored in the change log once
// known. When an earlier attempt may have reached Grafana without us
// learning the id (a timeout, a crash between the call and the store), the
// annotation is first looked up by its id tag and adopted if found.
// Residual risk: a create that Grafana commits only after that lookup ran
// (e.g. stuck in a proxy for longer than the retry backoff) yields a second
// annotation for the same change.
func (s *Service) deliverGrafana(ctx context.Context, e Entry, c changes.Change) error {
	a := annotationFor(c)
	id := c.GrafanaAnnotationID
	if id == 0 && e.TargetAttempts > 1 { // > 1: this attempt is already counted
		found, ok, err := s.opts.Grafana.FindAnnotation(ctx, idTag(c))
		if err != nil {
			return grafanaError(err)
		}
		if ok {
			if err := s.log.SetGrafanaAnnotationID(ctx, c.ID, found); err != nil {
				return err
			}
			id = found
			s.logger.Info("adopted grafana annotation from an earlier attempt", "change_id", c.ID, "annotation_id", id)
		}
	}
	if id == 0 {
		newID, err := s.opts.Grafana.CreateAnnotation(ctx, a)
		if err != nil {
			return grafanaError(err)
		}
		if err := s.log.SetGrafanaAnnotationID(ctx, c.ID, newID); err != nil {
			// The next attempt finds it by tag.
			return err
		}
		return nil
	}
	if err := s.opts.Grafana.UpdateAnnotation(ctx, id, a); err != nil {
		if errors.Is(err, grafana.ErrNotFound) {
			return &permanentError{fmt.Errorf("grafana annotation %d of change %q no longer exists (deleted in Grafana?); not re-creating it: %w", id, c.ID, err)}
		}
		return grafanaError(err)
	}
	return nil
}

// grafanaError classifies a Grafana error for the retry loop.
func grafanaError(err error) error {
	switch {
	case errors.Is(err, grafana.ErrUnauthorized), errors.Is(err, grafana.ErrForbidden):
		return &authError{err}
	case errors.Is(err, grafana.ErrRejected):
		return &permanentError{err}
	}
	return err
}
