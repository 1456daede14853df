package deploys

import (
	"context"
	"errors"
	"fmt"
	"html"
	"strings"

	"github.com/telltale-dev/telltale/annotator/deployapi"
	"github.com/telltale-dev/telltale/annotator/deploylog"
	"github.com/telltale-dev/telltale/annotator/grafana"
)

// deployIDTag is the Grafana tag that ties an annotation to its deploy; it
// lets a retried create find an annotation a timed-out create stored.
func deployIDTag(id string) string { return "deploy-id:" + id }

// annotationFor renders deploy d as an org-wide Grafana annotation: a point
// at d.Time, or a region to d.EndTime once a long deploy finished; once its
// impact analysis is done the text ends with the verdict and summary and a
// tag impact:<verdict> is added (an "impact" outbox event updates it).
func annotationFor(d Deploy) grafana.Annotation {
	a := grafana.Annotation{
		Time: d.Time,
		Tags: []string{"deploy", "service:" + d.Service},
		Text: annotationText(d),
	}
	if d.Env != "" {
		a.Tags = append(a.Tags, "env:"+d.Env)
	}
	a.Tags = append(a.Tags, deployIDTag(d.ID))
	if d.Impact != nil && d.Impact.Status == deployapi.ImpactDone {
		a.Tags = append(a.Tags, "impact:"+d.Impact.Verdict)
	}
	if d.EndTime != nil && d.EndTime.After(d.Time) {
		a.TimeEnd = *d.EndTime
	}
	return a
}

// annotationText is the HTML tooltip: what, where, who, status, message, link.
func annotationText(d Deploy) string {
	var b strings.Builder
	b.WriteString("<b>Deploy ")
	b.WriteString(html.EscapeString(d.Service))
	if d.Version != "" {
		b.WriteString(" " + html.EscapeString(d.Version))
	}
	b.WriteString("</b>")
	if d.Env != "" {
		b.WriteString(" to " + html.EscapeString(d.Env))
	}
	if d.Who != "" {
		b.WriteString(" by " + html.EscapeString(d.Who))
	}
	if d.Status != StatusSuccess {
		b.WriteString(" (" + html.EscapeString(d.Status) + ")")
	}
	if d.Commit != "" {
		b.WriteString("<br>commit " + html.EscapeString(d.Commit))
	}
	if d.Message != "" {
		b.WriteString("<br>" + strings.ReplaceAll(html.EscapeString(d.Message), "\n", "<br>"))
	}
	if d.Link != "" {
		fmt.Fprintf(&b, `<br><a href="%s" target="_blank" rel="noopener">%s</a>`, html.EscapeString(d.Link), html.EscapeString(d.Link))
	}
	if d.Impact != nil && d.Impact.Status == deployapi.ImpactDone {
		fmt.Fprintf(&b, "<br><b>Impact: %s</b> %s", html.EscapeString(d.Impact.Verdict), html.EscapeString(d.Impact.Summary))
	}
	return b.String()
}

// deliverGrafana makes Grafana's annotation of d match d: it creates the
// annotation once and updates it afterwards (e.g. into a region when a long
// deploy finishes). Every event syncs the whole state, so events delivered
// late or twice do no harm.
//
// Never creating twice: the annotation id is stored in the deploy log once
// known. When an earlier attempt may have reached Grafana without us
// learning the id (a timeout, a crash between the call and the store), the
// annotation is first looked up by its deploy-id tag and adopted if found.
// Residual risk: a create that Grafana commits only after that lookup ran
// (e.g. stuck in a proxy for longer than the retry backoff) yields a second
// annotation for the same deploy.
func (s *Service) deliverGrafana(ctx context.Context, e deploylog.Entry, d Deploy) error {
	a := annotationFor(d)
	id := d.GrafanaAnnotationID
	if id == 0 && e.TargetAttempts > 1 { // > 1: this attempt is already counted
		found, ok, err := s.opts.Grafana.FindAnnotation(ctx, deployIDTag(d.ID))
		if err != nil {
			return grafanaError(err)
		}
		if ok {
			if err := s.log.SetGrafanaAnnotationID(ctx, d.ID, found); err != nil {
				return err
			}
			id = found
			s.logger.Info("adopted grafana annotation from an earlier attempt", "deploy_id", d.ID, "annotation_id", id)
		}
	}
	if id == 0 {
		newID, err := s.opts.Grafana.CreateAnnotation(ctx, a)
		if err != nil {
			return grafanaError(err)
		}
		if err := s.log.SetGrafanaAnnotationID(ctx, d.ID, newID); err != nil {
			// The next attempt finds it by tag.
			return err
		}
		return nil
	}
	if err := s.opts.Grafana.UpdateAnnotation(ctx, id, a); err != nil {
		if errors.Is(err, grafana.ErrNotFound) {
			return &permanentError{fmt.Errorf("grafana annotation %d of deploy %q no longer exists (deleted in Grafana?); not re-creating it: %w", id, d.ID, err)}
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
