package grafana

// Annotations: organization-wide annotations (no dashboard, no panel), as
// the change log writes them, through POST/PUT/GET /api/annotations.

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	gapi "github.com/grafana/grafana-api-golang-client"
)

// annotationsWrite is the permission writing annotations needs.
const annotationsWrite = "annotations:write"

// Annotation is an organization-wide Grafana annotation (no dashboard, no
// panel): a point at Time, or a region from Time to TimeEnd.
type Annotation struct {
	Time time.Time
	// TimeEnd is zero for a point annotation.
	TimeEnd time.Time
	Tags    []string
	// Text is shown in the annotation tooltip; Grafana renders it as HTML.
	Text string
}

// CreateAnnotation creates a and returns its Grafana id.
func (c *Client) CreateAnnotation(ctx context.Context, a Annotation) (int64, error) {
	var id int64
	err := c.call(ctx, "create annotation", annotationsWrite, func(api *gapi.Client) error {
		var err error
		id, err = api.NewAnnotation(toAPI(a))
		return err
	})
	if err != nil {
		return 0, err
	}
	if id == 0 {
		return 0, fmt.Errorf("grafana create annotation: answer has no annotation id; is %s really Grafana?", c.url)
	}
	return id, nil
}

// UpdateAnnotation replaces every property of annotation id with a.
func (c *Client) UpdateAnnotation(ctx context.Context, id int64, a Annotation) error {
	return c.call(ctx, "update annotation "+strconv.FormatInt(id, 10), annotationsWrite, func(api *gapi.Client) error {
		_, err := api.UpdateAnnotation(id, toAPI(a))
		return err
	})
}

// FindAnnotation returns the oldest annotation carrying tag, if any.
func (c *Client) FindAnnotation(ctx context.Context, tag string) (int64, bool, error) {
	var found []gapi.Annotation
	err := c.call(ctx, "find annotation", "annotations:read", func(api *gapi.Client) error {
		var err error
		found, err = api.Annotations(url.Values{"tags": {tag}, "type": {"annotation"}, "limit": {"100"}})
		return err
	})
	if err != nil {
		return 0, false, err
	}
	var id int64
	for _, a := range found {
		if a.ID > 0 && (id == 0 || a.ID < id) {
			id = a.ID
		}
	}
	return id, id != 0, nil
}

func toAPI(a Annotation) *gapi.Annotation {
	out := &gapi.Annotation{Time: a.Time.UnixMilli(), Tags: a.Tags, Text: a.Text}
	if !a.TimeEnd.IsZero() {
		out.TimeEnd = a.TimeEnd.UnixMilli()
		out.IsRegion = out.TimeEnd > out.Time
	}
	return out
}
